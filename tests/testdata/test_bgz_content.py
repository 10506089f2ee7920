import base64
import hashlib
import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from testdata.bgz_content import (
    BGZ_BUILDERS,
    SPARSE_QUERIES,
    letter_text,
    patient_id,
    patient_resources,
    shared_resources,
)
from testdata.patients import PATIENTS, find_patient
from validators import spec

NOW = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=timezone(timedelta(hours=1)))
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@pytest.fixture(scope="module")
def content():
    return {p.bsn: patient_resources(p, now=NOW) for p in PATIENTS}


@pytest.fixture(scope="module")
def shared():
    return shared_resources(now=NOW)


def walk(node, path="$"):
    """Yield (path, key, value) for every dict member, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


def datatype_problems(resource):
    """SPEC §6.1 checks, by shape: Codings, CodeableConcepts, Identifiers, References."""
    problems = []
    for path, key, value in walk(resource):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, dict):
                continue
            where = f"{path}.{key}"
            if key == "coding" or key == "class":
                if not (item.get("system") and item.get("code")):
                    problems.append(f"Coding without system/code at {where}")
            if "coding" in item and not (item.get("text") or any(c.get("display") for c in item["coding"])):
                problems.append(f"CodeableConcept without text/display at {where}")
            if key in ("identifier", "masterIdentifier") and not (item.get("system") and item.get("value")):
                problems.append(f"Identifier without system/value at {where}")
            if "reference" in item and not item.get("display"):
                problems.append(f"Reference without display at {where}")
    return problems


def test_a_builder_for_every_bgz_query():
    assert sorted(BGZ_BUILDERS) == [q.number for q in spec.BGZ_QUERIES] == list(range(1, 29))
    assert set(SPARSE_QUERIES) <= set(BGZ_BUILDERS)


def test_json_serialisable_and_deterministic(content, shared):
    for bsn, resources in content.items():
        assert json.loads(json.dumps(resources)) == resources
        assert patient_resources(find_patient(bsn), now=NOW) == resources
    assert json.loads(json.dumps(shared)) == shared


def test_ids_valid_and_unique_across_patients(content, shared):
    keys = [(r["resourceType"], r["id"]) for rs in content.values() for r in rs] + \
           [(r["resourceType"], r["id"]) for r in shared]
    assert len(keys) == len(set(keys))
    assert all(ID_RE.match(rid) for _, rid in keys)
    ids = [rid for _, rid in keys]
    assert len(ids) == len(set(ids))  # even regardless of type


def test_datatypes(content, shared):
    for resources in list(content.values()) + [shared]:
        for resource in resources:
            assert datatype_problems(resource) == [], resource["id"]


def test_profiles(content, shared):
    main_profiles = {q.profile for q in spec.BGZ_QUERIES}
    for resources in list(content.values()) + [shared]:
        for resource in resources:
            if resource["resourceType"] == "Binary":
                assert "meta" not in resource
                continue
            profiles = resource["meta"]["profile"]
            assert len(profiles) == 1 and profiles[0].startswith("http")
    full = content[PATIENTS[0].bsn]
    assert main_profiles <= {r["meta"]["profile"][0] for r in full if "meta" in r}


def test_the_patient_resource(content, shared):
    gp_ids = {r["id"] for r in shared if r["resourceType"] == "Practitioner"}
    for p in PATIENTS:
        patient = content[p.bsn][0]
        assert patient["resourceType"] == "Patient" and patient["id"] == patient_id(p)
        assert patient["meta"]["profile"] == [spec.BGZ_QUERIES[0].profile]
        assert {"system": spec.BSN_SYSTEM, "value": p.bsn}.items() <= patient["identifier"][0].items()
        name = patient["name"][0]
        assert name["family"] == p.family and name["given"] == [p.given]
        assert patient["gender"] == {"F": "female", "M": "male"}[p.sex]
        assert patient["birthDate"] == p.birth_date
        assert patient.get("deceasedDateTime") == p.deceased
        gp = patient["generalPractitioner"][0]["reference"]
        assert gp.startswith("Practitioner/") and gp.split("/")[1] in gp_ids
    ghaniya = content["999901497"][0]
    assert ghaniya["name"][0]["family"] == "Çelik-Noermohamed"
    peter_jan = content["999993872"][0]["name"][0]
    assert {"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix", "valueString": "van der"} \
        in peter_jan["_family"]["extension"]


PATIENT_LINKS = ("subject", "patient", "beneficiary")


def test_every_patient_owned_resource_references_its_patient(content):
    for p in PATIENTS:
        expected = {"reference": f"Patient/{patient_id(p)}", "display": p.display_name}
        for resource in content[p.bsn]:
            if resource["resourceType"] in ("Patient", "Medication", "Binary"):
                continue
            links = [resource[k] for k in PATIENT_LINKS if k in resource]
            links += [part["actor"] for part in resource.get("participant", []) if "actor" in part]
            assert expected in links, resource["id"]


def test_sparse_patient_has_only_patient_coverage_and_documents(content):
    lukas = find_patient("999991723")
    types = sorted({r["resourceType"] for r in content[lukas.bsn]})
    assert types == ["Binary", "Coverage", "DocumentReference", "Patient"]


def test_full_patient_has_every_section(content):
    for p in PATIENTS:
        if p.content != "full":
            continue
        types = {r["resourceType"] for r in content[p.bsn]}
        assert {q.resource_type for q in spec.BGZ_QUERIES} <= types


def test_letters(content):
    for p in PATIENTS:
        resources = content[p.bsn]
        binaries = {r["id"]: r for r in resources if r["resourceType"] == "Binary"}
        documents = [r for r in resources if r["resourceType"] == "DocumentReference"]
        assert len(documents) == p.letters == len(binaries)
        for doc in documents:
            assert doc["status"] == "current"
            assert doc["type"]["coding"][0] == spec.REFERRAL_LETTER_TYPE
            assert DATETIME_RE.match(doc["indexed"])
            attachment = doc["content"][0]["attachment"]
            assert attachment["contentType"] == "application/pdf" and attachment["title"]
            binary = binaries[attachment["url"].removeprefix("Binary/")]
            assert binary["contentType"] == "application/pdf"
            pdf = base64.b64decode(binary["content"], validate=True)
            assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
            assert attachment["size"] == len(pdf)
            assert base64.b64decode(attachment["hash"]) == hashlib.sha1(pdf).digest()
    titles = [letter_text(find_patient("999990639"), n, now=NOW)[0] for n in (1, 2)]
    assert titles[0] != titles[1]


def test_date_times_have_a_timezone_and_dates_are_dates(content):
    for resources in content.values():
        for resource in resources:
            for path, key, value in walk(resource):
                if not isinstance(value, str):
                    continue
                if key in ("birthDate", "deceasedDateTime") or (path.endswith(".period") and key in ("start", "end")
                                                                and resource["resourceType"] == "Coverage"):
                    assert DATE_RE.match(value), (resource["id"], key, value)
                elif re.match(r"^\d{4}-\d{2}-\d{2}", value):
                    assert DATE_RE.match(value) or DATETIME_RE.match(value), (resource["id"], key, value)
                    if "T" in value:
                        assert value.endswith("+01:00"), value  # the timezone of NOW


def test_dates_follow_now(content):
    suzanne = find_patient("999993653")
    later = patient_resources(suzanne, now=NOW + timedelta(days=400))
    coverage = next(r for r in later if r["resourceType"] == "Coverage")
    assert coverage["period"]["end"] == "2026-12-31"
    bp_now = [r["effectiveDateTime"] for r in content[suzanne.bsn] if r["id"].startswith("bloeddruk")]
    bp_later = [r["effectiveDateTime"] for r in later if r["id"].startswith("bloeddruk")]
    assert bp_now != bp_later
    newest = max(datetime.fromisoformat(v) for v in bp_now)
    assert NOW - timedelta(days=30) < newest < NOW


def test_naive_now_is_taken_as_utc():
    resources = patient_resources(PATIENTS[0], now=datetime(2025, 3, 14, 12, 0))
    assert next(r for r in resources if r["resourceType"] == "Encounter")["period"]["start"].endswith("+00:00")


def test_deceased_patient_record_ends_at_death(content):
    death = date(2018, 7, 1)
    for resource in content["999901497"]:
        if resource["resourceType"] == "Observation":
            when = resource.get("effectiveDateTime") or resource["effectivePeriod"]["start"]
            assert date.fromisoformat(when[:10]) <= death
        if resource["resourceType"] == "Coverage":
            assert resource["period"]["end"] == "2018-07-01"


def test_generated_content_is_structurally_valid_stu3() -> None:
    """Every generated resource loads into its FHIR STU3 model (cardinality, element names, types)."""
    from datetime import datetime, timezone

    from fhir.resources.STU3 import get_fhir_model_class

    from testdata.bgz_content import patient_resources, shared_resources
    from testdata.patients import PATIENTS

    now = datetime.now(timezone.utc)
    problems = []
    for patient in PATIENTS:
        for resource in patient_resources(patient, now=now) + shared_resources(now=now):
            try:
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            except ValueError as exc:
                problems.append(f"{resource['resourceType']}/{resource['id']}: {str(exc).splitlines()[1]}")
    assert problems == []
