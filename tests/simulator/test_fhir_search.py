from datetime import datetime, timedelta, timezone

import pytest

from simulator.fhir.search import SearchError, SearchResult, read, search
from testdata.bgz_content import patient_id, patient_resources, shared_resources
from testdata.patients import PATIENTS, find_patient
from validators import spec
from validators.query import parse_relative_query

NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=timezone(timedelta(hours=1)))
FULL = find_patient("999993653")
SPARSE = find_patient("999991723")
OTHER = find_patient("999909587")
QUERIES = {q.number: q for q in spec.BGZ_QUERIES}

# resource types a query's _include brings in, for a full patient
EXPECTED_INCLUDES = {1: {"Practitioner"}, 2: {"Organization"}, 14: {"Medication"}, 15: {"Medication"},
                     16: {"Medication"}, 17: {"Device"}, 22: {"Specimen"}, 27: {"Device"}}


@pytest.fixture(scope="module")
def shared():
    return shared_resources(now=NOW)


@pytest.fixture(scope="module")
def full():
    return patient_resources(FULL, now=NOW)


@pytest.fixture(scope="module")
def sparse():
    return patient_resources(SPARSE, now=NOW)


def run(resources, shared, query: str) -> SearchResult:
    asked = parse_relative_query(query)
    return search(resources, shared, asked.resource_type, asked.params, lastn=asked.lastn)


def ids(resources):
    return [r["id"] for r in resources]


def with_patient(query: spec.BgzQuery, bsn: str) -> str:
    """The hospital-test-script form of a query: the patient named in it (SPEC §6)."""
    name = {"Patient": "identifier", "Coverage": "beneficiary.identifier"}.get(query.resource_type,
                                                                                "patient.identifier")
    sep = "&" if "?" in query.query else "?"
    return f"{query.query}{sep}{name}={spec.BSN_SYSTEM}|{bsn}"


# --- the 28 BgZ queries ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(QUERIES))
def test_every_bgz_query_answers_for_the_full_patient(number, full, shared):
    query = QUERIES[number]
    result = run(full, shared, query.query)
    assert result.matches, f"query {number} {query.query} has no matches"
    for match in result.matches:
        assert match["resourceType"] == query.resource_type
        assert query.profile in match["meta"]["profile"]
    include_types = {r["resourceType"] for r in result.includes}
    assert include_types == EXPECTED_INCLUDES.get(number, set())
    for included in result.includes:
        if len(query.profiles) > 1:
            assert included["meta"]["profile"][0] in query.profiles[1:]
    match_keys = {(m["resourceType"], m["id"]) for m in result.matches}
    include_keys = [(r["resourceType"], r["id"]) for r in result.includes]
    assert len(include_keys) == len(set(include_keys)) and not match_keys & set(include_keys)


@pytest.mark.parametrize("number", sorted(QUERIES))
def test_sparse_patient_answers_only_patient_and_coverage(number, sparse, shared):
    result = run(sparse, shared, QUERIES[number].query)
    if number in (1, 2):
        assert len(result.matches) == 1
        assert {r["resourceType"] for r in result.includes} == EXPECTED_INCLUDES[number]
    else:
        assert result.matches == [] and result.includes == []


@pytest.mark.parametrize("number", sorted(QUERIES))
def test_patient_named_in_the_query_gives_the_same_matches(number, full, shared):
    query = QUERIES[number]
    implied = run(full, shared, query.query)
    named = run(full, shared, with_patient(query, FULL.bsn))
    assert ids(named.matches) == ids(implied.matches)
    assert ids(named.includes) == ids(implied.includes)
    # someone else's BSN: nothing, even though the resources are this patient's
    assert run(full, shared, with_patient(query, OTHER.bsn)).matches == []


def test_named_form_with_revinclude_and_encoding(full, shared):
    query = spec.encode_query(with_patient(QUERIES[6], FULL.bsn) + "&_revinclude=Provenance:target")
    result = run(full, shared, query)
    assert {m["resourceType"] for m in result.matches} == {"Condition"} and result.includes == []


def test_documents_query(full, shared):
    result = run(full, shared, spec.DOCUMENTS_QUERY.query)
    assert [m["resourceType"] for m in result.matches] == ["DocumentReference"] * FULL.letters
    two = patient_resources(OTHER, now=NOW)
    assert len(run(two, shared, spec.DOCUMENTS_QUERY.query).matches) == OTHER.letters == 2


