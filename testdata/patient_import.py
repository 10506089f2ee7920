"""Reads a case manager's patient list (CSV or JSON) into test patients (SPEC §7).

Columns / keys: bsn, given, family, birth_date, sex (F/M), and optionally deceased, content (full/sparse),
letters (1-5), street, postal_code, city. Every mistake is reported with its line or entry number.
"""
from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

from testdata.patients import Address, TestPatient
from validators import safe_json
from validators.rules.identifiers import is_valid_bsn

REQUIRED = ("bsn", "given", "family", "birth_date", "sex")
OPTIONAL = ("deceased", "content", "letters", "street", "postal_code", "city")
_SEX = {"f": "F", "v": "F", "female": "F", "vrouw": "F", "m": "M", "male": "M", "man": "M"}
MAX_PATIENTS = 10_000


class PatientImportError(ValueError):
    """The file cannot be imported; the message names the entry and what to fix. Nothing was imported."""


def read_patient_file(path: Path) -> list[TestPatient]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatientImportError(f"cannot read {path}: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        return parse_patients_json(text)
    if suffix == ".csv":
        return parse_patients_csv(text)
    raise PatientImportError(f"{path}: expected a .csv or .json file")


def parse_patients_csv(text: str) -> list[TestPatient]:
    reader = csv.DictReader(io.StringIO(text), delimiter=_delimiter(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise PatientImportError(f"CSV header lacks column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}")
    return _patients([(f"line {n}", row) for n, row in enumerate(reader, start=2)])


def parse_patients_json(text: str) -> list[TestPatient]:
    try:
        data = safe_json.loads(text)
    except ValueError as exc:
        raise PatientImportError(f"not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("patients")
    if not isinstance(data, list):
        raise PatientImportError('expected a JSON list of patients, or {"patients": [...]}')
    return _patients([(f"entry {n}", item) for n, item in enumerate(data, start=1)])


def _delimiter(text: str) -> str:
    header = text.splitlines()[0] if text else ""
    return ";" if header.count(";") > header.count(",") else ","


def _patients(entries: list[tuple[str, Any]]) -> list[TestPatient]:
    if len(entries) > MAX_PATIENTS:
        raise PatientImportError(f"{len(entries)} patients; at most {MAX_PATIENTS} per file")
    patients, seen = [], set()
    for where, item in entries:
        patient = _patient(where, item)
        if patient.bsn in seen:
            raise PatientImportError(f"{where}: BSN {patient.bsn} appears twice")
        seen.add(patient.bsn)
        patients.append(patient)
    if not patients:
        raise PatientImportError("the file holds no patients")
    return patients


def patient_from_dict(item: Any, where: str = "patient") -> TestPatient:
    """One patient from its import form (a CSV row or a JSON object), checked."""
    return _patient(where, item)


def _patient(where: str, item: Any) -> TestPatient:
    if not isinstance(item, dict):
        raise PatientImportError(f"{where}: expected an object with {', '.join(REQUIRED)}")
    value = {k: str(item.get(k) or "").strip() for k in REQUIRED + OPTIONAL}
    for key in REQUIRED:
        if not value[key]:
            raise PatientImportError(f"{where}: {key} is empty")
    if not is_valid_bsn(value["bsn"]):
        raise PatientImportError(f"{where}: BSN {value['bsn']!r} is not 9 digits passing the 11-check")
    for key in ("birth_date", "deceased"):
        if value[key]:
            try:
                date.fromisoformat(value[key])
            except ValueError:
                raise PatientImportError(f"{where}: {key} {value[key]!r} is not a date YYYY-MM-DD") from None
    sex = _SEX.get(value["sex"].lower())
    if sex is None:
        raise PatientImportError(f"{where}: sex {value['sex']!r} must be F or M")
    content = value["content"] or "full"
    if content not in ("full", "sparse"):
        raise PatientImportError(f"{where}: content {content!r} must be full or sparse")
    letters = value["letters"] or "1"
    if not letters.isdigit() or not 1 <= int(letters) <= 5:
        raise PatientImportError(f"{where}: letters {letters!r} must be a number from 1 to 5")
    address = None
    if any(value[k] for k in ("street", "postal_code", "city")):
        address = Address(value["street"], value["postal_code"], value["city"])
    return TestPatient(value["bsn"], value["given"], value["family"], value["birth_date"], sex,  # type: ignore[arg-type]
                       deceased=value["deceased"] or None, content=content, letters=int(letters),  # type: ignore[arg-type]
                       address=address)


def patient_to_dict(patient: TestPatient) -> dict[str, Any]:
    """The import format of one patient, so what is stored can be read back by the same parser."""
    out: dict[str, Any] = {"bsn": patient.bsn, "given": patient.given, "family": patient.family,
                           "birth_date": patient.birth_date, "sex": patient.sex, "content": patient.content,
                           "letters": patient.letters}
    if patient.deceased:
        out["deceased"] = patient.deceased
    if patient.address:
        out.update(street=patient.address.line, postal_code=patient.address.postal_code,
                   city=patient.address.city)
    return out
