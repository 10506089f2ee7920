"""Reading own FHIR test data: placeholders, Bundles, XML and JSON, grouping per patient (issue 5, part 1)."""
from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from testdata.fhir_import import FhirImportError, files_under, fill_placeholders, group_by_patient, load_file

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "nictiz-zib2017-examples"
TODAY = date(2026, 11, 22)


def test_date_placeholders_are_filled_and_others_refused() -> None:
    text = '<birthDate value="${DATE, T, D, -44}"/><x value="${DATE,T,D,+1}"/>'
    assert fill_placeholders(text, today=TODAY, source="f.xml") == \
        '<birthDate value="2026-10-09"/><x value="2026-11-23"/>'
    with pytest.raises(FhirImportError, match=r"f.xml: unsupported placeholder '\$\{PATIENT, BSN\}'"):
        fill_placeholders("${PATIENT, BSN}", today=TODAY, source="f.xml")


def test_bundles_are_unpacked_and_json_equals_xml(tmp_path) -> None:
    patient = load_file(CORPUS / "nl-core-patient-01.xml", today=TODAY).resources[0]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": patient}, {"resource": {"resourceType": "Organization", "id": "o1",
                                                             "name": "${DATE, T, D, 0}"}}]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    loaded = load_file(tmp_path / "b.json", today=TODAY)
    assert [r["resourceType"] for r in loaded.resources] == ["Patient", "Organization"]
    assert loaded.resources[0] == patient and loaded.resources[1]["name"] == "2026-11-22"


def test_corpus_groups_per_patient_by_bsn_and_reference() -> None:
    files = files_under([CORPUS])
    resources = [e for f in files for e in load_file(f, today=TODAY).entries]
    grouped = group_by_patient(resources)
    assert sum(len(v) for v in grouped.patients.values()) + len(grouped.shared) == len(resources) == len(files)
    # Expected from the files themselves (regular expressions, not our reader): each BSN's Patient files,
    # plus every other file whose Patient references all point at that BSN's Patients.
    texts = {p.name: p.read_text() for p in files}
    bsn_of_id = {}
    for text in texts.values():
        if text.lstrip().startswith("<Patient "):
            bsn = re.search(r'NamingSystem/bsn"/>\s*<value value="(\d+)"', text)
            if bsn:
                bsn_of_id[re.search(r'<id value="([^"]+)"', text).group(1)] = bsn.group(1)
    expected: dict[str, int] = {}
    for bsn in bsn_of_id.values():
        expected[bsn] = expected.get(bsn, 0) + 1
    for text in texts.values():
        if text.lstrip().startswith("<Patient "):
            continue
        owners = {bsn_of_id.get(i) for i in re.findall(r'reference value="Patient/([^"]+)"', text)}
        if len(owners) == 1 and None not in owners:
            expected[owners.pop()] += 1
    assert {bsn: len(members) for bsn, members in grouped.patients.items()} == expected
    assert expected == {"999911120": 71, "999911284": 10, "123456782": 77}  # five Patients share 999911120


def test_unreadable_files_are_named() -> None:
    with pytest.raises(FhirImportError, match="nope.xml: no such file"):
        files_under([Path("nope.xml")])


def test_many_files_are_read_in_worker_processes_with_the_same_result(tmp_path: Path) -> None:
    from testdata.fhir_import import PARALLEL_FROM, load_files

    files = files_under([CORPUS])
    assert len(files) >= PARALLEL_FROM  # the corpus alone takes the parallel path
    in_workers = load_files(files, today=TODAY)
    one_by_one = [load_file(path, today=TODAY) for path in files]
    assert [f.path for f in in_workers] == files
    assert [(f.resources, [x.rule for x in f.findings]) for f in in_workers] == \
        [(f.resources, [x.rule for x in f.findings]) for f in one_by_one]
    broken = tmp_path / "broken.xml"
    broken.write_text("<Patient xmlns='http://hl7.org/fhir'><id value='x'/>")
    with pytest.raises(FhirImportError, match="broken.xml"):  # a worker's error reaches the caller, file named
        load_files(files + [broken], today=TODAY)
