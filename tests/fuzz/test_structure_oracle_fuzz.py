"""The structure walk against the library's whole STU3 model (issue 12: the model is no longer built on the hot path).

`check_structure` walks a resource once and checks each primitive with the library's own type for it; it no longer
builds the pydantic model of the whole resource. These properties hold the walk to the model it replaced: for the
Nictiz corpus (XML and JSON) and for resources mutated from it, every error the whole model reports lies at or
below a location the walk reported. Messages about primitives are the model's own words, at the same place.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.fuzz.conftest import NASTY_TEXT, fuzz, json_values, mutated
from validators.rules.structure import _model, _path, check_structure, is_resource_type, parse_fhir

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "nictiz-zib2017-examples"
# fhir_core's own choice-type messages: the walk names the choice element instead (`value[x]`), one level up
_CHOICE_MESSAGES = ("Expect any of field value from this list", "Any of one field value is expected from this list")
# Model errors about an element as a whole where the walk names the part that is wrong: the null in a list, the
# unknown elements of a primitive's extension object that hold nothing else
_WHOLE_MESSAGES = ("None is not allowed as an element", "One of field value is required")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@lru_cache(maxsize=None)
def corpus_resources() -> tuple[tuple[str, dict], ...]:
    return tuple((p.name, parse_fhir(p.read_bytes(), source=p.name).resource) for p in sorted(CORPUS.glob("*.xml")))


def model_errors(resource: dict) -> list[tuple[str, str]]:
    """(location, message) of each error of the whole pydantic model of the resource."""
    rtype = resource.get("resourceType")
    try:
        _model(rtype).model_validate(resource)
        return []
    except ValidationError as e:
        errors = e.errors()
    found = []
    for error in errors:
        message = " ".join(str(error.get("msg", "")).split())
        loc = error.get("loc", ())
        if any(m in message for m in _CHOICE_MESSAGES):
            continue
        if error.get("type") == "extra_forbidden" and loc and str(loc[-1]).startswith("_"):
            continue  # the model of Extension lacks the `_x` of its value[x]; FHIR JSON allows them
        found.append((_path(rtype, _parts(resource, loc)), message))
    return found


def _parts(data: Any, loc: tuple) -> tuple[str | int, ...]:
    """A pydantic location as the keys and indexes of the document (pydantic's own tags left out)."""
    parts: list[str | int] = []
    node = data
    for part in loc:
        if part == "resource_type" and isinstance(node, dict) and "resourceType" in node:
            part = "resourceType"  # the model's name for the key
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            parts.append(part)
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            parts.append(part)
            node = node[part]
        elif isinstance(part, str) and _NAME.fullmatch(part) and part != "root":
            parts.append(part)  # a missing element: named, nothing below it
            node = None
    return tuple(parts)


def _covered(location: str, reported: set[str]) -> bool:
    return any(location == r or location.startswith((r + ".", r + "[")) for r in reported)


def assert_model_adds_nothing(resource: dict) -> None:
    findings = check_structure(resource)
    reported = {f.location for f in findings}
    missed = [(loc, msg) for loc, msg in model_errors(resource) if not _covered(loc, reported)
              and not (msg.startswith(_WHOLE_MESSAGES) and any(r.startswith((loc + "[", loc + "."))
                                                               for r in reported))]
    assert not missed, f"the model found what the walk did not: {missed}\nwalk: {findings}"


def _leaves(node: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "resourceType":  # an unknown nested type is reported there, and the model then cannot go on
                yield from _leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, path + (i,))
    else:
        yield path


def _set(doc: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


# Values near the primitives' formats: dates and times off by a little, codes with spaces, ids too long
near_primitives = st.one_of(
    st.from_regex(r"\A[0-9]{4}(-[0-9]{1,2}(-[0-9]{1,2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,3})?)?"
                  r"(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?\Z"),
    st.from_regex(r"\A[0-9]{2}:[0-9]{2}(:[0-9]{2})?\Z"),
    st.from_regex(r"\A[a-z]{1,5}( {1,2}[a-z]{0,3})?\Z"),
    st.from_regex(r"\A[A-Za-z0-9.\-]{60,70}\Z"),
    st.from_regex(r"\Aurn:(oid|uuid):[0-9a-f.\-]{0,12}\Z"),
    st.from_regex(r"\A[A-Za-z0-9+/=]{0,10}\Z"),
    st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(NASTY_TEXT[:-10] + ["2024-02-30", "2023-02-29", "2024-12-31T24:00:00Z", "-0.0", "1.", "+5"]),
)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_the_corpus_gives_the_model_nothing_to_add(fmt: str) -> None:
    resources = corpus_resources()
    assert len(resources) > 100
    for name, resource in resources:
        if fmt == "json":
            resource = parse_fhir(json.dumps(resource).encode(), source=name).resource
        assert_model_adds_nothing(resource)


@fuzz(300)
@given(st.data())
def test_a_primitive_changed_is_judged_as_the_model_would(data: st.DataObject) -> None:
    name, original = data.draw(st.sampled_from(corpus_resources()))
    resource = copy.deepcopy(original)
    for path in data.draw(st.lists(st.sampled_from(list(_leaves(resource))), min_size=1, max_size=3)):
        _set(resource, path, data.draw(near_primitives))
    assert_model_adds_nothing(resource)


@fuzz(200)
@given(st.data())
def test_a_resource_edited_anywhere_gives_the_model_nothing_to_add(data: st.DataObject) -> None:
    _name, original = data.draw(st.sampled_from(corpus_resources()))
    resource = data.draw(mutated(original))
    if isinstance(resource, dict) and is_resource_type(resource.get("resourceType")):
        assert_model_adds_nothing(resource)


@pytest.mark.parametrize("value, words", [
    ("2024-13-01", "does not match spec regex"),
    ("2023-02-29", "day value is outside expected range"),
    ("yesterday", "does not match spec regex"),
])
def test_a_bad_date_is_reported_in_the_models_words_where_it_is(value: str, words: str) -> None:
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectiveDateTime": value}
    [finding] = check_structure(resource)
    assert finding.location == "Observation.effectiveDateTime"
    assert words in finding.message and value in finding.message
    [(where, message)] = model_errors(resource)
    assert where == finding.location and message in finding.message


def test_a_good_resource_has_no_finding_and_a_bad_code_one() -> None:
    good = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "effectiveDateTime": "2024-02-29T10:00:00+01:00", "valueQuantity": {"value": 1.5, "code": "kg"}}
    assert check_structure(good) == [] and model_errors(good) == []
    bad = {**good, "status": "fi nal  x", "valueQuantity": {"value": 1.5, "code": " kg"}}
    locations = sorted(f.location for f in check_structure(bad))
    assert locations == ["Observation.status", "Observation.valueQuantity.code"]
    assert sorted(loc for loc, _msg in model_errors(bad)) == locations
