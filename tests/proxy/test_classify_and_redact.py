from __future__ import annotations

import json

import pytest

from proxy.classify import classify, session_in_path
from proxy.redaction import redact_body, redact_headers, redact_text
from speeltuin.records import shown_body, stored_bytes
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


TOKEN = "A" * 43
JWS = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_tokens_and_signatures_never_stored_whole() -> None:
    headers = redact_headers({"Authorization": f"Bearer {TOKEN}", "Accept": "application/fhir+json"})
    assert TOKEN not in headers["Authorization"] and headers["Authorization"].startswith("Bearer AAAAAA")
    assert headers["Accept"] == "application/fhir+json"
    received = json.dumps({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300}).encode()
    body = redact_body(received)
    assert TOKEN not in body and body == received.decode().replace(TOKEN, "AAAAAA…[redacted]")  # nothing else
    form = redact_body(f"grant_type=x&client_assertion={JWS}&scope=a%20b".encode())
    assert form == "grant_type=x&client_assertion=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.[signature redacted]&scope=a%20b"
    assert TOKEN not in redact_text(f"upstream said Bearer {TOKEN}")


@pytest.mark.parametrize("body", [
    f"access_token={TOKEN}&token_type=Bearer",  # a token response as a form, or a token request as text/plain
    f"<token><access_token>{TOKEN}</access_token><token_type>Bearer</token_type></token>",
    f'<Parameters xmlns="http://hl7.org/fhir"><access_token value="{TOKEN}"/></Parameters>',
    f'{{ "data": {{ "id_token" : "{TOKEN}" }} }}',
    f"grant_type=x&assertion={JWS}",
])
def test_secrets_are_found_by_what_the_body_is_not_by_its_content_type(body: str) -> None:
    stored = redact_body(body.encode())
    assert TOKEN not in stored and "c2lnbmF0dXJl" not in stored
    assert "redacted]" in stored


def test_a_body_that_is_not_text_is_kept_as_its_bytes() -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
    stored = redact_body(pdf)
    assert stored_bytes(stored) == pdf
    assert shown_body(stored) == f"[{len(pdf)} bytes of a PDF, not text]"
    assert stored_bytes(redact_body(b"plain text")) is None and redact_body(b"") == ""


def test_session_access_keys_are_never_stored_whole() -> None:
    key = "K" * 43
    headers = redact_headers({"X-Session-Key": key, "X-Admin-Key": key})
    assert all(key not in value and value.endswith("[redacted]") for value in headers.values())
    body = redact_body(json.dumps({"id": "s-1", "access_key": key}).encode())
    assert key not in body and '"id": "s-1"' in body


def test_every_cookie_is_shortened_and_its_attributes_kept() -> None:
    headers = redact_headers({"Cookie": f"a={TOKEN}; speeltuin_ui={TOKEN}", "Set-Cookie":
                              f"speeltuin_ui={TOKEN}; Path=/ui; HttpOnly; SameSite=Lax"})
    assert TOKEN not in headers["Cookie"] and headers["Cookie"] == "a=AAAAAA…[redacted]; speeltuin_ui=AAAAAA…[redacted]"
    assert headers["Set-Cookie"] == "speeltuin_ui=AAAAAA…[redacted]; Path=/ui; HttpOnly; SameSite=Lax"
    assert redact_headers(headers) == headers  # redacting twice changes nothing
    joined = redact_headers({"Set-Cookie": f"a={TOKEN}; Expires=Wed, 21 Oct 2026 07:28:00 GMT, b={TOKEN}; Path=/"})
    assert joined["Set-Cookie"] == ("a=AAAAAA…[redacted]; Expires=Wed, 21 Oct 2026 07:28:00 GMT, "
                                    "b=AAAAAA…[redacted]; Path=/")
