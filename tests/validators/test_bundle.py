from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from validators import spec
from validators.rules.bundle import check_patient_data, check_searchset

from ._cases import check_case, fires, quiet

BASE = "https://sender.example/fhir"
PATIENT_QUERY = spec.BGZ_QUERIES[0]
PATIENT_PROFILE = PATIENT_QUERY.profile
GP_PROFILE = spec.NICTIZ_SD + "zib-HealthProfessional-Practitioner"
REQUEST = f"{BASE}/{PATIENT_QUERY.query}"
PATIENT = "Patient/p-1"
GP_URN = "urn:uuid:7d4a1c2e-8b3f-4e6a-9c1d-2f3e4a5b6c7d"


def good_bundle() -> dict:
    """Answer to `Patient?_include=Patient:general-practitioner` for the token's patient p-1."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        # the server narrowed the search to the patient, encoded ':' and reordered: all allowed
        "link": [{"relation": "self",
                  "url": f"{BASE}/Patient?_id=p-1&_include=Patient%3Ageneral-practitioner"}],
        "entry": [
            {"fullUrl": f"{BASE}/Patient/p-1", "search": {"mode": "match"}, "resource": {
                "resourceType": "Patient", "id": "p-1", "meta": {"profile": [PATIENT_PROFILE]},
                "contained": [{"resourceType": "Organization", "id": "org-1", "name": "Huisartsenpraktijk"}],
                "identifier": [{"system": spec.BSN_SYSTEM, "value": "999993653"}],
                "name": [{"family": "Moulin", "given": ["Suzanne"]}],
                "maritalStatus": {"coding": [{"system": "http://hl7.org/fhir/v3/MaritalStatus", "code": "M",
                                              "display": "Married"}]},
                "extension": [{"url": "http://example.invalid/nationality",
                               "valueCodeableConcept": {"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.4.16",
                                                                    "code": "0001"}], "text": "Nederlandse"}}],
                "generalPractitioner": [{"reference": "Practitioner/gp-1"}],
                "managingOrganization": {"reference": "#org-1"},
                "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                              "valueCode": "unknown"}]},
            }},
            {"fullUrl": GP_URN, "search": {"mode": "include"}, "resource": {
                "resourceType": "Practitioner", "id": "gp-1", "meta": {"profile": [GP_PROFILE]},
                "identifier": [{"system": spec.AGB_SYSTEM, "value": "01234567"}],
                "name": [{"family": "Huisarts"}],
            }},
        ],
    }


BSN, OTHER_BSN = "999993653", "999990639"


def _patient_entry(pid: str, bsn: str | None, mode: str) -> dict:
    identifiers = [{"system": spec.BSN_SYSTEM, "value": bsn}] if bsn else []
    return {"fullUrl": f"{BASE}/Patient/{pid}", "search": {"mode": mode},
            "resource": {"resourceType": "Patient", "id": pid, "identifier": identifiers}}


def _with(bundle: dict, change: Callable[[dict], Any]) -> dict:
    change(bundle)
    return bundle


def condition_bundle() -> dict:
    """Answer to `Condition` with a subject given four ways: relative, absolute, in-Bundle urn, with display."""
    profile = spec.NICTIZ_SD + "zib-Problem"

    def condition(cid: str, subject: dict) -> dict:
        return {"fullUrl": f"{BASE}/Condition/{cid}", "search": {"mode": "match"}, "resource": {
            "resourceType": "Condition", "id": cid, "meta": {"profile": [profile]},
            "clinicalStatus": "active",
            "code": {"coding": [{"system": spec.SNOMED, "code": "38341003", "display": "Hypertensie"}]},
            "subject": subject}}
    patient_urn = "urn:uuid:11111111-2222-4333-8444-555555555555"
    return {
        "resourceType": "Bundle", "type": "searchset", "total": 4,
        "link": [{"relation": "self", "url": f"{BASE}/Condition?patient=p-1"}],
        "entry": [
            condition("c-1", {"reference": PATIENT, "display": "Suzanne Moulin"}),
            condition("c-2", {"reference": f"{BASE}/Patient/p-1", "display": "Suzanne Moulin"}),
            condition("c-3", {"reference": patient_urn}),
            condition("c-4", {"reference": "Patient/p-1/_history/3", "display": "Suzanne Moulin"}),
            {"fullUrl": patient_urn, "search": {"mode": "include"}, "resource": {
                "resourceType": "Patient", "id": "p-1", "meta": {"profile": [PATIENT_PROFILE]}}},
        ],
    }


def run(bundle: Any, **kw: Any) -> list:
    kw.setdefault("request_url", REQUEST)
    kw.setdefault("expected_profiles", PATIENT_QUERY.profiles)
    kw.setdefault("patient_reference", PATIENT)
    return check_searchset(bundle, **kw)


def with_(change: Callable[[dict], object], make: Callable[[], dict] = good_bundle, **kw: Any) -> Callable[[], list]:
    def go() -> list:
        bundle = make()
        change(bundle)
        if make is condition_bundle:
            kw.setdefault("request_url", f"{BASE}/Condition")
            kw.setdefault("expected_profiles", (spec.NICTIZ_SD + "zib-Problem",))
        return run(bundle, **kw)
    return go


def patient(bundle: dict) -> dict:
    return bundle["entry"][0]["resource"]


def gp(bundle: dict) -> dict:
    return bundle["entry"][1]["resource"]


def add_entry(entry: dict) -> Callable[[dict], None]:
    return lambda b: b["entry"].append(copy.deepcopy(entry))


OPERATION_OUTCOME = {"resource": {"resourceType": "OperationOutcome", "id": "oo-1",
                                  "issue": [{"severity": "information", "code": "informational"}]},
                     "fullUrl": "urn:uuid:99999999-2222-4333-8444-555555555555", "search": {"mode": "outcome"}}

DOCUMENT_REFERENCE = {"fullUrl": f"{BASE}/DocumentReference/d-1", "search": {"mode": "include"}, "resource": {
    "resourceType": "DocumentReference", "id": "d-1", "status": "current", "subject": {"reference": PATIENT},
    "type": {"coding": [{"system": "http://loinc.org", "code": "57133-1", "display": "Referral note"}]},
    "indexed": "2026-01-01T10:00:00Z",
    "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/b-1"}}]}}
DOCUMENT_REFERENCE_WITH_PROFILE = copy.deepcopy(DOCUMENT_REFERENCE)
DOCUMENT_REFERENCE_WITH_PROFILE["resource"]["meta"] = {"profile": ["http://example.org/fhir/DocumentReference"]}

CASES = [
    quiet("BUNDLE-001", "good", lambda: run(good_bundle())),
    fires("BUNDLE-001", "patient", lambda: run(patient(good_bundle()))),
    fires("BUNDLE-001", "list", lambda: run([good_bundle()])),
    quiet("BUNDLE-002", "searchset", lambda: run(good_bundle())),
    fires("BUNDLE-002", "collection", with_(lambda b: b.update(type="collection"))),
    quiet("BUNDLE-003", "no-request-no-check", with_(lambda b: b.pop("link"), request_url=None)),
    fires("BUNDLE-003", "missing", with_(lambda b: b.pop("link"))),
    fires("BUNDLE-003", "only-next", with_(lambda b: b.update(link=[{"relation": "next", "url": BASE}]))),
    quiet("BUNDLE-004", "encoded-and-reordered", lambda: run(good_bundle())),
    quiet("BUNDLE-004", "format-ignored", lambda: run(good_bundle(), request_url=REQUEST + "&_format=json")),
    quiet("BUNDLE-004", "pipe-vs-percent-7C", with_(lambda b: b.update(link=[{"relation": "self", "url":
          f"{BASE}/Condition?code=http%3A%2F%2Fsnomed.info%2Fsct%7C38341003"}]),
          request_url=f"{BASE}/Condition?code=http://snomed.info/sct|38341003", expected_profiles=())),
    fires("BUNDLE-004", "include-dropped", with_(lambda b: b["link"][0].update(url=f"{BASE}/Patient?_id=p-1"))),
    fires("BUNDLE-004", "value-changed", with_(lambda b: b["link"][0].update(
          url=f"{BASE}/Patient?_id=p-1&_include=Patient:organization"))),
    quiet("BUNDLE-005", "profiles-claimed", lambda: run(good_bundle())),
    quiet("BUNDLE-005", "operation-outcome-needs-none", with_(add_entry(OPERATION_OUTCOME))),
    fires("BUNDLE-005", "no-meta", with_(lambda b: gp(b).pop("meta"))),
    fires("BUNDLE-005", "empty-profile", with_(lambda b: patient(b)["meta"].update(profile=[]))),
    quiet("BUNDLE-005", "document-reference-has-no-bgz-profile", with_(add_entry(DOCUMENT_REFERENCE))),
    fires("BUNDLE-017", "document-reference-without-profile", with_(add_entry(DOCUMENT_REFERENCE))),
    quiet("BUNDLE-017", "document-reference-with-profile", with_(add_entry(DOCUMENT_REFERENCE_WITH_PROFILE))),
    quiet("BUNDLE-017", "other-resources", lambda: run(good_bundle())),
    quiet("BUNDLE-006", "expected", lambda: run(good_bundle())),
    quiet("BUNDLE-006", "include-with-own-profile", lambda: run(good_bundle())),
    fires("BUNDLE-006", "core-profile-only", with_(lambda b: patient(b)["meta"].update(
          profile=["http://hl7.org/fhir/StructureDefinition/Patient"]))),
    quiet("BUNDLE-007", "http-and-urn", lambda: run(good_bundle())),
    quiet("BUNDLE-007", "urn-oid", with_(lambda b: b["entry"][1].update(fullUrl="urn:oid:2.16.528.1.1007.3.3.1"))),
    fires("BUNDLE-007", "relative", with_(lambda b: b["entry"][0].update(fullUrl="Patient/p-1"))),
    fires("BUNDLE-007", "missing", with_(lambda b: b["entry"][0].pop("fullUrl"))),
    fires("BUNDLE-007", "bad-urn-uuid", with_(lambda b: b["entry"][1].update(fullUrl="urn:uuid:gp-1"))),
    quiet("BUNDLE-008", "ends-in-id", lambda: run(good_bundle())),
    fires("BUNDLE-008", "other-id", with_(lambda b: b["entry"][0].update(fullUrl=f"{BASE}/Patient/p-2"))),
    fires("BUNDLE-008", "history", with_(lambda b: b["entry"][0].update(fullUrl=f"{BASE}/Patient/p-1/_history/2"))),
    quiet("BUNDLE-009", "complete", lambda: run(good_bundle())),
    fires("BUNDLE-009", "no-system", with_(lambda b: patient(b)["maritalStatus"]["coding"][0].pop("system"))),
    fires("BUNDLE-009", "no-code-in-extension",
          with_(lambda b: patient(b)["extension"][0]["valueCodeableConcept"]["coding"][0].pop("code"))),
    fires("BUNDLE-009", "value-coding", with_(lambda b: patient(b)["extension"].append(
          {"url": "http://example.invalid/x", "valueCoding": {"code": "x", "display": "X"}}))),
    quiet("BUNDLE-010", "text-only", with_(lambda b: patient(b).update(
          maritalStatus={"coding": [{"system": "http://hl7.org/fhir/v3/MaritalStatus", "code": "M"}],
                         "text": "Getrouwd"}))),
    fires("BUNDLE-010", "no-text-no-display",
          with_(lambda b: patient(b)["maritalStatus"]["coding"][0].pop("display"))),
    quiet("BUNDLE-011", "complete", lambda: run(good_bundle())),
    fires("BUNDLE-011", "no-system", with_(lambda b: patient(b)["identifier"][0].pop("system"))),
    fires("BUNDLE-011", "reference-identifier",
          with_(lambda b: patient(b).update(link=[{"other": {"identifier": {"value": "x"}, "display": "X"},
                                                   "type": "seealso"}]))),
    quiet("BUNDLE-012", "relative-contained-and-displayed", lambda: run(good_bundle())),
    quiet("BUNDLE-012", "urn-reference", lambda: run(condition_bundle(), request_url=f"{BASE}/Condition",
                                                     expected_profiles=())),
    fires("BUNDLE-012", "dangling", with_(lambda b: patient(b).update(
          generalPractitioner=[{"reference": "Practitioner/not-here"}]))),
    fires("BUNDLE-012", "dangling-contained", with_(lambda b: patient(b).update(
          managingOrganization={"reference": "#org-2"}))),
    fires("BUNDLE-012", "absolute-elsewhere", with_(lambda b: patient(b).update(
          generalPractitioner=[{"reference": "https://elsewhere.example/fhir/Practitioner/gp-1"}]))),
    quiet("BUNDLE-013", "equal", lambda: run(good_bundle())),
    quiet("BUNDLE-013", "absent", with_(lambda b: b.pop("total"))),
    quiet("BUNDLE-013", "larger-with-next", with_(lambda b: (b.update(total=40), b["link"].append(
          {"relation": "next", "url": BASE + "/Patient?page=2"})))),
    quiet("BUNDLE-013", "last-page-with-previous", with_(lambda b: (b.update(total=40), b["link"].append(
          {"relation": "previous", "url": BASE + "/Patient?_count=1&_offset=38"})))),
    quiet("BUNDLE-013", "last-page-self-offset", with_(lambda b: (b.update(total=40), b["link"].__setitem__(
          0, {"relation": "self", "url": b["link"][0]["url"] + "&_offset=39"})))),
    fires("BUNDLE-013", "larger-without-next", with_(lambda b: b.update(total=5))),
    fires("BUNDLE-013", "larger-offset-zero", with_(lambda b: (b.update(total=5), b["link"].__setitem__(
          0, {"relation": "self", "url": b["link"][0]["url"] + "&_offset=0"})))),
    fires("BUNDLE-013", "counts-includes", with_(lambda b: b.update(total=2))),
    fires("BUNDLE-013", "smaller-with-next", with_(lambda b: (b.update(total=0), b["link"].append(
          {"relation": "next", "url": BASE + "/Patient?page=2"})))),
    fires("BUNDLE-013", "string", with_(lambda b: b.update(total="1"))),
    quiet("BUNDLE-014", "include", lambda: run(good_bundle())),
    quiet("BUNDLE-014", "lastn-same-type-include",
          lambda: run({"resourceType": "Bundle", "type": "searchset", "entry": []},
                      request_url=f"{BASE}/Observation/$lastn?code=http://loinc.org|85354-9")),
    fires("BUNDLE-014", "as-match", with_(lambda b: b["entry"][1]["search"].update(mode="match"))),
    fires("BUNDLE-014", "no-mode", with_(lambda b: b["entry"][1].pop("search"))),
    fires("BUNDLE-014", "inferred-from-match-types",
          with_(lambda b: b["entry"][1].pop("search"), request_url=None)),
    quiet("BUNDLE-015", "own-patient-four-ways", lambda: run(condition_bundle(), request_url=f"{BASE}/Condition",
                                                            expected_profiles=())),
    quiet("BUNDLE-015", "no-patient-given", with_(lambda b: patient(b).update(id="p-2"),
                                                  patient_reference=None)),
    fires("BUNDLE-015", "condition-of-another", with_(
          lambda b: b["entry"][1]["resource"]["subject"].update(reference="Patient/p-2"), make=condition_bundle)),
    fires("BUNDLE-015", "absolute-other", with_(
          lambda b: b["entry"][0]["resource"]["subject"].update(reference=f"{BASE}/Patient/p-9"),
          make=condition_bundle)),
    fires("BUNDLE-015", "second-patient-match", with_(add_entry(
          {"fullUrl": f"{BASE}/Patient/p-2", "search": {"mode": "match"},
           "resource": {"resourceType": "Patient", "id": "p-2", "meta": {"profile": [PATIENT_PROFILE]}}}))),
    quiet("BUNDLE-019", "the-tokens-patient", lambda: check_patient_data(good_bundle(), BSN)),
    quiet("BUNDLE-019", "a-patient-without-bsn", lambda: check_patient_data(
        {"resourceType": "Patient", "id": "p-2"}, BSN)),
    quiet("BUNDLE-019", "an-included-payor-of-another-bsn", lambda: check_patient_data(
        _with(good_bundle(), add_entry(_patient_entry("p-2", OTHER_BSN, "include"))), BSN)),
    fires("BUNDLE-019", "a-matched-patient-of-another-bsn", lambda: check_patient_data(
        _with(good_bundle(), add_entry(_patient_entry("p-2", OTHER_BSN, "match"))), BSN)),
    fires("BUNDLE-019", "a-read-of-another-patient", lambda: check_patient_data(
        _patient_entry("p-2", OTHER_BSN, "match")["resource"], BSN)),
    quiet("BUNDLE-020", "one-patient-four-ways", lambda: check_patient_data(condition_bundle(), BSN)),
    quiet("BUNDLE-020", "one-resource", lambda: check_patient_data(condition_bundle()["entry"][0]["resource"], BSN)),
    fires("BUNDLE-020", "conditions-of-two-patients", lambda: check_patient_data(_with(
        condition_bundle(), lambda b: b["entry"][1]["resource"]["subject"].update(reference="Patient/p-2")), BSN)),
    fires("BUNDLE-020", "two-matched-patients", lambda: check_patient_data(
        _with(good_bundle(), add_entry(_patient_entry("p-2", None, "match"))), BSN)),
    quiet("BUNDLE-016", "entries", lambda: run(good_bundle())),
    fires("BUNDLE-016", "entry-without-resource", with_(add_entry({"fullUrl": f"{BASE}/Patient/p-3"}))),
    fires("BUNDLE-016", "entry-object", with_(lambda b: b.update(entry=b["entry"][0]))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_bundles_have_no_findings() -> None:
    assert run(good_bundle()) == []
    assert run(condition_bundle(), request_url=f"{BASE}/Condition", expected_profiles=()) == []
    assert check_searchset(good_bundle()) == []


def test_locations_point_at_the_element() -> None:
    bundle = good_bundle()
    patient(bundle)["maritalStatus"]["coding"][0].pop("system")
    [finding] = run(bundle)
    assert finding.rule == "BUNDLE-009"
    assert finding.location == "Bundle.entry[0].resource.maritalStatus.coding[0]"


def test_other_patient_names_the_reference() -> None:
    bundle = condition_bundle()
    bundle["entry"][1]["resource"]["subject"]["reference"] = "Patient/p-2"
    [finding] = run(bundle, request_url=f"{BASE}/Condition", expected_profiles=())
    assert finding.location == "Bundle.entry[1].resource.subject.reference"
    assert "Patient/p-2" in finding.message and PATIENT in finding.message


def _big_bundle(size: int) -> dict:
    profile = spec.NICTIZ_SD + "zib-BloodPressure"
    entries = [{"fullUrl": f"{BASE}/Patient/p-1", "search": {"mode": "include"}, "resource": {
        "resourceType": "Patient", "id": "p-1", "meta": {"profile": [PATIENT_PROFILE]}}}]
    for i in range(size):
        entries.append({"fullUrl": f"{BASE}/Observation/o-{i}", "search": {"mode": "match"}, "resource": {
            "resourceType": "Observation", "id": f"o-{i}", "meta": {"profile": [profile]}, "status": "final",
            "category": [{"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs",
                                      "display": "Vital Signs"}]}],
            "code": {"coding": [{"system": spec.LOINC, "code": "85354-9", "display": "Blood pressure"}]},
            "subject": {"reference": PATIENT},
            "performer": [{"reference": f"Practitioner/pr-{i}", "display": "Dr. X"}],
            "effectiveDateTime": "2030-01-01T10:00:00+01:00",
            "component": [{"code": {"coding": [{"system": spec.LOINC, "code": code, "display": name}]},
                           "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                                             "code": "mm[Hg]"}}
                          for code, name in (("8480-6", "Systolic"), ("8462-4", "Diastolic"))],
        }})
    return {"resourceType": "Bundle", "type": "searchset", "total": size,
            "link": [{"relation": "self", "url": f"{BASE}/Observation/$lastn?code=http://loinc.org|85354-9"}],
            "entry": entries}


def test_thousand_entries_check_clean() -> None:
    # speed is measured by benchmarks/validate_bundle.py; here only the result of a large Bundle
    bundle = _big_bundle(1000)
    findings = check_searchset(bundle, request_url=f"{BASE}/Observation/$lastn?code=http%3A%2F%2Floinc.org%7C85354-9",
                               expected_profiles=(spec.NICTIZ_SD + "zib-BloodPressure",), patient_reference=PATIENT)
    assert findings == []
