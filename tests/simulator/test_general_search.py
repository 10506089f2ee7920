"""The general STU3 search engine (issue 12): chains, _include/_revinclude on any reference parameter, date, string,
quantity and token modifiers, paging and the patient compartment.

Expected counts are made independently of the engine: from the corpus XML itself (lxml and plain Python) or from
data the tests build. The engine gets the corpus as the import reads it (testdata.fhir_import); the integration
tests load it into a real simulator the way `speeltuin patients import-fhir` does and search over HTTP with a real
pull token.
"""
from __future__ import annotations

import copy
import threading
import typing
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from lxml import etree

from simulator.fhir.search import SearchError, SearchResult, search, visible
from speeltuin.defaults import sqlite_url
from testdata.fhir_import import group_by_patient, load_file, rows_to_store, summarise
from tests.conftest import LiveNode, start_live_node, stop_live_node
from validators.query import parse_params, parse_relative_query
from validators.spec import BSN_SYSTEM
from validators.stu3 import ANY, SEARCH_PARAMS

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "nictiz-zib2017-examples"
NS = {"f": "http://hl7.org/fhir"}
UCUM = "http://unitsofmeasure.org"


# --- the corpus read independently: lxml over the XML files ---------------------------------------


@dataclass
class Doc:
    type: str
    id: str
    root: Any  # lxml element of the resource

    def values(self, path: str) -> list[str]:
        """`@value`s at a dotted path of child elements (`subject.reference`)."""
        xpath = "/".join(f"f:{step}" for step in path.split(".")) + "/@value"
        return [str(v) for v in self.root.xpath(xpath, namespaces=NS)]

    def value(self, path: str) -> str | None:
        found = self.values(path)
        return found[0] if found else None

    def refers_to_a_patient(self) -> bool:
        return bool(self.root.xpath(".//f:reference[starts-with(@value, 'Patient/')]", namespaces=NS))


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    found = []
    for path in sorted(CORPUS.glob("*.xml")):
        root = etree.parse(str(path)).getroot()
        found.append(Doc(etree.QName(root).localname, root.find("f:id", NS).get("value"), root))
    return found


def of_type(docs: list[Doc], resource_type: str) -> list[Doc]:
    return [d for d in docs if d.type == resource_type]


def keys(docs: list[Doc]) -> set[tuple[str, str]]:
    return {(d.type, d.id) for d in docs}


def ref_key(reference: str) -> tuple[str, str]:
    resource_type, _, resource_id = reference.partition("/")
    return resource_type, resource_id


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def bsn_of_patient(docs: list[Doc]) -> dict[str, str]:
    """Patient id -> BSN, for the corpus Patients that carry one."""
    found = {}
    for doc in of_type(docs, "Patient"):
        for identifier in doc.root.findall("f:identifier", NS):
            system = identifier.find("f:system", NS)
            if system is not None and system.get("value") == BSN_SYSTEM:
                found[doc.id] = identifier.find("f:value", NS).get("value")
    return found


# --- the engine over the corpus as the import reads it ---------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return [r for path in sorted(CORPUS.glob("*.xml")) for r in load_file(path, today=date.today()).resources]


def run(resources: list[dict], query: str, shared: list[dict] | None = None) -> SearchResult:
    asked = parse_relative_query(query)
    return search(resources, shared or [], asked.resource_type, asked.params, lastn=asked.lastn)


def ids(resources: list[dict]) -> set[tuple[str, str]]:
    return {(r["resourceType"], r["id"]) for r in resources}


def test_corpus_is_the_one_expected(docs) -> None:
    assert len(docs) == 208 and {"CareTeam", "Procedure", "Encounter", "ProcedureRequest"} <= {d.type for d in docs}


def test_procedure_chained_on_patient_identifier(docs, corpus) -> None:
    bsns = bsn_of_patient(docs)
    for bsn in sorted(set(bsns.values())):
        expected = {("Procedure", d.id) for d in of_type(docs, "Procedure")
                    if any(bsns.get(ref_key(r)[1]) == bsn for r in d.values("subject.reference")
                           if r.startswith("Patient/"))}
        for name in ("patient.identifier", "subject.identifier", "subject:Patient.identifier"):
            result = run(corpus, f"Procedure?{name}={BSN_SYSTEM}|{bsn}")
            assert ids(result.matches) == expected, (name, bsn)
    assert any(run(corpus, f"Procedure?patient.identifier={BSN_SYSTEM}|{b}").matches for b in bsns.values())


