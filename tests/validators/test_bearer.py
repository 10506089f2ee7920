"""Bearer token use (SPEC §5.2, §5.4; RFC 6750)."""
from __future__ import annotations

import pytest

from validators.rules.bearer import (
    check_authorization_header,
    check_pull_in_time,
    check_request_token_placement,
    check_search_offered,
    check_token_use,
)

from ._cases import check_case, fires, quiet

TOKEN = "k3J9x_Q-2b.Zr~8+/w=="  # every b64token character class, with padding
URL = "https://sender.example.nl/fhir/Condition?patient.identifier=http://fhir.nl/fhir/NamingSystem/bsn|999993653"
CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def header(value: str | None) -> list:
    return check_authorization_header(value)


def placement(url: str = URL, **headers: str) -> list:
    return check_request_token_placement(url, {k.replace("_", "-"): v for k, v in headers.items()})


OFFERED = [("search", "Patient?_include=Patient:general-practitioner"),
           ("search", "Observation/$lastn?code=http://loinc.org|85354-9"), ("read", "Task/workflow-1")]


def offered(url: str) -> list:
    return check_search_offered(url, OFFERED)


CASES = [
    quiet("BEAR-001", "present", lambda: header(f"Bearer {TOKEN}")),
    fires("BEAR-001", "none", lambda: header(None)),
    fires("BEAR-001", "empty", lambda: header("  ")),
    fires("BEAR-001", "request-without-header", lambda: placement()),
    quiet("BEAR-002", "bearer-token", lambda: header(f"Bearer {TOKEN}")),
    quiet("BEAR-002", "several-spaces", lambda: header(f"Bearer   {TOKEN}")),
    quiet("BEAR-002", "jwt-shaped-token", lambda: header("Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl")),
    fires("BEAR-002", "basic-scheme", lambda: header("Basic dXNlcjpwYXNz")),
    fires("BEAR-002", "token-without-scheme", lambda: header(TOKEN)),
    fires("BEAR-002", "no-token", lambda: header("Bearer")),
    fires("BEAR-002", "quoted-token", lambda: header(f'Bearer "{TOKEN}"')),
    fires("BEAR-002", "padding-inside", lambda: header("Bearer ab=cd")),
    fires("BEAR-002", "two-tokens", lambda: header(f"Bearer {TOKEN} {TOKEN}")),
    quiet("BEAR-003", "canonical", lambda: header(f"Bearer {TOKEN}")),
    fires("BEAR-003", "lowercase", lambda: header(f"bearer {TOKEN}")),
    fires("BEAR-003", "uppercase", lambda: header(f"BEARER {TOKEN}")),
    quiet("BEAR-004", "header", lambda: placement(Authorization=f"Bearer {TOKEN}")),
    quiet("BEAR-004", "other-parameter-named-like-it",
          lambda: placement(URL + "&access_token_hint=x", Authorization=f"Bearer {TOKEN}")),
    fires("BEAR-004", "query-only", lambda: placement(f"{URL}&access_token={TOKEN}")),
    fires("BEAR-004", "query-and-header", lambda: placement(f"{URL}&access_token={TOKEN}",
                                                            Authorization=f"Bearer {TOKEN}")),
    quiet("BEAR-005", "expired-401", lambda: check_token_use("expired", response_status=401)),
    fires("BEAR-005", "expired-200", lambda: check_token_use("expired", response_status=200)),
    fires("BEAR-005", "expired-403", lambda: check_token_use("expired", response_status=403)),
    quiet("BEAR-006", "cancelled-401", lambda: check_token_use("cancelled", response_status=401)),
    fires("BEAR-006", "cancelled-200", lambda: check_token_use("cancelled", response_status=200)),
    fires("BEAR-006", "cancelled-404", lambda: check_token_use("cancelled", response_status=404)),
    quiet("BEAR-007", "live", lambda: check_pull_in_time(100.0, told_cancelled_at=None, period_end=200.0)),
    quiet("BEAR-007", "before-the-receiver-was-told", lambda: check_pull_in_time(
        100.0, told_cancelled_at=100.5, period_end=200.0)),
    fires("BEAR-007", "after-the-receiver-acknowledged", lambda: check_pull_in_time(
        101.0, told_cancelled_at=100.5, period_end=200.0)),
    fires("BEAR-007", "after-the-period", lambda: check_pull_in_time(201.0, told_cancelled_at=None, period_end=200.0)),
    quiet("BEAR-008", "as-offered", lambda: offered(
        "https://s.example/fhir/Patient?_include=Patient:general-practitioner")),
    quiet("BEAR-008", "hospital-variant-of-an-offered-type", lambda: offered(
        "https://s.example/fhir/Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999993653")),
    quiet("BEAR-008", "plain-search-of-a-lastn-type", lambda: offered("https://s.example/fhir/Observation?code=x")),
    fires("BEAR-008", "type-not-offered", lambda: offered("https://s.example/fhir/Condition")),
    fires("BEAR-008", "read-only-type-searched", lambda: offered("https://s.example/fhir/Task?_id=workflow-1")),
    fires("BEAR-008", "nothing-offered", lambda: check_search_offered("https://s.example/fhir/Flag", [])),
    quiet("HTTP-006", "missing-401", lambda: check_token_use("missing", response_status=401)),
    fires("HTTP-006", "missing-200", lambda: check_token_use("missing", response_status=200)),
    quiet("HTTP-007", "invalid-401", lambda: check_token_use("invalid", response_status=401)),
    fires("HTTP-007", "invalid-403", lambda: check_token_use("invalid", response_status=403)),
    quiet("HTTP-004", "challenge", lambda: check_token_use("expired", response_status=401, response_headers=CHALLENGE)),
    fires("HTTP-004", "no-challenge", lambda: check_token_use("expired", response_status=401, response_headers={})),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_use_has_no_findings() -> None:
    assert placement(Authorization=f"Bearer {TOKEN}") == []
    assert check_token_use("valid", response_status=200) == []
    assert check_token_use("expired", response_status=401, response_headers=CHALLENGE) == []


def test_token_in_query_without_header_is_one_finding() -> None:
    [finding] = placement(f"{URL}&access_token={TOKEN}")
    assert (finding.rule, finding.location) == ("BEAR-004", "request.url.access_token")


def test_header_rules_point_at_the_header() -> None:
    for finding in header(f"bearer {TOKEN}!") + header(None):
        assert finding.location == "request.headers.Authorization"


@pytest.mark.parametrize("findings", [
    header(TOKEN), header(f'Bearer "{TOKEN}"'), header(f"Bearer {TOKEN} {TOKEN}"), header(f"bearer {TOKEN}"),
    placement(f"{URL}&access_token={TOKEN}", Authorization=f"Token {TOKEN}"),
])
def test_messages_never_carry_the_token(findings: list) -> None:
    assert findings
    for finding in findings:
        assert TOKEN not in finding.message and TOKEN[:8] not in finding.message


def test_unknown_token_state_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_token_use("stolen", response_status=200)  # type: ignore[arg-type]


def test_bearer_value_reads_the_token_of_a_bearer_header_only() -> None:
    from validators.rules.bearer import bearer_value

    assert bearer_value("Bearer abc.def") == "abc.def" and bearer_value("bearer  abc ") == "abc"
    assert [bearer_value(v) for v in (None, "", "Bearer", "Bearer  ", "Basic abc", " Bearer abc")] == [None] * 6