def test_lab_category_variant(full, shared):
    a = run(full, shared, QUERIES[22].query)
    b = run(full, shared, QUERIES[22].query.replace("275711006", "49581000146104"))
    assert ids(a.matches) == ids(b.matches) and len(a.matches) == 3


# --- $lastn ------------------------------------------------------------------------------------


def test_lastn_returns_only_the_newest_per_code(full, shared):
    everything = run(full, shared, "Observation?code=http://loinc.org|85354-9").matches
    newest = run(full, shared, QUERIES[19].query).matches
    assert len(everything) == 2 and len(newest) == 1
    assert newest[0]["effectiveDateTime"] == max(o["effectiveDateTime"] for o in everything)


def test_lastn_groups_per_code_and_sorts_descending(full, shared):
    result = run(full, shared, QUERIES[22].query)
    codes = [m["code"]["coding"][0]["code"] for m in result.matches]
    assert len(codes) == len(set(codes))
    times = [datetime.fromisoformat(m["effectiveDateTime"]) for m in result.matches]
    assert times == sorted(times, reverse=True)
    # the creatinine the eGFR derives from is a match already: not repeated as an include
    assert {r["resourceType"] for r in result.includes} == {"Specimen"}


def test_lastn_max(full, shared):
    result = run(full, shared, QUERIES[19].query + "&max=2")
    times = [m["effectiveDateTime"] for m in result.matches]
    assert len(times) == 2 and times == sorted(times, reverse=True)
    with pytest.raises(SearchError, match="max"):
        run(full, shared, QUERIES[19].query + "&max=0")


def test_lastn_uses_period_start_and_issued(shared):
    def obs(oid, **when):
        return {"resourceType": "Observation", "id": oid, "code": {"coding": [{"system": "s", "code": "c"}]},
                **when}
    resources = [obs("a", effectivePeriod={"start": "2020-01-01"}), obs("b", issued="2021-06-01T10:00:00Z"),
                 obs("c", effectiveDateTime="2019-05"), obs("d")]
    assert ids(search(resources, [], "Observation", [], lastn=True).matches) == ["b"]
    assert ids(search(resources, [], "Observation", [("max", "9")], lastn=True).matches) == ["b", "a", "c", "d"]


# --- token semantics ---------------------------------------------------------------------------


def test_token_forms(full, shared):
    def count(query):
        return len(run(full, shared, query).matches)

    assert count("Observation?code=http://loinc.org|85354-9") == 2
    assert count("Observation?code=85354-9") == 2
    assert count("Observation?code=http://snomed.info/sct|85354-9") == 0
    assert count("Observation?code=|85354-9") == 0
    assert count("Observation?code=http://loinc.org|") == 2 + 2 + 2 + 5  # BP, weight, height, lab
    assert count("Observation?code=http://loinc.org|85354-9,http://loinc.org|29463-7") == 4
    # repeated parameter = AND
    assert count("Observation?code=http://loinc.org|85354-9&code=http://loinc.org|29463-7") == 0
    assert count("Observation?code=http://loinc.org|8302-2&code=http://loinc.org|8308-9") == 2
    assert count("Encounter?class=IMP") == 1
    assert count("Encounter") == 2
    assert count("Encounter?class=http://hl7.org/fhir/v3/ActCode|AMB,http://hl7.org/fhir/v3/ActCode|IMP") == 2
    assert count("ProcedureRequest") == 2
    assert count("ProcedureRequest?status=active,completed") == 2
    assert count(f"Patient?identifier={spec.BSN_SYSTEM}|{FULL.bsn}") == 1
    assert count(f"Patient?identifier={FULL.bsn}") == 1
    assert count(f"Patient?_id={patient_id(FULL)}") == 1
    assert count("Observation?category=http://snomed.info/sct|118228005&status=final") == 2


def test_reference_parameters(full, shared):
    pid = patient_id(FULL)
    assert len(run(full, shared, f"Condition?patient={pid}").matches) == 2
    assert len(run(full, shared, f"Condition?subject=Patient/{pid}").matches) == 2
    assert len(run(full, shared, f"Condition?patient=http://x.example/fhir/Patient/{pid}").matches) == 2
    assert run(full, shared, "Condition?patient=other").matches == []
    assert len(run(full, shared, f"Appointment?patient={pid}").matches) == 1


def test_escaped_comma_is_not_or():
    resources = [{"resourceType": "Condition", "id": "x", "code": {"coding": [{"system": "s", "code": "a,b"}]}}]
    assert ids(search(resources, [], "Condition", [("code", "s|a\\,b")]).matches) == ["x"]
    assert search(resources, [], "Condition", [("code", "s|a,b")]).matches == []