def test_careteam_active_with_participants(docs, corpus) -> None:
    active = [d for d in of_type(docs, "CareTeam") if d.value("status") == "active"]
    present = keys(docs)
    members = {ref_key(r) for d in active for r in d.values("participant.member.reference")}
    expected_includes = {k for k in members if k in present}
    result = run(corpus, "CareTeam?status=active&_include=CareTeam:participant")
    assert ids(result.matches) == keys(active) and len(active) >= 1
    assert ids(result.includes) == expected_includes and expected_includes
    only_practitioners = run(corpus, "CareTeam?status=active&_include=CareTeam:participant:Practitioner")
    assert ids(only_practitioners.includes) == {k for k in expected_includes if k[0] == "Practitioner"}


def test_careteam_chained_on_the_participants_name(docs, corpus) -> None:
    practitioners = {d.id: d for d in of_type(docs, "Practitioner")}

    def name_parts(doc: Doc) -> list[str]:
        return [fold(v) for part in ("family", "given", "prefix", "suffix", "text") for v in doc.values(f"name.{part}")]

    for word in ("dirk", "vaste", "nobody"):
        expected = {("CareTeam", d.id) for d in of_type(docs, "CareTeam")
                    if any(ref_key(r)[0] == "Practitioner" and ref_key(r)[1] in practitioners
                           and any(p.startswith(word) for p in name_parts(practitioners[ref_key(r)[1]]))
                           for r in d.values("participant.member.reference"))}
        assert ids(run(corpus, f"CareTeam?participant:Practitioner.name={word}").matches) == expected, word
        assert ids(run(corpus, f"CareTeam?participant.name={word}").matches) == expected, word
    assert ids(run(corpus, "CareTeam?participant.name=dirk").matches)  # the corpus has Dirk de Vries


def test_encounter_diagnosis_include_and_revinclude(docs, corpus) -> None:
    encounters = of_type(docs, "Encounter")
    present = keys(docs)
    diagnoses = {ref_key(r) for d in encounters for r in d.values("diagnosis.condition.reference")}
    result = run(corpus, "Encounter?_include=Encounter:diagnosis")
    assert ids(result.matches) == keys(encounters)
    assert ids(result.includes) == {k for k in diagnoses if k in present} and diagnoses
    # the Encounters that name a Procedure as their diagnosis, seen from the Procedures
    procedures = keys(of_type(docs, "Procedure"))
    naming = {("Encounter", d.id) for d in encounters
              if any(ref_key(r) in procedures for r in d.values("diagnosis.condition.reference"))}
    revinclude = run(corpus, "Procedure?_revinclude=Encounter:diagnosis")
    assert ids(revinclude.matches) == procedures and ids(revinclude.includes) == naming and naming
    one = "Procedure/zib-procedure-02"
    assert ids(run(corpus, f"Encounter?diagnosis={one}").matches) == {
        ("Encounter", d.id) for d in encounters if one in d.values("diagnosis.condition.reference")}
    # token on Encounter.class (a Coding in STU3)
    amb = {("Encounter", d.id) for d in encounters if d.value("class.code") == "AMB"}
    assert ids(run(corpus, "Encounter?class=http://hl7.org/fhir/v3/ActCode|AMB").matches) == amb


def test_procedurerequest_revincludes_and_chain(docs, corpus) -> None:
    requests_ = of_type(docs, "ProcedureRequest")
    request_keys = keys(requests_)
    reports = {("DiagnosticReport", d.id) for d in of_type(docs, "DiagnosticReport")
               if any(ref_key(r) in request_keys for r in d.values("basedOn.reference"))}
    plans = {("CarePlan", d.id) for d in of_type(docs, "CarePlan")
             if any(ref_key(r) in request_keys for r in d.values("activity.reference.reference"))}
    result = run(corpus, "ProcedureRequest?_revinclude=DiagnosticReport:based-on"
                         "&_revinclude=CarePlan:activity-reference")
    assert ids(result.matches) == request_keys
    assert ids(result.includes) == reports | plans and reports and plans
    active = {("ProcedureRequest", d.id) for d in requests_ if d.value("status") == "active"}
    assert ids(run(corpus, "ProcedureRequest?status=active").matches) == active
    chained = {("DiagnosticReport", d.id) for d in of_type(docs, "DiagnosticReport")
               if any(ref_key(r) in active for r in d.values("basedOn.reference"))}
    assert ids(run(corpus, "DiagnosticReport?based-on:ProcedureRequest.status=active").matches) == chained


