"""Profile facts of the BgZ resources (SPEC §6.2) and the answers to the BgZ queries (SPEC §6)."""
from __future__ import annotations

import copy
import importlib.util
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from simulator.fhir.search import search
from testdata.bgz_content import patient_resources, shared_resources
from testdata.patients import PATIENTS
from validators import spec
from validators.findings import Finding, Rule, errors
from validators.rules import bgz_profiles
from validators.rules.bgz_profiles import (
    PROFILE_FACTS,
    Fact,
    _values,
    check_query_result,
    check_resource,
    claimed_profiles,
)
from validators.rules.bundle import check_searchset

from ._cases import Case, check_case, fires, quiet

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
FULL_PATIENT = PATIENTS[0]
BASE = "https://sender.example/fhir"
_RESOURCES = patient_resources(FULL_PATIENT, now=NOW)
_SHARED = shared_resources(now=NOW)


def good(profile: str) -> dict:
    """A generated resource claiming `profile` (a fresh copy)."""
    url = {"nl-core-patient": spec.NL_CORE_PATIENT_PROFILE}.get(profile, profile)
    url = url if url.startswith("http") else spec.NICTIZ_SD + url
    return copy.deepcopy(next(r for r in _RESOURCES if url in claimed_profiles(r)))


def rules_of(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


# --- generic defects, one per fact kind ------------------------------------------------------------
def _parents(resource: dict, path: str) -> tuple[list, str]:
    parent, _, last = path.rpartition(".")
    return ([resource] if not parent else _values(resource, parent)), last


def break_fact(resource: dict, fact: Fact) -> dict:
    """The resource with this one fact broken."""
    nodes, last = _parents(resource, fact.path)
    wrong = {"coding": [{"system": spec.SNOMED, "code": "1234567", "display": "Iets anders"}], "text": "Iets anders"}
    for node in (n for n in nodes if isinstance(n, dict)):
        if fact.kind == "present":
            node.pop(last, None)
            node.pop("_" + last, None)
        elif fact.kind == "bsn":
            node[last] = [i for i in node.get(last, []) if i.get("system") != spec.BSN_SYSTEM]
        elif fact.kind == "coded":
            node[last] = [wrong] if isinstance(node.get(last), list) else wrong
        elif fact.kind == "fixed":
            node[last] = "plan"
        elif fact.kind == "extension":
            node[last] = [e for e in node.get(last, []) if e.get("url") != fact.value]
        elif fact.kind == "component":
            node[last] = [c for c in node.get(last, [])
                          if not any(f"{x.get('system')}|{x.get('code')}" in fact.codes
                                     for x in c.get("code", {}).get("coding", []))]
        elif fact.kind == "component-unit":
            for component in node.get(last, []):
                component["valueQuantity"] = {"value": 16, "unit": "kPa", "system": spec.UCUM, "code": "kPa"}
    return resource


def fact_cases() -> list[Case]:
    cases: list[Case] = []
    for profile, facts in PROFILE_FACTS.items():
        name = profile.rsplit("/", 1)[-1]
        for i, fact in enumerate(facts):
            cases.append(quiet(fact.rule.id, f"{name}-{i}", lambda p=profile: check_resource(good(p))))
            cases.append(fires(fact.rule.id, f"{name}-{fact.kind}-{i}",
                               lambda p=profile, f=fact: check_resource(break_fact(good(p), f))))
    return cases


# --- hand-written cases for what the generic defects do not show --------------------------------------
def with_(profile: str, **elements: Any) -> dict:
    resource = good(profile)
    for key, value in elements.items():
        if value is ...:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def coded(system: str, code: str = "X") -> dict:
    return {"coding": [{"system": system, "code": code, "display": "x"}], "text": "x"}


def problem_with_code_system(system: str) -> list[Finding]:
    return check_resource(with_("zib-Problem", code=coded(system)))


SELF_PAY = {"reference": f"Patient/patient-{FULL_PATIENT.bsn}", "display": "Suzanne Moulin"}
DATA_ABSENT = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                              "valueCode": "unknown"}]}


def blood_pressure_with(component: dict) -> list[Finding]:
    resource = good("zib-BloodPressure")
    resource["component"][0] = component
    return check_resource(resource)


ZIB_CODE_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4"  # zib code systems live under 60.40.4
SYSTOLIC_CODE = {"coding": [{"system": spec.LOINC, "code": "8480-6", "display": "Systolic"}]}

