from __future__ import annotations

import json

import pytest

from validators.query import SearchQuery, read_relative_query
from validators.rules.http import (
    check_accept_honoured,
    check_bearer_challenge,
    check_created,
    check_error_status,
    check_fhir_response,
    check_other_patient_answer,
)
from validators.spec import BGZ_QUERIES, DOCUMENTS_QUERY, find_query

from ._cases import check_case, fires, quiet

OO = json.dumps({"resourceType": "OperationOutcome", "issue": []}).encode()
OO_XML = b'<?xml version="1.0"?><OperationOutcome xmlns="http://hl7.org/fhir"><issue/></OperationOutcome>'
FHIR = {"Content-Type": "application/fhir+json; charset=utf-8"}
FHIR_XML = {"Content-Type": "application/fhir+xml"}
JSON, XML, PDF = "application/fhir+json; charset=utf-8", "application/fhir+xml;charset=UTF-8", "application/pdf"


def challenge(value: str) -> dict:
    return {**FHIR, "WWW-Authenticate": value}


def rules(findings) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.rule for f in findings}


def test_fhir_content_type() -> None:
    assert rules(check_fhir_response(200, FHIR, b"{}")) == set()
    assert rules(check_fhir_response(200, {"Content-Type": "text/html"}, b"<html>")) == {"HTTP-001"}


def test_errors_are_operation_outcomes() -> None:
    assert rules(check_fhir_response(404, FHIR, OO)) == set()
    assert rules(check_fhir_response(404, FHIR, b'{"error": "x"}')) == {"HTTP-003"}