def test_procedure_based_on_with_built_data(corpus) -> None:
    """Procedure?…&_include=Procedure:based-on, as the hospital BgZ asks; the corpus has no basedOn, so we add it."""
    request = next(r for r in corpus if r["resourceType"] == "ProcedureRequest")
    procedures = [copy.deepcopy(r) for r in corpus if r["resourceType"] == "Procedure"]
    based = {p["id"] for p in procedures[::2]}
    for p in procedures:
        if p["id"] in based:
            p["basedOn"] = [{"reference": f"ProcedureRequest/{request['id']}", "display": "aanvraag"}]
    data = procedures + [request]
    result = run(data, "Procedure?_include=Procedure:based-on")
    assert len(result.matches) == len(procedures) and ids(result.includes) == {("ProcedureRequest", request["id"])}
    found = run(data, f"Procedure?based-on=ProcedureRequest/{request['id']}")
    assert {m["id"] for m in found.matches} == based
    assert {m["id"] for m in run(data, f"Procedure?based-on={request['id']}").matches} == based
    unbased = {p["id"] for p in procedures} - based
    assert {m["id"] for m in run(data, "Procedure?based-on:missing=true").matches} == unbased
    rev = run(data, "ProcedureRequest?_revinclude=Procedure:based-on")
    assert {r["id"] for r in rev.includes} == based


# --- dates, strings, quantities ------------------------------------------------------------------


def _date_values(doc: Doc, element: str) -> tuple[list[str], list[tuple[str | None, str | None]]]:
    """The dateTime values and the (start, end) Periods of a choice element such as effective[x]."""
    points = doc.values(f"{element}DateTime")
    periods = [(p.find("f:start", NS), p.find("f:end", NS)) for p in doc.root.findall(f"f:{element}Period", NS)]
    return points, [(s.get("value") if s is not None else None, e.get("value") if e is not None else None)
                    for s, e in periods]


def test_dates_observation_in_a_year(docs, corpus) -> None:
    def in_2013(doc: Doc) -> bool:
        points, periods = _date_values(doc, "effective")
        return any(p[:4] == "2013" for p in points) or any(
            s is not None and e is not None and s[:4] == "2013" and e[:4] == "2013" for s, e in periods)

    expected = {("Observation", d.id) for d in of_type(docs, "Observation") if in_2013(d)}
    assert expected and ids(run(corpus, "Observation?date=2013").matches) == expected


def test_dates_condition_onset_before(docs, corpus) -> None:
    def onset_before_2010(doc: Doc) -> bool:
        points, periods = _date_values(doc, "onset")
        return any(p[:4] < "2010" for p in points) or any(s is None or s[:4] < "2010" for s, e in periods)

    expected = {("Condition", d.id) for d in of_type(docs, "Condition") if onset_before_2010(d)}
    assert expected and ids(run(corpus, "Condition?onset-date=lt2010").matches) == expected


def test_dates_encounter_periods_start_after_and_end_before(docs, corpus) -> None:
    encounters = of_type(docs, "Encounter")
    starts_after = {("Encounter", d.id) for d in encounters
                    if (d.value("period.start") or "0000") [:4] > "2012"}
    ends_before = {("Encounter", d.id) for d in encounters
                   if d.value("period.end") is not None and d.value("period.end")[:4] < "2015"}
    assert ids(run(corpus, "Encounter?date=sa2012").matches) == starts_after
    assert ids(run(corpus, "Encounter?date=eb2015").matches) == ends_before
    assert starts_after | ends_before


def test_dates_precision_and_prefixes() -> None:
    def obs(oid: str, **when: Any) -> dict:
        return {"resourceType": "Observation", "id": oid, **when}

    data = [obs("day", effectiveDateTime="2020-03-04"),
            obs("minute", effectiveDateTime="2020-03-04T10:15:00+01:00"),
            obs("open", effectivePeriod={"start": "2020-03-01"}),
            obs("closed", effectivePeriod={"start": "2019-12-30", "end": "2020-01-02"}),
            obs("none")]

    def found(query: str) -> set[str]:
        return {m["id"] for m in run(data, "Observation?" + query).matches}

    assert found("date=2020-03-04") == {"day", "minute"}
    assert found("date=2020-03") == {"day", "minute"}  # the open period runs beyond March
    assert found("date=2020") == {"day", "minute"}
    assert found("date=ne2020-03-04") == {"open", "closed"}
    assert found("date=gt2020-03-04") == {"open"}
    assert found("date=ge2020-03-04") == {"day", "minute", "open"}
    assert found("date=lt2020-03-01") == {"closed"}
    assert found("date=le2020-03-04") == {"day", "minute", "open", "closed"}
    assert found("date=sa2020-01-02") == {"day", "minute", "open"}
    assert found("date=eb2020-01-03") == {"closed"}
    assert found("date=2020-03-04T09:15:00Z") == {"minute"}
    assert found("date=2020-03-04T10:15:00 01:00") == {"minute"}  # a '+' decoded as space by a form decoder
    assert found("date=lt2000,2020-03-04") == {"day", "minute"}
    assert found("date:missing=true") == {"none"}


