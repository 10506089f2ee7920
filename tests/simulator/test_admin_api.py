"""The admin API: key required (constant-time compare), clear 4xx for every mistake, never a 500."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import NOWHERE, complete_session, placeholder_jwks
from tests.simulator.helpers import pair_sessions

KEYS_NEEDED = "vendor_jwks (or vendor_jwks_url) is needed"
URL_FIELDS = ("vendor_token_url", "vendor_notification_base", "vendor_fhir_base")


def test_admin_key_is_required(node_pair) -> None:
    sim, _ven = node_pair
    for headers in ({}, {"X-Admin-Key": "wrong"}):
        response = requests.get(f"{sim.url}/api/sessions", headers=headers)
        assert response.status_code == 401 and "X-Admin-Key" in response.json()["error"]


def test_session_requests_are_checked(node_pair) -> None:
    sim, _ven = node_pair
    cases = [
        ({"vendor_role": "both", "vendor_ura": "90000202"}, "vendor_role"),
        ({"vendor_role": "sender", "vendor_ura": "123"}, "vendor_ura"),
        ({"vendor_role": "sender", "vendor_ura": "90000202", "id": "Bad Id!"}, "id must be"),
        ({"vendor_role": "sender", "vendor_ura": "90000202", "vendor_jwks": [1]}, "vendor_jwks"),
        ({"vendor_role": "sender", "vendor_ura": "90000202", "vendor_fhir_base": "ftp://x"}, "vendor_fhir_base"),
    ]
    for body, complaint in cases:
        response = sim.api("POST", "/sessions", json=body)
        assert response.status_code == 400 and complaint in response.json()["error"], (body, response.text)
    assert sim.api("POST", "/sessions", data="not json").status_code == 400
    assert sim.api("GET", "/sessions").json() == []


@pytest.mark.parametrize("role, given, missing", [
    ("receiver", {}, ("keys", "vendor_token_url", "vendor_notification_base")),
    ("sender", {}, ("keys", "vendor_token_url", "vendor_fhir_base")),
    ("receiver", {"vendor_jwks": "placeholder", "vendor_token_url": f"{NOWHERE}/token",
                  "vendor_fhir_base": f"{NOWHERE}/fhir"}, ("vendor_notification_base",)),  # the other role's URL
    ("sender", {"vendor_jwks_url": f"{NOWHERE}/jwks", "vendor_fhir_base": f"{NOWHERE}/fhir"}, ("vendor_token_url",)),
    ("receiver", {"vendor_token_url": f"{NOWHERE}/token", "vendor_notification_base": f"{NOWHERE}/notify"},
     ("keys",)),
    ("sender", {"vendor_token_url": f"{NOWHERE}/token", "vendor_fhir_base": f"{NOWHERE}/fhir"}, ("keys",)),
])
def test_a_session_without_what_its_role_needs_is_refused_naming_it(node_pair, role: str, given: dict,
                                                                   missing: tuple[str, ...]) -> None:
    """Issue 13: refused at creation, not when the session is first used; the error names every missing field (the
    keys first), says what each is for and which role needs it, and names nothing that was given."""
    sim, _ven = node_pair
    if given.get("vendor_jwks") == "placeholder":
        given = {**given, "vendor_jwks": placeholder_jwks()}
    response = sim.api("POST", "/sessions", json={"id": "incomplete", "vendor_role": role, "vendor_ura": "90000202",
                                                  **given})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith(KEYS_NEEDED if "keys" in missing else f"{missing[0]} is needed"), error
    assert error.endswith(f"(the vendor is the {role})"), error
    assert (KEYS_NEEDED in error) == ("keys" in missing), error
    for field in URL_FIELDS:
        assert (f"{field} is needed" in error) == (field in missing), (field, error)
    assert sim.api("GET", "/sessions/incomplete").status_code == 404


def test_a_session_with_what_its_role_needs_is_made(node_pair) -> None:
    sim, _ven = node_pair
    for role in ("receiver", "sender"):
        made = sim.api("POST", "/sessions", json=complete_session(role, id=f"whole-{role}", vendor_ura="90000202"))
        assert made.status_code == 201, made.text
    by_url = complete_session("sender", id="keys-by-url", vendor_ura="90000202", vendor_jwks_url=f"{NOWHERE}/jwks")
    assert "vendor_jwks" not in by_url and sim.api("POST", "/sessions", json=by_url).status_code == 201
    empty = sim.api("POST", "/sessions", json=complete_session("receiver", id="no-keys", vendor_ura="90000202",
                                                               vendor_jwks={"keys": []}))
    assert empty.status_code == 400 and "vendor_jwks holds no keys" in empty.json()["error"], empty.text


def test_session_lifecycle_and_endpoints(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    assert endpoints["fhir_base"] == f"{sim.url}/s/sim-1/fhir"
    assert endpoints["client_id"] == ven.client_id
    again = sim.api("POST", "/sessions", json=complete_session("sender", id="sim-1", vendor_ura="90000202"))
    assert again.status_code == 400 and "already" in again.json()["error"], again.text  # exists already
    shown = sim.api("GET", "/sessions/sim-1").json()
    assert shown["simulator_role"] == "sender" and shown["config"]["vendor_ura"] == ven.ura
    assert requests.get(f"{sim.url}/s/sim-1/jwks").json() == sim.jwks()
    assert sim.api("DELETE", "/sessions/sim-1").status_code == 204
    assert sim.api("GET", "/sessions/sim-1").status_code == 404
    assert requests.get(f"{sim.url}/s/sim-1/jwks").status_code == 404


def test_notify_mistakes_are_400(node_pair) -> None:
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    unknown = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": "999999245"})
    assert unknown.status_code == 400 and "no test patient" in unknown.json()["error"]
    for body in ({}, {"bsn": ""}, {"bsn": 999993653}):
        missing = sim.api("POST", "/sessions/sim-1/notify", json=body)
        assert missing.status_code == 400 and "bsn is required, as a string" in missing.json()["error"], body
    bad_days = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": "999993653", "period_days": "x"})
    assert bad_days.status_code == 400
    assert sim.api("POST", "/sessions/nope/notify", json={"bsn": "999993653"}).status_code == 404
    # the simulator plays the receiver in ven's session: it cannot notify there
    wrong_role = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": "999993653"})
    assert wrong_role.status_code == 400 and "receiving node" in wrong_role.json()["error"]


def test_oversized_and_unknown_requests_get_proper_errors(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    big = requests.post(endpoints["token_url"], data={"grant_type": "x" * (3 * 1024 * 1024)})
    assert big.status_code in (400, 413) and "error" in big.json()
    missing = requests.get(f"{sim.url}/nothing/here")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    not_allowed = requests.delete(f"{endpoints['fhir_base']}/Condition")
    assert not_allowed.status_code == 405 and not_allowed.json()["resourceType"] == "OperationOutcome"


def test_rule_suppression_needs_a_known_rule_and_a_reason(node_pair) -> None:
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    assert sim.api("PUT", "/sessions/sim-1/suppressions/NOPE-1", json={"reason": "x"}).status_code == 400
    assert sim.api("PUT", "/sessions/sim-1/suppressions/BUNDLE-010", json={}).status_code == 400
    too_long = sim.api("PUT", "/sessions/sim-1/suppressions/BUNDLE-010", json={"reason": "x" * 501})
    assert too_long.status_code == 400 and "at most 500 characters" in too_long.json()["error"]
    done = sim.api("PUT", "/sessions/sim-1/suppressions/BUNDLE-010", json={"reason": " local codes "})
    assert done.status_code == 200 and done.json() == {"BUNDLE-010": "local codes"}
    assert sim.api("GET", "/sessions/sim-1/suppressions").json() == {"BUNDLE-010": "local codes"}
    assert sim.api("DELETE", "/sessions/sim-1/suppressions/BUNDLE-010").status_code == 204
    assert sim.api("DELETE", "/sessions/sim-1/suppressions/BUNDLE-010").status_code == 404
