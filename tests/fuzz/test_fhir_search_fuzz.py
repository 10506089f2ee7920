"""Fuzzing the simulator's FHIR search over HTTP: `GET /s/<session>/fhir/<Type>?...` and `Observation/$lastn` with a
valid pull token (SPEC §5.4, §6). Written against the HTTP interface only: the search engine is being rewritten.

Whatever the parameter names (modifiers, chains, unknown ones) and values (Unicode digits, 5000-digit numbers,
percent-escapes, repeats): never a 5xx, never a traceback; a search that is not answered 200 gets an
OperationOutcome, one that is gets a searchset Bundle.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.conftest import (
    HUGE_DIGITS,
    NASTY_TEXT,
    PULL_SESSION,
    FuzzNode,
    assert_no_traceback,
    assert_operation_outcome,
    fuzz,
    unicode_digits,
)

TYPES = ["Patient", "Observation", "Condition", "AllergyIntolerance", "MedicationStatement", "MedicationRequest",
         "MedicationDispense", "Procedure", "Encounter", "Flag", "Coverage", "Consent", "Immunization", "Device",
         "DeviceUseStatement", "DocumentReference", "Binary", "Organization", "Practitioner", "PractitionerRole",
         "NutritionOrder", "Specimen", "EpisodeOfCare", "ProcedureRequest", "Appointment", "DiagnosticReport",
         "RelatedPerson", "Location", "Task", "Bundle", "OperationOutcome", "Xyz"]
NAMES = ["_id", "_lastUpdated", "_profile", "_tag", "_security", "_count", "_offset", "_sort", "_include",
         "_revinclude", "_summary", "_elements", "_has", "_text", "_content", "_list", "_query", "_format", "max",
         "patient", "subject", "code", "category", "status", "clinical-status", "verification-status", "date",
         "effective", "onset-date", "value-quantity", "value-string", "value-concept", "combo-code", "identifier",
         "type", "period", "context", "encounter", "performer", "name", "family", "given", "birthdate", "gender",
         "address", "telecom", "organization", "beneficiary", "payor", "authored", "medication", "based-on",
         "part-of", "related-target", "relatesto", "created", "indexed", "class", "reason", "probability",
         "patient.identifier", "subject.identifier", "subject:Patient.identifier", "beneficiary.identifier",
         "patient.name", "subject:Group.name", "performer:Practitioner.identifier", "a.b.c", "patient.a.b.c"]
MODIFIERS = ["", "", "", ":exact", ":missing", ":not", ":text", ":contains", ":above", ":below", ":in", ":not-in",
             ":Patient", ":identifier", ":type", "::", ":"]
PREFIXES = ["", "", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx"]
PAGING = ("_count", "_offset", "max")

numbers = st.one_of(st.integers(-10 ** 6, 10 ** 6).map(str), st.floats(allow_nan=True).map(str), unicode_digits,
                    st.sampled_from(["1e400", "-0", "00", "0", "1.", ".5", "1,000", HUGE_DIGITS, "9" * 400,
                                     "1" + "0" * 4300, "2" * 4301]))
dates = st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat() + "Z"),
                  st.sampled_from(["2020", "2020-01", "2020-13", "2020-01-01T25:00:00Z", "2020-01-01T00:00:00+99:00",
                                   "0000-00-00", "9999", "١٩٩٩-٠١-٠١", "2020-01-01T00:00"]))
tokens = st.builds(lambda s, sep, c: f"{s}{sep}{c}", st.sampled_from(["", "http://loinc.org", "urn:oid:2.16",
                                                                    "http://fhir.nl/fhir/NamingSystem/bsn"]),
                   st.sampled_from(["|", "", "||", "%7C"]),
                   st.one_of(st.sampled_from(["999993653", "999990639", "8480-6", "", "*"]), st.text(max_size=10)))
includes = st.builds(lambda a, b, c: f"{a}:{b}{c}", st.sampled_from(TYPES + ["*", ""]),
                     st.sampled_from(["patient", "subject", "*", "performer", "x", ""]),
                     st.sampled_from(["", ":Patient", ":Practitioner", ":", ":x:y"]))
values = st.one_of(
    st.tuples(st.sampled_from(PREFIXES), st.one_of(numbers, dates)).map("".join),
    tokens, includes, st.sampled_from(NASTY_TEXT), st.text(max_size=20),
    st.lists(st.text(max_size=5), min_size=2, max_size=4).map(",".join),
    st.sampled_from(["-date", "date,-code", "_id", "-", ",", "true", "false", "count", "data", "text"]),
)
names = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(MODIFIERS)).map("".join),
    st.lists(st.sampled_from(NAMES + ["x", ""]), min_size=2, max_size=4).map(".".join),
    st.text(max_size=12),
)
# Raw query text: escapes as a client may break them (`%`, `%zz`, `%E2%82`, `%00`), `&` and `=` where they split.
raw_queries = st.lists(st.one_of(st.sampled_from(["%", "%zz", "%E2%82", "%00", "%2", "%25", "&", "=", "+", "#", ";",
                                                  "_count=", "max=", "_include=", "|", ","]),
                                 st.characters(max_codepoint=0x2FF)), max_size=40).map("".join)


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def searches(draw: st.DrawFn) -> tuple[str, str]:
    """A path under the session's FHIR base and an ASCII query string."""
    lastn = draw(st.integers(0, 3)) == 0
    resource_type = "Observation" if lastn else draw(st.sampled_from(TYPES))
    path = f"{resource_type}/$lastn" if lastn else resource_type
    if draw(st.integers(0, 4)) == 0:
        raw = draw(raw_queries)
        return path, quote(raw.encode("utf-8", "surrogatepass"), safe="%&=+;|,:/")
    pairs = draw(st.lists(st.tuples(names, values), max_size=5))
    if draw(st.booleans()):  # paging and result parameters, often repeated
        pairs += draw(st.lists(st.tuples(st.sampled_from(PAGING + ("_include", "_revinclude", "_sort")), values),
                               min_size=1, max_size=3))
    return path, "&".join(f"{_encode(n)}={_encode(v)}" for n, v in pairs)