def test_strings_patient_names_and_addresses(docs, corpus) -> None:
    patients = of_type(docs, "Patient")

    def parts(doc: Doc, path: str, names: tuple[str, ...]) -> list[str]:
        return [v for n in names for v in doc.values(f"{path}.{n}")]

    name_parts = ("family", "given", "prefix", "suffix", "text")
    for word in ("johan", "XXX_h", "xxx", "de"):
        expected = {("Patient", d.id) for d in patients
                    if any(fold(p).startswith(fold(word)) for p in parts(d, "name", name_parts))}
        assert ids(run(corpus, f"Patient?name={word}").matches) == expected, word
    families = {v for d in patients for v in d.values("name.family")}
    family = sorted(families)[0]
    assert ids(run(corpus, f"Patient?family:exact={family}").matches) == {
        ("Patient", d.id) for d in patients if family in d.values("name.family")}
    assert not run(corpus, f"Patient?family:exact={family.upper()}").matches or family == family.upper()
    cities = sorted({v for d in patients for v in d.values("address.city")})
    assert cities
    for city in cities[:2]:
        fragment = city[1:4]
        expected = {("Patient", d.id) for d in patients
                    if any(fold(fragment) in fold(c) for c in d.values("address.city"))}
        assert expected and ids(run(corpus, f"Patient?address-city:contains={fragment}").matches) == expected
    organizations = of_type(docs, "Organization")
    for word in ("maatschap", "ziekenhuis", "umcg"):
        expected = {("Organization", d.id) for d in organizations
                    if any(fold(v).startswith(word) for v in d.values("name") + d.values("alias"))}
        assert ids(run(corpus, f"Organization?name={word}").matches) == expected, word
    with_umcg = {("Organization", d.id) for d in organizations if any("umcg" in fold(v) for v in d.values("name"))}
    assert with_umcg and ids(run(corpus, "Organization?name:contains=UMCG").matches) == with_umcg


def test_strings_are_accent_and_case_insensitive() -> None:
    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "Çelik-Noermohamed", "given": ["Ghaniya"]}],
               "address": [{"line": ["Heiligeweg 12"], "city": "'s-Hertogenbosch"}]}
    for query, hit in (("name=celik", True), ("name=ÇELIK", True), ("family=noer", False),
                       ("family:contains=noer", True), ("family:exact=Çelik-Noermohamed", True),
                       ("family:exact=celik-noermohamed", False), ("given=gha", True), ("address=heilige", True),
                       ("address-city='s-her", True), ("name=ghaniya,nobody", True), ("name=x&name=celik", False)):
        assert bool(run([patient], f"Patient?{query}").matches) == hit, query


def test_quantities(docs, corpus) -> None:
    observations = of_type(docs, "Observation")

    def quantities(doc: Doc, element: str) -> list[tuple[float, str | None, str | None, str | None]]:
        found = []
        for q in doc.root.xpath(element, namespaces=NS):
            value = q.find("f:value", NS)
            if value is not None:
                found.append((float(value.get("value")), *(q.find(f"f:{k}", NS).get("value")
                                                           if q.find(f"f:{k}", NS) is not None else None
                                                           for k in ("system", "code", "unit"))))
        return found

    heavier = {("Observation", d.id) for d in observations
               if any(v > 70 and s == UCUM and c == "kg" for v, s, c, _ in quantities(d, "f:valueQuantity"))}
    assert heavier and ids(run(corpus, f"Observation?value-quantity=gt70|{UCUM}|kg").matches) == heavier
    exact = {("Observation", d.id) for d in observations
             if any(71.5 <= v < 72.5 and "kg" in (c, u) for v, _, c, u in quantities(d, "f:valueQuantity"))}
    assert ids(run(corpus, "Observation?value-quantity=72||kg").matches) == exact
    for bound in (100, 120):
        pressure = {("Observation", d.id) for d in observations
                    if any(v >= bound and c == "mm[Hg]" for v, _, c, _ in quantities(d, "f:component/f:valueQuantity"))}
        found = run(corpus, f"Observation?component-value-quantity=ge{bound}|{UCUM}|mm[Hg]").matches
        assert ids(found) == pressure and (pressure or bound > 100)


def test_token_modifiers() -> None:
    data = [{"resourceType": "Condition", "id": "a", "code": {"coding": [{"system": "s", "code": "1",
                                                                          "display": "Diabetes mellitus"}]},
             "clinicalStatus": "active"},
            {"resourceType": "Condition", "id": "b", "code": {"text": "Astma"}, "clinicalStatus": "resolved"},
            {"resourceType": "Condition", "id": "c"}]

    def found(query: str) -> set[str]:
        return {m["id"] for m in run(data, "Condition?" + query).matches}

    assert found("code:text=diab") == {"a"} and found("code:text=ASTM") == {"b"}
    assert found("clinical-status:not=active") == {"b", "c"}
    assert found("code:missing=true") == {"c"} and found("code:missing=false") == {"a", "b"}
    assert found("_id=a,c") == {"a", "c"}
    with pytest.raises(SearchError, match="code:missing"):
        found("code:missing=maybe")


