from __future__ import annotations

import json

from validators.http import check_created, check_fhir_response
from validators.spec import BGZ_QUERIES, DOCUMENTS_QUERY, find_query, query_params

OO = json.dumps({"resourceType": "OperationOutcome", "issue": []}).encode()
FHIR = {"Content-Type": "application/fhir+json; charset=utf-8"}


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
        resource_type, lastn, params = query_params(query.query)
        assert find_query(resource_type, lastn, params) is query
    # the explicit-patient form of SPEC §6 names the same query
    assert find_query("Condition", False, [("patient.identifier", "http://fhir.nl/fhir/NamingSystem/bsn|1")]).number == 6
    assert find_query("Observation", False, [("code", "http://loinc.org|0000-0")]) is None