# --- includes ----------------------------------------------------------------------------------


def test_include_target_type_filter(full, shared):
    only_patient = run(full, shared, "Coverage?_include=Coverage:payor:Patient")
    assert len(only_patient.matches) == 1 and only_patient.includes == []
    organization = run(full, shared, "Coverage?_include=Coverage:payor:Organization")
    assert [r["resourceType"] for r in organization.includes] == ["Organization"]


def test_includes_are_deduplicated(full, shared):
    query = "MedicationRequest?_include=MedicationRequest:medication&_include=MedicationRequest:medication"
    assert len(run(full, shared, query).includes) == 1
    both = [m for m in full if m["resourceType"] in ("MedicationRequest", "MedicationDispense")]
    assert len({m["medicationReference"]["reference"] for m in both}) == 1


def test_revinclude_provenance(full, shared):
    condition = next(r for r in full if r["resourceType"] == "Condition")
    provenance = {"resourceType": "Provenance", "id": "prov-1", "recorded": "2025-01-01T00:00:00Z",
                  "target": [{"reference": f"Condition/{condition['id']}", "display": "probleem"}]}
    unrelated = {"resourceType": "Provenance", "id": "prov-2", "recorded": "2025-01-01T00:00:00Z",
                 "target": [{"reference": "Condition/elsewhere", "display": "x"}]}
    resources = full + [provenance, unrelated]
    result = run(resources, shared, "Condition?_revinclude=Provenance:target")
    assert ids(result.includes) == ["prov-1"]
    assert run(resources, shared, "Condition").includes == []


def test_includes_resolve_in_shared_only_matches_in_resources(full, shared):
    result = search(full, shared, "Practitioner", [])
    assert result.matches == []  # shared resources are never matches
    result = run(full, shared, QUERIES[1].query)
    assert result.includes[0]["id"] in {r["id"] for r in shared}


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("query, word", [
    ("Condition?foo=bar", "foo"),
    ("Observation?code=a|b|c", "code"),
    ("Observation?code=", "code"),
    ("Observation?code=a,,b", "code"),
    ("Observation?code=|", "code"),
    ("Observation?code:below=bp", "code:below"),
    ("Observation?subject.foo=x", "subject.foo"),
    ("Observation?subject.organization.name=x", "subject.organization.name"),
    ("Observation?code.x=y", "code.x"),
    ("Observation?date=yesterday", "date"),
    ("Observation?value-quantity=5|kg", "value-quantity"),
    ("Observation?_has:Provenance:target:agent=x", "_has:Provenance:target:agent"),
    ("Observation?_summary=count", "_summary"),
    ("Observation?_include:iterate=Observation:subject", "_include:iterate"),
    ("Observation?subject:Medication.identifier=x", "subject:Medication.identifier"),
    ("Condition?_include=Condition:nope", "_include"),
    ("Condition?_include=Observation:subject", "_include"),
    ("Coverage?_include=Coverage:payor:Device", "_include"),
    ("Condition?_include=*", "_include"),
    ("Condition?_revinclude=Provenance:nope", "_revinclude"),
    ("Condition?max=2", "max"),
    ("Condition?_count=many", "_count"),
    ("Condition?_sort=date", "_sort"),
    ("Condition?patient=", "patient"),
])
def test_bad_queries_raise_search_error_naming_the_parameter(full, shared, query, word):
    with pytest.raises(SearchError) as err:
        run(full, shared, query)
    assert repr(word)[1:-1] in str(err.value)


def test_unsupported_type_and_lastn_elsewhere(full, shared):
    with pytest.raises(SearchError):
        search(full, shared, "Binary", [])
    with pytest.raises(SearchError, match=r"\$lastn"):
        search(full, shared, "Condition", [], lastn=True)


def test_count_pages_and_format_is_accepted(full, shared):
    result = run(full, shared, "Condition?_count=1&_format=json")
    assert len(result.matches) == 1 and result.total == 2 and result.next_offset == 1


# --- read --------------------------------------------------------------------------------------


def test_read(full):
    assert read(full, "Patient", patient_id(FULL))["identifier"][0]["value"] == FULL.bsn
    assert read(full, "Patient", "nope") is None
    assert read(full, "Condition", patient_id(FULL)) is None


def test_all_patients_answer_fast(shared):
    for p in PATIENTS:
        resources = patient_resources(p, now=NOW)
        for q in spec.BGZ_QUERIES:
            result = run(resources, shared, q.query)
            assert bool(result.matches) == (p.content == "full" or q.number in (1, 2))