def test_sort() -> None:
    data = [{"resourceType": "Procedure", "id": i, "performedDateTime": d, "status": s}
            for i, d, s in (("a", "2020-01-01", "completed"), ("b", "2021-01-01", "in-progress"),
                            ("c", "2019-01-01", "completed"))] + [{"resourceType": "Procedure", "id": "d"}]
    assert [m["id"] for m in run(data, "Procedure?_sort=date").matches] == ["c", "a", "b", "d"]
    assert [m["id"] for m in run(data, "Procedure?_sort=-date").matches] == ["b", "a", "c", "d"]
    assert [m["id"] for m in run(data, "Procedure?_sort=status,-date").matches] == ["a", "c", "b", "d"]
    with pytest.raises(SearchError, match="_sort"):
        run(data, "Procedure?_sort=subject")


def test_paging_over_the_engine(corpus) -> None:
    everything = run(corpus, "Observation").matches
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = run(corpus, f"Observation?_count=7&_offset={offset}")
        assert page.total == len(everything) and len(page.matches) <= 7
        seen += [m["id"] for m in page.matches]
        offset = page.next_offset
    assert seen == [m["id"] for m in everything]
    only_total = run(corpus, "Observation?_count=0")
    assert only_total.matches == [] and only_total.total == len(everything) and only_total.next_offset is None


def test_lastn_with_the_new_engine(docs, corpus) -> None:
    weights = [d for d in of_type(docs, "Observation") if "29463-7" in d.values("code.coding.code")]
    newest = max(weights, key=lambda d: d.value("effectiveDateTime") or "")
    result = run(corpus, "Observation/$lastn?code=http://loinc.org|29463-7")
    assert [m["id"] for m in result.matches] == [newest.id]
    every = run(corpus, f"Observation/$lastn?code=http://loinc.org|29463-7&max={len(weights)}")
    assert len(every.matches) == len(weights)


# --- the patient's compartment -------------------------------------------------------------------


def test_includes_and_chains_never_reach_another_patients_resources() -> None:
    me = {"resourceType": "Patient", "id": "me", "identifier": [{"system": BSN_SYSTEM, "value": "999900006"}]}
    other = {"resourceType": "Patient", "id": "other"}  # shared: a patient without BSN
    mine = {"resourceType": "Observation", "id": "mine", "subject": {"reference": "Patient/me"},
            "related": [{"target": {"reference": "Observation/theirs"}}, {"target": {"reference": "Observation/free"}}],
            "performer": [{"reference": "Practitioner/doc"}]}
    theirs = {"resourceType": "Observation", "id": "theirs", "subject": {"reference": "Patient/other"}}
    logical = {"resourceType": "Observation", "id": "logical",
               "subject": {"identifier": {"system": BSN_SYSTEM, "value": "999900018"}}}
    free = {"resourceType": "Observation", "id": "free"}  # refers to no patient: may be shared
    doc = {"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Arts"}]}
    clean = {"resourceType": "Provenance", "id": "clean", "target": [{"reference": "Observation/mine"}]}
    mixed = {"resourceType": "Provenance", "id": "mixed",
             "target": [{"reference": "Observation/mine"}, {"reference": "Patient/other"}]}
    shared = [other, theirs, logical, free, doc, clean, mixed]
    own = [me, mine]
    result = run(own, "Observation?_include=Observation:related-target&_include=Observation:performer"
                      "&_revinclude=Provenance:target&_include=Observation:subject", shared)
    assert ids(result.matches) == {("Observation", "mine")}
    assert ids(result.includes) == {("Observation", "free"), ("Practitioner", "doc"), ("Provenance", "clean"),
                                    ("Patient", "me")}
    assert run(own, "Observation?related-target.subject=Patient/other", shared).matches == []
    assert ids(run(own, "Observation?performer.name=arts", shared).matches) == {("Observation", "mine")}
    assert ids(run(own, "Patient?_revinclude=Observation:subject", shared).includes) == {("Observation", "mine")}
    assert visible(own, shared, "Practitioner", "doc") is doc
    assert [visible(own, shared, *key) for key in (("Observation", "theirs"), ("Patient", "other"),
                                                   ("Observation", "logical"), ("Provenance", "mixed"))] == [None] * 4
    assert run(own, "Practitioner", shared).matches == []  # shared resources are never matches


# --- the STU3 table itself -----------------------------------------------------------------------


