from __future__ import annotations

import json

import pytest

from proxy.classify import classify, session_in_path
from proxy.redaction import redact_body, redact_headers, redact_jwt, redact_text
from validators.query import search_target


@pytest.mark.parametrize("method, path, tag", [
    ("POST", "/s/abc-1/token", "token-request"),
    ("POST", "/s/abc-1/notify/Task", "notification"),
    ("PUT", "/s/abc-1/notify/Task?identifier=a|b", "cancellation"),
    ("GET", "/s/abc-1/fhir/Condition", "search"),
    ("GET", "/s/abc-1/fhir/Observation/$lastn?code=x", "search"),
    ("GET", "/fhir/Patient?_include=Patient:general-practitioner", "search"),
    ("GET", "/s/abc-1/fhir/Condition/c-1", "read"),
    ("GET", "/s/abc-1/fhir/Binary/b-1", "binary"),
    ("GET", "/s/abc-1/fhir/metadata", "capability"),
    ("GET", "/jwks", "other"),
    ("DELETE", "/s/abc-1/fhir/Condition/c-1", "other"),
])
def test_classify(method: str, path: str, tag: str) -> None:
    assert classify(method, path) == tag


def test_session_and_search_target() -> None:
    assert session_in_path("/s/recv-sim-1/fhir/Condition") == "recv-sim-1"
    assert session_in_path("/fhir/Condition") is None
    assert search_target("/s/x1y/fhir/Observation/$lastn") == ("Observation", "$lastn")
    assert search_target("/base/Condition") == ("Condition", None)


def test_tokens_and_signatures_never_stored_whole() -> None:
    token = "A" * 43
    headers = redact_headers({"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
    assert token not in headers["Authorization"] and headers["Authorization"].startswith("Bearer AAAAAA")
    assert headers["Accept"] == "application/fhir+json"
    body = redact_body(json.dumps({"access_token": token, "token_type": "Bearer"}).encode(), "application/json")
    assert token not in body and '"token_type": "Bearer"' in body
    jws = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    form = redact_body(f"grant_type=x&client_assertion={jws}".encode(), "application/x-www-form-urlencoded")
    assert "c2lnbmF0dXJl" not in form and "eyJzdWIiOiIxIn0" in form
    assert redact_jwt("not-a-jwt-at-all").endswith("[redacted]")
    assert token not in redact_text(f"upstream said Bearer {token}")
    assert redact_body(b"%PDF-1.4 binary", "application/pdf") == "[15 bytes of application/pdf]"


def test_session_access_keys_are_never_stored_whole() -> None:
    key = "K" * 43
    headers = redact_headers({"X-Session-Key": key, "X-Admin-Key": key})
    assert all(key not in value and value.endswith("[redacted]") for value in headers.values())
    body = redact_body(json.dumps({"id": "s-1", "access_key": key}).encode(), "application/json")
    assert key not in body and '"id": "s-1"' in body
