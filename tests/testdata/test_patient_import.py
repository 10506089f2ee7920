"""Importing a case manager's patient list: CSV and JSON, every mistake named, all or nothing."""
from __future__ import annotations

import json

import pytest

from testdata.patient_import import PatientImportError, parse_patients_csv, parse_patients_json, read_patient_file

CSV = """bsn;given;family;birth_date;sex;deceased;content;letters;street;postal_code;city
999990020;Zoë;Çağlar-Ünal;1990-02-03;V;;sparse;2;Kerkstraat 1;1234 AB;Ülm
999990032;Jan;de Vries;1950-01-01;M;2020-05-05;;;;;
"""


def test_csv_with_semicolons_and_diacritics(tmp_path) -> None:
    path = tmp_path / "patients.csv"
    path.write_text(CSV, encoding="utf-8")
    first, second = read_patient_file(path)
    assert (first.given, first.family, first.sex, first.content, first.letters) == ("Zoë", "Çağlar-Ünal", "F", "sparse", 2)
    assert first.address is not None and first.address.city == "Ülm"
    assert second.deceased == "2020-05-05" and second.content == "full" and second.address is None


@pytest.mark.parametrize("text, complaint", [
    ("bsn,given,family,birth_date,sex\n999999245,A,B,2000-01-01,F\n", "line 2: BSN '999999245'"),
    ("bsn,given,family,birth_date,sex\n999990020,A,B,2000-13-01,F\n", "line 2: birth_date"),
    ("bsn,given,family,birth_date,sex\n999990020,A,B,2000-01-01,X\n", "line 2: sex 'X'"),
    ("bsn,given,family,birth_date,sex\n999990020,A,,2000-01-01,F\n", "line 2: family is empty"),
    ("bsn,given,family,sex\n", "lacks column(s) birth_date"),
    ("bsn,given,family,birth_date,sex\n999990020,A,B,2000-01-01,F\n999990020,C,D,2000-01-01,M\n", "appears twice"),
    ("bsn,given,family,birth_date,sex\n", "no patients"),
])
def test_csv_mistakes_are_named(text: str, complaint: str) -> None:
    with pytest.raises(PatientImportError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse_patients_csv(text)


def test_json_list_or_object() -> None:
    entry = {"bsn": "999990020", "given": "A", "family": "B", "birth_date": "2000-01-01", "sex": "female"}
    assert parse_patients_json(json.dumps([entry]))[0].sex == "F"
    assert parse_patients_json(json.dumps({"patients": [entry]}))[0].bsn == "999990020"
    with pytest.raises(PatientImportError, match="entry 2: letters"):
        parse_patients_json(json.dumps([entry, {**entry, "bsn": "999990032", "letters": 9}]))
    with pytest.raises(PatientImportError, match="not valid JSON"):
        parse_patients_json("{")