def test_every_parameter_path_exists_in_the_stu3_models() -> None:
    """Each path of validators.stu3 walks real STU3 elements (fhir.resources) and ends in the right data type."""
    from fhir.resources.STU3 import get_fhir_model_class

    leaf_types = {"token": {"Code", "Coding", "CodeableConcept", "Identifier", "bool", "ContactPoint", "Id", "String",
                            "Uri"},
                  "reference": {"Reference"}, "date": {"Date", "DateTime", "Instant", "Period", "Timing"},
                  "string": {"String", "HumanName", "Address", "Markdown"},
                  "quantity": {"Quantity", "Age", "Duration", "SimpleQuantity", "Money"},
                  "number": {"Integer", "PositiveInt", "Decimal", "UnsignedInt"}, "uri": {"Uri"}}

    def type_names(annotation: Any) -> Iterator[str]:
        if typing.get_origin(annotation) is typing.Annotated:
            yield type(annotation.__metadata__[0]).__name__
            return
        args = typing.get_args(annotation)
        if args:
            for arg in args:
                yield from type_names(arg)
        elif annotation is not type(None):
            name = getattr(annotation, "__name__", str(annotation))
            yield name[:-4] if name.endswith("Type") else name

    def walk(type_name: str, path: str) -> set[str]:
        current = {type_name}
        for step in path.split("."):
            name, _, condition = step.partition("(")
            choice = name.endswith("[x]")
            name = name.removesuffix("[x]")
            following: set[str] = set()
            for t in current:
                fields = {(f.alias or k): f for k, f in get_fhir_model_class(t).model_fields.items()}
                matching = [k for k in fields if k == name or (choice and k.startswith(name) and len(k) > len(name)
                                                               and k[len(name)].isupper() and "__" not in k)]
                assert matching, f"{t} has no element {step} ({type_name} {path})"
                following |= {n for k in matching for n in type_names(fields[k].annotation)}
            current = following
        return current

    for resource_type, params in SEARCH_PARAMS.items():
        for param in params.values():
            for path in param.paths:
                leaves = walk(resource_type, path)
                assert leaves <= leaf_types[param.type], (resource_type, param.name, path, leaves)
            if param.type == "reference" and param.targets != ANY:
                for target in param.targets:
                    assert get_fhir_model_class(target), target


# --- over HTTP: the real simulator, loaded data and a pull token ---------------------------------

MINE = "999900006"
COPIED = ("Procedure", "ProcedureRequest", "Encounter", "CareTeam")


def _remap(node: Any, copied: set[tuple[str, str]]) -> None:
    """Point Patient references at our patient and references to copied resources at their copies."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and "/" in ref:
            key = ref_key(ref)
            if key[0] == "Patient":
                node["reference"] = "Patient/gs-patient"
            elif key in copied:
                node["reference"] = f"{key[0]}/gs-{key[1]}"
        for value in node.values():
            _remap(value, copied)
    elif isinstance(node, list):
        for item in node:
            _remap(item, copied)


def _built_data(corpus: list[dict]) -> list[dict]:
    """Our patient (with a BSN) owning copies of the corpus's Procedures, ProcedureRequests, Encounters and
    CareTeams; completed Procedures based on the first ProcedureRequest; Observations and Provenances that point
    at other patients' resources."""
    originals = [r for r in corpus if r["resourceType"] in COPIED]
    copied = {(r["resourceType"], r["id"]) for r in originals}
    built: list[dict] = [{"resourceType": "Patient", "id": "gs-patient", "identifier": [{"system": BSN_SYSTEM,
                                                                                          "value": MINE}],
                          "name": [{"family": "Çelik", "given": ["Ghaniya"]}], "gender": "female"}]
    for original in originals:
        resource = copy.deepcopy(original)
        resource["id"] = "gs-" + original["id"]
        _remap(resource, copied)
        if resource["resourceType"] == "CareTeam":  # the corpus's CareTeam names no patient: make it ours
            resource.setdefault("subject", {"reference": "Patient/gs-patient", "display": "Ghaniya Çelik"})
        if resource["resourceType"] == "Procedure" and resource.get("status") == "completed":
            resource["basedOn"] = [{"reference": "ProcedureRequest/gs-zib-procedurerequest-01", "display": "x"}]
        built.append(resource)
    subject = {"reference": "Patient/gs-patient", "display": "Ghaniya Çelik"}
    built += [
        {"resourceType": "Observation", "id": "gs-obs-1", "status": "final", "subject": subject,
         "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "weight"}]},
         "effectiveDateTime": "2020-05-01T10:00:00+02:00",
         "valueQuantity": {"value": 80, "unit": "kg", "system": UCUM, "code": "kg"},
         "related": [{"target": {"reference": "Observation/gs-obs-2", "display": "x"}},
                     {"target": {"reference": "Observation/gpdata-observation-contact04-e", "display": "x"}}]},
        {"resourceType": "Observation", "id": "gs-obs-2", "status": "final", "subject": subject,
         "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "weight"}]},
         "effectiveDateTime": "2021-05-01", "valueQuantity": {"value": 64.5, "unit": "kg", "system": UCUM,
                                                              "code": "kg"}},
        {"resourceType": "Provenance", "id": "gs-prov-clean", "recorded": "2020-05-01T10:00:00Z",
         "target": [{"reference": "Procedure/gs-zib-procedure-01"}]},
        {"resourceType": "Provenance", "id": "gs-prov-mixed", "recorded": "2020-05-01T10:00:00Z",
         "target": [{"reference": "Procedure/gs-zib-procedure-01"}, {"reference": "Patient/gpdata-patient-01"}]},
    ]
    return built


