"""The one reader of FHIR search requests: strict for the simulator, lenient for judging what others sent."""
from __future__ import annotations

import pytest

from validators import spec
from validators.query import (
    QueryError,
    SearchQuery,
    parse_relative_query,
    read_relative_query,
    read_search_url,
    same_request,
    search_target,
)

QUERIES = {q.number: q for q in spec.BGZ_QUERIES}


def test_parse_relative_query():
    assert parse_relative_query("Condition") == SearchQuery("Condition", False, ())
    assert parse_relative_query(QUERIES[19].query) == SearchQuery(
        "Observation", True, (("code", "http://loinc.org|85354-9"),))
    assert parse_relative_query(QUERIES[2].query) == SearchQuery(
        "Coverage", False, (("_include", "Coverage:payor:Patient"), ("_include", "Coverage:payor:Organization")))


@pytest.mark.parametrize("query", [q.query for q in spec.BGZ_QUERIES] + [spec.DOCUMENTS_QUERY.query])
def test_encoded_and_plain_queries_parse_alike(query):
    assert parse_relative_query(spec.encode_query(query)) == parse_relative_query(query)
    assert read_relative_query(spec.encode_query(query)) == parse_relative_query(query)


def test_percent_encoded_values_are_decoded_and_plus_stays_plus():
    assert parse_relative_query("Observation/%24lastn?code=http%3A%2F%2Floinc.org%7C85354-9") == SearchQuery(
        "Observation", True, (("code", "http://loinc.org|85354-9"),))
    assert parse_relative_query("Observation?date=ge2024-01-01T00:00:00+01:00").params == (
        ("date", "ge2024-01-01T00:00:00+01:00"),)


@pytest.mark.parametrize("query", ["Observation?code=http://loinc.org%hl85354-9", "Observation/123",
                                   "Observation/$everything", "observation?code=x", "Condition?status",
                                   "http://example.org/fhir/Condition"])
def test_parse_relative_query_rejects(query):
    with pytest.raises(QueryError):
        parse_relative_query(query)


def test_lenient_readers_never_raise_and_keep_what_they_saw():
    assert read_relative_query("Condition?status&code=%hl").params == (("status", ""), ("code", "%hl"))
    assert search_target("/s/x1y/fhir/Observation/$lastn") == ("Observation", "$lastn")
    assert search_target("/base/Condition?x=1") == ("Condition", None)
    assert search_target("/base/metadata") is None
    assert read_search_url("http://h/fhir/Observation/$lastn?code=a%7Cb") == SearchQuery(
        "Observation", True, (("code", "a|b"),))
    assert read_search_url("http://h/fhir/Patient/$everything") is None
    assert read_search_url("http://h/jwks") is None


def test_same_request_ignores_encoding_and_order():
    url = "http://127.0.0.1:1/s/a/fhir/Observation/$lastn?code=http%3A%2F%2Floinc.org%7C85354-9&max=1"
    assert same_request(url, "Observation/$lastn?max=1&code=http://loinc.org|85354-9")
    assert not same_request(url, "Observation/$lastn?code=http://loinc.org|85354-9")
    assert not same_request(url, "Observation?max=1&code=http://loinc.org|85354-9")