CASES: list[Case] = [
    *fact_cases(),
    quiet("PROF-001", "right-type", lambda: check_resource(good("zib-Problem"))),
    fires("PROF-001", "observation-as-problem", lambda: check_resource(
        dict(good("zib-BodyWeight"), meta={"profile": [spec.NICTIZ_SD + "zib-Problem"]}))),
    fires("PROF-001", "appointment-profile-on-encounter", lambda: check_resource(
        dict(good("zib-Encounter"), meta={"profile": [spec.BGZ_QUERIES[27].profile]}))),
    quiet("PROF-002", "zib-code-system", lambda: problem_with_code_system(ZIB_CODE_SYSTEM)),
    quiet("PROF-002", "not-a-prefix", lambda: problem_with_code_system("urn:oid:2.16.840.1.113883.2.4.3.11.60.40.20")),
    quiet("PROF-002", "g-standaard", lambda: [f for s in spec.G_STANDAARD_SYSTEMS
                                               for f in problem_with_code_system(s)]),
    quiet("PROF-002", "identifier-not-coding", lambda: check_resource(with_(
        "zib-Problem", identifier=[{"system": spec.ZIB_VALUE_SET_OID_PREFIX + ".1.1", "value": "1"}]))),
    fires("PROF-002", "value-set-oid", lambda: problem_with_code_system(spec.ZIB_VALUE_SET_OID_PREFIX + ".14.3.2")),
    fires("PROF-002", "in-encounter-class", lambda: check_resource(with_(
        "zib-Encounter", **{"class": {"system": spec.ZIB_VALUE_SET_OID_PREFIX + ".1", "code": "IMP"}}))),
    fires("PROF-002", "in-extension", lambda: check_resource(with_(
        "nl-core-patient", extension=[{"url": "http://example.invalid/x",
                                       "valueCodeableConcept": coded(spec.ZIB_VALUE_SET_OID_PREFIX + ".2")}]))),
    quiet("PROF-003", "canonical", lambda: [f for s in (spec.SNOMED, spec.LOINC, spec.ATC)
                                            for f in problem_with_code_system(s)]),
    fires("PROF-003", "snomed-oid", lambda: problem_with_code_system("urn:oid:2.16.840.1.113883.6.96")),
    fires("PROF-003", "https-loinc", lambda: problem_with_code_system("https://loinc.org/")),
    fires("PROF-003", "atc-case", lambda: problem_with_code_system("http://www.WHOCC.no/atc")),
    fires("PROF-003", "ucum-oid-quantity", lambda: check_resource(with_(
        "zib-BodyWeight", valueQuantity={"value": 70, "unit": "kg", "system": "urn:oid:2.16.840.1.113883.6.8",
                                         "code": "kg"}))),
    # zib-Payer: period.end belongs to an insurance; a self-paying patient has no insurance period
    quiet("PROF-PAYER-002", "self-pay-without-period", lambda: check_resource(
        with_("zib-Payer", payor=[SELF_PAY], period=...))),
    fires("PROF-PAYER-002", "no-payor-no-period", lambda: check_resource(with_("zib-Payer", payor=..., period=...))),
    fires("PROF-PAYER-002", "urn-payor-open-period", lambda: check_resource(with_(
        "zib-Payer", payor=[{"reference": "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100"}],
        period={"start": "2024-01-01"}))),
    # a required primitive present only as extensions (data absent) counts as present
    quiet("PROF-ADVANCE-002", "data-absent", lambda: check_resource(with_(
        "zib-AdvanceDirective", dateTime=..., _dateTime=DATA_ABSENT))),
    fires("PROF-ADVANCE-002", "empty", lambda: check_resource(with_("zib-AdvanceDirective", dateTime=" "))),
    fires("PROF-MEDAGREE-001", "absent", lambda: check_resource(with_("zib-MedicationAgreement", intent=...))),
    fires("PROF-TREATMENT-002", "without-value", lambda: check_resource(with_(
        "zib-TreatmentDirective", modifierExtension=[{"url": spec.TREATMENT_PERMITTED_URL}]))),
    quiet("PROF-BP-003", "data-absent", lambda: blood_pressure_with(
        {"code": SYSTOLIC_CODE, "dataAbsentReason": coded("http://hl7.org/fhir/data-absent-reason", "unknown")})),
    fires("PROF-BP-003", "no-quantity", lambda: blood_pressure_with({"code": SYSTOLIC_CODE, "valueString": "120"})),
    fires("PROF-BP-003", "no-ucum", lambda: blood_pressure_with(
        {"code": SYSTOLIC_CODE, "valueQuantity": {"value": 120, "unit": "mm[Hg]", "code": "mm[Hg]"}})),
    fires("PROF-PATIENT-001", "wrong-system", lambda: check_resource(with_(
        "nl-core-patient", identifier=[{"system": "http://fhir.nl/fhir/NamingSystem/BSN", "value": "999993653"}]))),
    fires("PROF-PROBLEM-002", "in-contained", lambda: check_resource(with_(
        "nl-core-patient", contained=[with_("zib-Problem", code=...)]))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    check_case(case)


def test_locations_point_at_the_element() -> None:
    findings = check_resource(with_("zib-Payer", period={"start": "2024-01-01"}),
                              location="Bundle.entry[3].resource")
    assert [(f.rule, f.location) for f in findings] == [("PROF-PAYER-002", "Bundle.entry[3].resource.period.end")]
    contained = check_resource(with_("nl-core-patient", contained=[with_("zib-Problem", code=...)]))
    assert [f.location for f in contained] == ["Patient.contained[0].code"]
    system = check_resource(with_("zib-Problem", category=[coded(spec.ZIB_VALUE_SET_OID_PREFIX + ".1")]))
    assert [f.location for f in system] == ["Condition.category[0].coding[0].system"]


def test_bsn_slice_uses_the_identifier_rules() -> None:
    bad = with_("nl-core-patient", identifier=[{"system": spec.BSN_SYSTEM, "value": "999999245"}])
    assert rules_of(check_resource(bad)) == {"ID-BSN-002"}
    near_miss = with_("nl-core-patient", identifier=[{"system": spec.BSN_SYSTEM + "/", "value": "999993653"}])
    assert rules_of(check_resource(near_miss)) == {"ID-SYS-001", "PROF-PATIENT-001"}


def test_unknown_profiles_and_odd_input_are_ignored() -> None:
    assert check_resource({"resourceType": "Observation", "meta": {"profile": ["http://example.org/x"]}}) == []
    for odd in (None, [], "x", {}, {"meta": 5}, {"meta": {"profile": "x"}}, {"meta": {"profile": [5, None]}}):
        assert check_resource(odd) == []  # type: ignore[arg-type]


def test_every_bgz_profile_has_a_type_and_an_entry() -> None:
    profiles = {p for q in spec.BGZ_QUERIES for p in q.profiles}
    assert profiles == set(PROFILE_FACTS) == set(spec.PROFILE_TYPES)


# --- query results -----------------------------------------------------------------------------------
QUERY = {q.number: q for q in spec.BGZ_QUERIES}


def answer(number: int, resources: list[dict] | None = None, shared: list[dict] | None = None) -> dict:
    """The searchset Bundle our FHIR server gives for BgZ query `number`."""
    query = QUERY[number]
    result = search(resources if resources is not None else _RESOURCES, shared if shared is not None else _SHARED,
                    query.resource_type, query.search.params, lastn=query.search.lastn)
    return searchset([(m, "match") for m in result.matches] + [(i, "include") for i in result.includes])


def searchset(entries: list[tuple[dict, str]]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": sum(mode == "match" for _, mode in entries),
            "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "search": {"mode": mode}, "resource": r}
                      for r, mode in entries]}


def with_entry(bundle: dict, resource: dict, mode: str) -> dict:
    bundle["entry"].append({"fullUrl": f"{BASE}/{resource['resourceType']}/{resource['id']}",
                            "search": {"mode": mode}, "resource": resource})
    return bundle


PROVENANCE = {"resourceType": "Provenance", "id": "prov-1", "target": [{"reference": "Condition/x"}],
              "recorded": "2024-01-01T00:00:00Z", "agent": [{"whoReference": {"display": "EPD"}}]}
OUTCOME = {"resourceType": "OperationOutcome", "id": "oo",
           "issue": [{"severity": "information", "code": "informational"}]}
AMBULANT = next(r for r in _RESOURCES if r["resourceType"] == "Encounter" and r["class"]["code"] == "AMB")

QUERY_CASES: list[Case] = [
    quiet("BGZ-001", "problems", lambda: check_query_result(answer(6), QUERY[6])),
    quiet("BGZ-001", "outcome", lambda: check_query_result(with_entry(answer(6), OUTCOME, "outcome"), QUERY[6])),
    fires("BGZ-001", "observation-in-problems", lambda: check_query_result(
        with_entry(answer(6), good("zib-BodyWeight"), "match"), QUERY[6])),
    fires("BGZ-001", "no-mode", lambda: check_query_result(
        {"resourceType": "Bundle", "entry": [{"resource": good("zib-Alert")}]}, QUERY[6])),
    quiet("BGZ-002", "medication-included", lambda: check_query_result(answer(14), QUERY[14])),
    quiet("BGZ-002", "provenance-variant", lambda: check_query_result(
        with_entry(answer(6), PROVENANCE, "include"), QUERY[6])),
    quiet("BGZ-002", "specimen-and-related", lambda: check_query_result(answer(22), QUERY[22])),
    fires("BGZ-002", "practitioner-in-problems", lambda: check_query_result(
        with_entry(answer(6), _SHARED[0], "include"), QUERY[6])),
    fires("BGZ-002", "device-in-medication-use", lambda: check_query_result(
        with_entry(answer(14), good("zib-MedicalDeviceProduct"), "include"), QUERY[14])),
    quiet("BGZ-003", "inpatient", lambda: check_query_result(answer(24), QUERY[24])),
    quiet("BGZ-003", "status-list", lambda: check_query_result(answer(28), QUERY[28])),
    fires("BGZ-003", "outpatient", lambda: check_query_result(with_entry(answer(24), AMBULANT, "match"), QUERY[24])),
    fires("BGZ-003", "advance-directive-as-treatment", lambda: check_query_result(
        with_entry(answer(3), good("zib-AdvanceDirective"), "match"), QUERY[3])),
    fires("BGZ-003", "not-given", lambda: check_query_result(
        searchset([(with_("zib-Vaccination", status="not-done"), "match")]), QUERY[18])),
]


@pytest.mark.parametrize("case", QUERY_CASES, ids=[c.id for c in QUERY_CASES])
def test_query_case(case: Case) -> None:
    check_case(case)


def test_query_result_checks_every_entry_resource() -> None:
    bundle = answer(14)
    bundle["entry"][0]["resource"].pop("dateAsserted")
    bundle["entry"][1]["resource"]["code"] = coded(spec.ZIB_VALUE_SET_OID_PREFIX + ".7")
    found = {(f.rule, f.location) for f in check_query_result(bundle, QUERY[14])}
    assert found == {("PROF-MEDUSE-002", "Bundle.entry[0].resource.dateAsserted"),
                     ("PROF-002", "Bundle.entry[1].resource.code.coding[0].system")}


def test_query_result_survives_odd_bundles() -> None:
    for odd in (None, [], {}, {"entry": 5}, {"entry": [None, 5, {}, {"resource": 5}, {"resource": {}},
                                                      {"search": 5, "resource": {"resourceType": 5}}]}):
        assert isinstance(check_query_result(odd, QUERY[6]), list)  # type: ignore[arg-type]


ALL_CASES = CASES + QUERY_CASES


def test_every_rule_fires_and_stays_quiet() -> None:
    ids = {v.id for v in vars(bgz_profiles).values() if isinstance(v, Rule)}
    assert ids <= {c.rule for c in ALL_CASES if c.fires}, "rules never seen firing"
    assert ids <= {c.rule for c in ALL_CASES if not c.fires}, "rules without a passing example"
    assert all(v.reference.startswith("SPEC") for v in vars(bgz_profiles).values() if isinstance(v, Rule))


# --- our own generated content -----------------------------------------------------------------------
@pytest.mark.parametrize("patient", PATIENTS, ids=[p.bsn for p in PATIENTS])
def test_generated_content_has_no_errors(patient: Any) -> None:
    resources = patient_resources(patient, now=NOW)
    offenders = []
    for query in spec.BGZ_QUERIES:
        bundle = answer(query.number, resources)
        found = check_query_result(bundle, query) + check_searchset(
            bundle, expected_profiles=query.profiles, patient_reference=f"Patient/patient-{patient.bsn}")
        offenders += [(query.number, f) for f in found]
    for resource in resources + _SHARED:
        offenders += [(resource["id"], f) for f in check_resource(resource)]
    assert not offenders, offenders


# --- the benchmark's input (speed is measured by benchmarks/validate_bundle.py, never asserted here) ---------
def _benchmark() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "validate_bundle.py"
    loaded = importlib.util.spec_from_file_location("validate_bundle", path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def test_the_benchmark_bundle_is_a_valid_thousand_entry_searchset() -> None:
    benchmark = _benchmark()
    bundle = benchmark.build_bundle(1000, now=NOW)
    assert len(bundle["entry"]) == 1000
    assert len({e["fullUrl"] for e in bundle["entry"]}) == 1000
    assert not errors(benchmark.validate(bundle))