@dataclass
class Served:
    fhir_base: str
    token: str
    node: LiveNode

    def get(self, query: str) -> requests.Response:
        return requests.get(f"{self.fhir_base}/{query}", headers={"Authorization": f"Bearer {self.token}",
                                                                  "Accept": "application/fhir+json"}, timeout=30)

    def bundle(self, query: str) -> dict:
        response = self.get(query)
        assert response.status_code == 200, response.text
        return response.json()


def entries(bundle: dict, mode: str) -> set[tuple[str, str]]:
    return {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle.get("entry", [])
            if e["search"]["mode"] == mode}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, corpus: list[dict]) -> Iterator[Served]:
    from scenarios.pairing import pair_sessions

    folder = tmp_path_factory.mktemp("general-search")
    sim, sim_server = start_live_node(sqlite_url(folder / "sim.sqlite"), ura="90000101", client_id="sim", name="sim")
    ven, ven_server = start_live_node(sqlite_url(folder / "ven.sqlite"), ura="90000202", client_id="ven", name="ven")
    try:
        ven.runtime.config.auto_pull = False
        # what `speeltuin patients import-fhir CORPUS OURS` does: group per patient, shared otherwise, load
        grouped = group_by_patient([summarise(r) for r in corpus + _built_data(corpus)])
        assert len(grouped.patients[MINE]) == 1 + sum(r["resourceType"] in COPIED for r in corpus) + 2
        sim.runtime.store.load_resource_texts(rows_to_store(grouped), replace=False)
        endpoints = pair_sessions(sim, ven, vendor_role="receiver", sim_id="sim-gs", ven_id="ven-gs")
        notified = sim.api("POST", "/sessions/sim-gs/notify", json={"bsn": MINE})
        assert notified.status_code == 200, notified.text
        base = next(i["valueString"] for i in notified.json()["task"]["input"] if "valueString" in i)
        url = endpoints["token_url"]
        form = ven.runtime.signer.token_request_form("ven", "90000202", url, base)
        answer = requests.post(url, data=form, timeout=30)
        assert answer.status_code == 200, answer.text
        yield Served(endpoints["fhir_base"], answer.json()["access_token"], sim)
    finally:
        for node, server in ((sim, sim_server), (ven, ven_server)):
            stop_live_node(node, server)


def _expected_key(key: tuple[str, str], docs: list[Doc]) -> tuple[str, str] | None:
    """Where a reference of a copied resource lands for our patient, or None when it may not be seen."""
    if key[0] == "Patient":
        return "Patient", "gs-patient"
    if key[0] in COPIED:
        return key[0], "gs-" + key[1]
    doc = next((d for d in docs if (d.type, d.id) == key), None)
    return key if doc is not None and not doc.refers_to_a_patient() else None  # shared, of no patient


def test_http_procedure_named_patient_with_based_on(served, docs) -> None:
    procedures = of_type(docs, "Procedure")
    completed = {("Procedure", "gs-" + d.id) for d in procedures if d.value("status") == "completed"}
    bundle = served.bundle(f"Procedure?patient.identifier={BSN_SYSTEM}%7C{MINE}&_include=Procedure:based-on")
    assert entries(bundle, "match") == {("Procedure", "gs-" + d.id) for d in procedures}
    assert bundle["total"] == len(procedures)
    assert entries(bundle, "include") == ({("ProcedureRequest", "gs-zib-procedurerequest-01")} if completed else set())
    based = served.bundle("Procedure?based-on=ProcedureRequest/gs-zib-procedurerequest-01")
    assert entries(based, "match") == completed and completed
    # another patient named in the query, in any chained form: refused (SPEC §5.4)
    for named in (f"patient.identifier={BSN_SYSTEM}%7C999911120", "patient.identifier=999911120",
                  f"subject:Patient.identifier={BSN_SYSTEM}%7C999911120",
                  f"performer:Patient.identifier={BSN_SYSTEM}%7C999911120"):
        assert served.get(f"Procedure?{named}").status_code == 403, named
    assert served.get("Procedure?performer.identifier=12345678").status_code == 200  # not a BSN