def test_401_carries_bearer_challenge() -> None:
    challenge = {**FHIR, "WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert rules(check_fhir_response(401, challenge, OO)) == set()
    assert rules(check_fhir_response(401, FHIR, OO)) == {"HTTP-004"}


def test_created_with_location() -> None:
    assert check_created(201, {"Location": "http://x/Task/1"}) == []
    assert rules(check_created(200, {})) == {"HTTP-002"}
    assert rules(check_created(201, {})) == {"HTTP-002"}


def test_every_bgz_query_is_found_back_from_its_own_parameters() -> None:
    for query in BGZ_QUERIES + (DOCUMENTS_QUERY,):
        assert find_query(read_relative_query(query.query)) is query
    # the explicit-patient form of SPEC §6 names the same query
    assert find_query(SearchQuery("Condition", False, (("patient.identifier", "http://fhir.nl/fhir/NamingSystem/bsn|1"),))).number == 6
    assert find_query(SearchQuery("Observation", False, (("code", "http://loinc.org|0000-0"),))) is None


CASES = [
    quiet("HTTP-001", "fhir-json", lambda: check_fhir_response(200, FHIR, b"{}")),
    quiet("HTTP-001", "fhir-xml", lambda: check_fhir_response(200, FHIR_XML, b"<Patient/>")),
    fires("HTTP-001", "html", lambda: check_fhir_response(200, {"Content-Type": "text/html"}, b"<html>")),
    fires("HTTP-001", "missing", lambda: check_fhir_response(200, {}, b"{}")),
    quiet("HTTP-002", "created", lambda: check_created(201, {"Location": "http://x/Task/1"})),
    fires("HTTP-002", "200", lambda: check_created(200, {})),
    fires("HTTP-002", "no-location", lambda: check_created(201, {})),
    quiet("HTTP-003", "json-operation-outcome", lambda: check_fhir_response(404, FHIR, OO)),
    quiet("HTTP-003", "xml-operation-outcome", lambda: check_fhir_response(404, FHIR_XML, OO_XML)),
    fires("HTTP-003", "oauth-body", lambda: check_fhir_response(404, FHIR, b'{"error": "x"}')),
    fires("HTTP-003", "xml-other-namespace",
          lambda: check_fhir_response(400, FHIR_XML, b'<OperationOutcome xmlns="urn:x"/>')),
    fires("HTTP-003", "xml-entity-bomb-is-not-expanded", lambda: check_fhir_response(400, FHIR_XML, (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><Bundle xmlns="http://hl7.org/fhir">&a;'
        b'</Bundle>'))),
    fires("HTTP-003", "empty", lambda: check_fhir_response(500, FHIR, b"")),
    quiet("HTTP-004", "bearer-challenge",
          lambda: check_bearer_challenge(401, challenge('Bearer error="invalid_token"'))),
    quiet("HTTP-004", "with-realm-and-description", lambda: check_bearer_challenge(401, challenge(
        'Bearer realm="speeltuin", error="invalid_token", error_description="token expired"'))),
    quiet("HTTP-004", "token-form-value", lambda: check_bearer_challenge(401, challenge("bearer error=invalid_token"))),
    quiet("HTTP-004", "not-401", lambda: check_bearer_challenge(403, {})),
    fires("HTTP-004", "missing", lambda: check_fhir_response(401, FHIR, OO)),
    fires("HTTP-004", "basic-scheme", lambda: check_bearer_challenge(401, challenge('Basic error="invalid_token"'))),
    fires("HTTP-004", "other-error", lambda: check_bearer_challenge(401, challenge('Bearer error="invalid_request"'))),
    fires("HTTP-004", "error-in-description-only", lambda: check_bearer_challenge(401, challenge(
        'Bearer error_description="error=invalid_token"'))),
    quiet("HTTP-005", "json-asked-json", lambda: check_accept_honoured("application/fhir+json", None, JSON)),
    quiet("HTTP-005", "xml-asked-xml", lambda: check_accept_honoured("application/fhir+xml", None, XML)),
    quiet("HTTP-005", "format-overrides-accept", lambda: check_accept_honoured("application/fhir+json", "xml", XML)),
    quiet("HTTP-005", "format-media-type", lambda: check_accept_honoured(None, "application/fhir+json", JSON)),
    quiet("HTTP-005", "either-accepted", lambda: check_accept_honoured(
        "application/fhir+xml;q=0.9, application/fhir+json", None, XML)),
    quiet("HTTP-005", "plain-json-is-fhir-json", lambda: check_accept_honoured("application/json", None, JSON)),
    quiet("HTTP-005", "nothing-asked", lambda: check_accept_honoured(None, None, XML)),
    quiet("HTTP-005", "wildcard", lambda: check_accept_honoured("*/*", None, PDF)),
    quiet("HTTP-005", "pdf-asked-pdf", lambda: check_accept_honoured("application/pdf", None, PDF)),
    quiet("HTTP-005", "unknown-format-not-judged", lambda: check_accept_honoured(None, "ttl", JSON)),
    fires("HTTP-005", "xml-asked-json-served", lambda: check_accept_honoured("application/fhir+xml", None, JSON)),
    fires("HTTP-005", "format-xml-json-served", lambda: check_accept_honoured("application/fhir+xml", "xml", JSON)),
    fires("HTTP-005", "format-json-beats-accept", lambda: check_accept_honoured("application/fhir+xml", "json", XML)),
    fires("HTTP-005", "q-zero-refuses", lambda: check_accept_honoured(
        "application/fhir+json, application/fhir+xml;q=0", None, XML)),
    fires("HTTP-005", "pdf-asked-binary-resource", lambda: check_accept_honoured("application/pdf", None, JSON)),
    fires("HTTP-005", "no-content-type", lambda: check_accept_honoured("application/fhir+json", None, None)),
    quiet("HTTP-006", "401", lambda: check_error_status("no-token", 401)),
    fires("HTTP-006", "200", lambda: check_error_status("no-token", 200)),
    fires("HTTP-006", "403", lambda: check_error_status("no-token", 403)),
    quiet("HTTP-007", "401", lambda: check_error_status("bad-token", 401)),
    fires("HTTP-007", "400", lambda: check_error_status("bad-token", 400)),
    quiet("HTTP-008", "403", lambda: check_error_status("other-patient", 403)),
    quiet("HTTP-008", "404-by-choice", lambda: check_error_status("other-patient", 404)),
    fires("HTTP-008", "200", lambda: check_error_status("other-patient", 200)),
    fires("HTTP-008", "404-when-403-chosen", lambda: check_error_status("other-patient", 404, allowed=(403,))),
    fires("HTTP-008", "leaked", lambda: check_other_patient_answer(200, leaked=True)),
    fires("HTTP-008", "server-error", lambda: check_other_patient_answer(500, leaked=False)),
    quiet("HTTP-008", "other-4xx-is-only-noted", lambda: check_other_patient_answer(400, leaked=False)),
    quiet("HTTP-011", "403", lambda: check_other_patient_answer(403, leaked=False)),
    quiet("HTTP-011", "narrowed-200", lambda: check_other_patient_answer(200, leaked=False)),
    fires("HTTP-011", "400-without-data", lambda: check_other_patient_answer(400, leaked=False)),
    fires("HTTP-011", "401-without-data", lambda: check_other_patient_answer(401, leaked=False)),
    quiet("HTTP-009", "400", lambda: check_error_status("malformed-query", 400)),
    fires("HTTP-009", "500", lambda: check_error_status("malformed-query", 500)),
    fires("HTTP-009", "200", lambda: check_error_status("malformed-query", 200)),
    quiet("HTTP-010", "404", lambda: check_error_status("not-found", 404)),
    fires("HTTP-010", "410", lambda: check_error_status("not-found", 410)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_unknown_situation_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_error_status("teapot", 418)  # type: ignore[arg-type]


def test_format_evidence() -> None:
    [finding] = check_accept_honoured("application/fhir+xml", "json", XML)
    assert finding.location == "response.headers.Content-Type"
    assert "JSON" in finding.message and "application/fhir+xml" in finding.message