@pytest.fixture(scope="module")
def pull_headers(node: FuzzNode) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.pull_token()}", "Accept": "application/fhir+json"}


def _check(answer: Any) -> None:
    text = answer.get_data(as_text=True)
    assert answer.status_code < 500, f"{answer.status_code}: {text[:2000]}"
    assert_no_traceback(text)
    event(str(answer.status_code))
    if answer.status_code == 200:
        if (answer.mimetype or "").endswith("xml"):
            assert "<Bundle" in text, text[:2000]
        else:
            body = json.loads(text)
            assert body.get("resourceType") == "Bundle" and body.get("type") == "searchset", text[:2000]
        return
    assert_operation_outcome(answer)


@fuzz(150)
@given(search=searches())
def test_any_search_is_a_bundle_or_an_operation_outcome(node: FuzzNode, pull_headers: dict[str, str],
                                                       search: tuple[str, str]) -> None:
    path, query = search
    _check(node.client.get(f"/s/{PULL_SESSION}/fhir/{path}?{query}", headers=pull_headers))


# --- paging numbers that str.isdigit() takes but int() cannot read (Unicode digits, > 4,300 digits) -------

@fuzz(40)
@given(lastn=st.booleans(), name=st.sampled_from(PAGING),
       value=st.one_of(st.text(st.characters(categories=["No"]), min_size=1, max_size=3),
                       st.integers(4301, 6000).map(lambda n: "7" * n)))
def test_paging_numbers_int_cannot_read_are_a_400(node: FuzzNode, pull_headers: dict[str, str], lastn: bool,
                                                  name: str, value: str) -> None:
    path = "Observation/$lastn" if lastn else "Observation"
    _check(node.client.get(f"/s/{PULL_SESSION}/fhir/{path}?{name}={_encode(value)}", headers=pull_headers))


@pytest.mark.parametrize("query", ["Condition?_count=%C2%B2", "Condition?_count=" + "1" * 4301,
                                   "Observation/$lastn?max=%C2%B2", "Observation/$lastn?max=" + "1" * 4301,
                                   "Observation?_offset=%C2%B2"],
                         ids=["count-superscript-two", "count-4301-digits", "max-superscript-two", "max-4301-digits",
                              "offset-superscript-two"])
def test_paging_numbers_minimal_examples(node: FuzzNode, pull_headers: dict[str, str], query: str) -> None:
    answer = node.client.get(f"/s/{PULL_SESSION}/fhir/{query}", headers=pull_headers)
    assert answer.status_code == 400, answer.status_code
    assert_operation_outcome(answer)