def test_http_careteam_with_participants(served, docs) -> None:
    active = [d for d in of_type(docs, "CareTeam") if d.value("status") == "active"]
    members = {_expected_key(ref_key(r), docs) for d in active for r in d.values("participant.member.reference")}
    bundle = served.bundle("CareTeam?status=active&_include=CareTeam:participant")
    assert entries(bundle, "match") == {("CareTeam", "gs-" + d.id) for d in active} and active
    assert entries(bundle, "include") == members - {None} and members - {None}


def test_http_encounter_and_procedurerequest(served, docs) -> None:
    encounters = of_type(docs, "Encounter")
    diagnoses = {_expected_key(ref_key(r), docs) for d in encounters for r in d.values("diagnosis.condition.reference")}
    bundle = served.bundle(f"Encounter?patient.identifier={BSN_SYSTEM}%7C{MINE}&_include=Encounter:diagnosis")
    assert entries(bundle, "match") == {("Encounter", "gs-" + d.id) for d in encounters}
    # Conditions of the corpus belong to another patient: never included
    assert entries(bundle, "include") == diagnoses - {None} and None in diagnoses
    active = {("ProcedureRequest", "gs-" + d.id) for d in of_type(docs, "ProcedureRequest")
              if d.value("status") == "active"}
    completed = {("Procedure", "gs-" + d.id) for d in of_type(docs, "Procedure") if d.value("status") == "completed"}
    requests_ = served.bundle("ProcedureRequest?status=active&_revinclude=Procedure:based-on")
    assert entries(requests_, "match") == active
    assert entries(requests_, "include") == (completed if ("ProcedureRequest", "gs-zib-procedurerequest-01") in active
                                             else set())
    # a dateTime with its '+' sent unencoded (a form decoder makes it a space)
    starts = {("Encounter", "gs-" + d.id) for d in encounters if (d.value("period.start") or "")[:4] >= "2013"}
    assert entries(served.bundle("Encounter?date=sa2012-12-31T23:59:59+01:00"), "match") == starts


def test_http_includes_and_revincludes_keep_to_the_patient(served) -> None:
    observation = served.bundle("Observation?_id=gs-obs-1&_include=Observation:related-target")
    assert entries(observation, "include") == {("Observation", "gs-obs-2")}
    provenance = served.bundle("Procedure?_id=gs-zib-procedure-01&_revinclude=Provenance:target")
    assert entries(provenance, "include") == {("Provenance", "gs-prov-clean")}
    assert served.get("Observation/gpdata-observation-contact04-e").status_code == 404
    assert served.get("Patient/gpdata-patient-01").status_code == 404
    assert served.get("Practitioner/nl-core-practitioner-02").status_code == 200
    heavy = served.bundle(f"Observation?value-quantity=gt70|{UCUM}|kg".replace("|", "%7C"))
    assert entries(heavy, "match") == {("Observation", "gs-obs-1")}
    named = served.bundle("Patient?name=celik")
    assert entries(named, "match") == {("Patient", "gs-patient")}


def test_http_paging_follows_next_to_the_end(served, docs) -> None:
    expected = {("Procedure", "gs-" + d.id) for d in of_type(docs, "Procedure")}
    query = f"Procedure?patient.identifier={BSN_SYSTEM}%7C{MINE}&_count=3"
    url: str | None = f"{served.fhir_base}/{query}"
    seen: list[tuple[str, str]] = []
    pages = 0
    while url is not None:
        response = requests.get(url, headers={"Authorization": f"Bearer {served.token}"}, timeout=30)
        assert response.status_code == 200, response.text
        bundle = response.json()
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        asked = parse_params(url.split("?", 1)[1])
        assert all(pair in parse_params(links["self"].split("?", 1)[1]) for pair in asked)  # SPEC §6.1
        assert bundle["total"] == len(expected) and len(entries(bundle, "match")) <= 3
        assert ("previous" in links) == (pages > 0)
        seen += [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
        url = links.get("next")
        pages += 1
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert pages == -(-len(expected) // 3)


@pytest.mark.parametrize("query, named", [
    ("Procedure?foo=bar", "foo"),
    ("CareTeam?_include=CareTeam:nope", "_include"),
    ("Encounter?date=yesterday", "date"),
    ("Procedure?based-on.foo=1", "based-on.foo"),
    ("Procedure?status:below=x", "status:below"),
    ("Procedure?_elements=id", "_elements"),
    ("Binary?_id=x", "Binary"),
])
def test_http_unsupported_is_a_400_naming_it(served, query, named) -> None:
    response = served.get(query)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and named in outcome["issue"][0]["diagnostics"]


def test_threads_share_nothing(served) -> None:
    """Concurrent searches (the server is threaded) answer as alone."""
    answers: list[int] = []

    def ask() -> None:
        answers.append(len(served.bundle("Procedure?_include=Procedure:based-on")["entry"]))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(answers)) == 1
