"""The addon inside a real mitmdump: bad traffic is recorded with its findings, secrets redacted,
and traffic of no session is kept as unmatched."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import jwt
import pytest
import requests

from scenarios.stack import Stack, start_stack
from speeltuin.records import PROXY_FLUSH_PATH
from speeltuin.store import Store
from tests.conftest import complete_session

SESSION = "inflight-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with start_stack(Path(tmp_path_factory.mktemp("stack"))) as running:
        created = running.simulator.api("POST", "/sessions", json=complete_session(  # nothing calls the vendor
            "sender", id=SESSION, vendor_ura=running.vendor.ura, vendor_jwks=running.vendor.jwks(),
            vendor_client_id=running.vendor.client_id))
        assert created.status_code == 201, created.text
        yield running


def _recorded(stack: Stack, session_id: str | None, count: int) -> list:
    """What the proxy recorded, once its writer has caught up (it records off the flows' path)."""
    flushed = requests.get(f"{stack.proxy.front_url}{PROXY_FLUSH_PATH}", timeout=40)
    assert flushed.status_code == 200 and flushed.json()["flushed"] is True, flushed.text
    store = Store(stack.simulator.database_url)
    try:
        found = store.list_exchanges([session_id])
    finally:
        store.close()
    assert len(found) >= count, found
    return found


def test_unsigned_assertion_is_refused_and_flagged(stack: Stack) -> None:
    token_url = f"{stack.proxy.front_url}/s/{SESSION}/token"
    now = int(time.time())
    unsigned = jwt.encode({"iss": "reference-vendor", "sub": "reference-vendor", "aud": token_url, "iat": now,
                           "exp": now + 60, "jti": "j-1"}, key=None, algorithm="none")
    response = requests.post(token_url, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": unsigned,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": unsigned, "scope": "x"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    [exchange] = _recorded(stack, SESSION, 1)
    assert exchange.tag == "token-request" and exchange.direction == "to-simulator" and exchange.status == 401
    rules = {f.rule for f in exchange.findings}
    assert any(f.severity == "error" and f.location.startswith("client_assertion") for f in exchange.findings), rules
    assert unsigned in exchange.request_body  # nothing to redact: no signature; header and claims kept as sent


def test_defective_task_is_flagged_in_flight(stack: Stack) -> None:
    url = f"{stack.proxy.front_url}/s/{SESSION}/notify/Task"
    task = {"resourceType": "Task", "identifier": {"system": "urn:ietf:rfc:3986", "value": "x"},
            "status": "requested", "intent": "proposal"}
    response = requests.post(url, json=task, headers={"Authorization": "Bearer " + "Z" * 40,
                                                      "Content-Type": "application/fhir+json"})
    assert response.status_code == 401  # no valid token: refused before the Task is read
    exchanges = [ex for ex in _recorded(stack, SESSION, 2) if ex.tag == "notification"]
    assert exchanges, "the notification was not recorded"
    notification = exchanges[-1]
    assert any(f.rule.startswith("NOTIF") for f in notification.findings)
    assert "Z" * 40 not in notification.request_headers["Authorization"]


def test_traffic_of_no_session_is_kept_as_unmatched(stack: Stack) -> None:
    response = requests.get(f"{stack.proxy.front_url}/s/no-such-session/fhir/Condition")
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"
    unmatched = [ex for ex in _recorded(stack, None, 1) if "no-such-session" in ex.url]
    assert unmatched and unmatched[0].session_id is None and unmatched[0].direction == "unknown"



def test_a_pull_grant_for_another_ura_or_an_unknown_base_is_flagged_in_flight(stack: Stack) -> None:
    """The simulator refuses both; the proxy records why as findings (TOK-016, TOK-017), so the session's report
    shows them, not only the refusal."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from speeltuin.keys import Signer

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    signer = Signer("grant-test", pem)
    session = "inflight-pull"
    created = stack.simulator.api("POST", "/sessions", json=complete_session(
        "receiver", id=session, vendor_ura="90000202", vendor_jwks=signer.jwks(), vendor_client_id="pull-client"))
    assert created.status_code == 201, created.text
    token_url = f"{stack.proxy.front_url}/s/{session}/token"
    expected = {"87654321": "TOK-016", "90000202": "TOK-017"}  # sub: another URA / the right one, unknown base
    for ura in expected:
        refused = requests.post(token_url, data=signer.token_request_form("pull-client", ura, token_url,
                                                                          "base-of-no-notification"), timeout=30)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    recorded = [ex for ex in _recorded(stack, session, 2) if ex.tag == "token-request"]
    assert len(recorded) == 2
    for exchange, (ura, rule_id) in zip(recorded, expected.items()):
        rules = {f.rule for f in exchange.findings if f.severity == "error"}
        assert rule_id in rules, (ura, exchange.findings)
    assert "TOK-016" not in {f.rule for f in recorded[1].findings}


def test_a_pull_after_the_receiver_acknowledged_the_cancellation_is_flagged(stack: Stack) -> None:
    """BEAR-007: the receiver must stop pulling once it knows (SPEC §3 step 8); a pull made before is no finding."""
    from speeltuin.records import Notification, NotificationOrigin

    session = "inflight-cancel"
    created = stack.simulator.api("POST", "/sessions", json=complete_session(
        "receiver", id=session, vendor_ura="90000202", vendor_client_id="pull-client"))
    assert created.status_code == 201, created.text
    store = Store(stack.simulator.database_url)
    try:
        store.add_notification(Notification(
            id="n-cancel", session_id=session, origin=NotificationOrigin.SENT, identifier="urn:uuid:1",
            group_identifier="urn:uuid:2", authorization_base="base-cancel", patient_bsn="999993653",
            owner_ura="90000202", period_end=time.time() + 3600, status="requested", task={}))
        store.add_token("T" * 43, session_id=session, kind="pull", subject_ura="90000202",
                        expires_at=time.time() + 600, notification_id="n-cancel")
    finally:
        store.close()
    url = f"{stack.proxy.front_url}/s/{session}/fhir/Condition"
    headers = {"Authorization": "Bearer " + "T" * 43, "Accept": "application/fhir+json"}
    assert requests.get(url, headers=headers, timeout=30).status_code == 200  # in time
    store = Store(stack.simulator.database_url)
    try:  # the simulator cancels; the receiver answers 200 to the cancellation
        store.update_notification("n-cancel", status="cancelled",
                                  delivery={"cancellation": {"status": 200, "at": time.time()}})
    finally:
        store.close()
    time.sleep(0.05)
    assert requests.get(url, headers=headers, timeout=30).status_code == 401  # refused, and flagged
    first, second = [ex for ex in _recorded(stack, session, 2) if ex.tag == "search"]
    assert "BEAR-007" not in {f.rule for f in first.findings}
    assert "BEAR-007" in {f.rule for f in second.findings if f.severity == "error"}, second.findings


def test_a_search_the_notification_does_not_offer_is_flagged(stack: Stack) -> None:
    """BEAR-008: the token is bound to the notification's queries (SPEC §5.3); the simulator serves a search of
    another type, and the proxy notes it. The hospital variant of an offered query is no finding."""
    from speeltuin.records import Notification, NotificationOrigin
    from validators.spec import BGZ_QUERIES

    session = "inflight-offered"
    created = stack.simulator.api("POST", "/sessions", json=complete_session(
        "receiver", id=session, vendor_ura="90000202", vendor_client_id="pull-client"))
    assert created.status_code == 201, created.text
    offers = [q.query for q in BGZ_QUERIES if q.resource_type in ("Condition", "Patient")]
    task = {"resourceType": "Task", "input": [
        {"type": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskParameter", "code": "search-resource"}]},
         "valueString": query} for query in offers]}
    store = Store(stack.simulator.database_url)
    try:
        store.add_notification(Notification(
            id="n-offered", session_id=session, origin=NotificationOrigin.SENT, identifier="urn:uuid:3",
            group_identifier="urn:uuid:4", authorization_base="base-offered", patient_bsn="999993653",
            owner_ura="90000202", period_end=time.time() + 3600, status="requested", task=task))
        store.add_token("U" * 43, session_id=session, kind="pull", subject_ura="90000202",
                        expires_at=time.time() + 600, notification_id="n-offered")
    finally:
        store.close()
    headers = {"Authorization": "Bearer " + "U" * 43, "Accept": "application/fhir+json"}
    base = f"{stack.proxy.front_url}/s/{session}/fhir"
    asked = ["Condition", "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999993653", "Flag"]
    for query in asked:
        assert requests.get(f"{base}/{query}", headers=headers, timeout=30).status_code == 200, query
    searches = [ex for ex in _recorded(stack, session, 3) if ex.tag == "search"]
    flagged = {unquote(ex.url.partition("/fhir/")[2]): [f for f in ex.findings if f.rule == "BEAR-008"]
               for ex in searches}
    assert flagged[asked[0]] == [] and flagged[asked[1]] == [], flagged
    [finding] = flagged["Flag"]
    assert finding.severity == "warning" and "offers searches of Condition, Patient" in finding.message, finding
    # the session's notifications say what the receiver pulled of the offer (the proxy tied each pull to it)
    listed = stack.simulator.api("GET", f"/sessions/{session}/notifications")
    assert listed.status_code == 200, listed.text
    [notification] = listed.json()
    evidence = notification["pull_evidence"]
    assert evidence["offered"] == offers and evidence["pulled"] == ["Condition"]
    assert evidence["missing"] == [q for q in offers if q != "Condition"] and evidence["not_offered"] == ["Flag"]
    assert evidence["summary"] == "1 of 2 offered pulled, 0 documents; 1 search not offered"
    assert all(ex.notification_id == "n-offered" for ex in searches)
