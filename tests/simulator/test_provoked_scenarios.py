"""Four scenarios the simulator provokes, each proven on the reference vendor faultless and with the fault it targets:

- RCV-03: the simulator notifies without a token (`notify` option `without_token`); faultless the vendor answers 401
  with the Bearer challenge and an OperationOutcome; `accepts-notification-without-token` answers 201.
- SND-02: the vendor (sender) sends an update (`notify` option `update_of`): a new Task, the same groupIdentifier,
  pulled again; `update-with-new-group` gives it a new groupIdentifier.
- RCV-12: the simulator's AS refuses every pull token (provocation `refuse-pull-tokens`); faultless the vendor asks
  once and gives up; `retries-refused-token` asks REFUSED_TOKEN_TRIES times.
- RCV-13: the simulator's FHIR server answers the first request per notification 503 with Retry-After (provocation
  `unavailable-once`); faultless the vendor retries and completes; `ignores-retry-after` fails its pull.

Two real nodes on loopback, shared by the module: 'sim' (the simulator) and 'ven' (the reference vendor); each test
pairs sessions of its own, the vendor's with the `faults` list of the case.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import func, select

from simulator.faults import FAULT_RULES, FAULT_TRIGGERS, REFUSED_TOKEN_INTERVAL_S, REFUSED_TOKEN_TRIES
from simulator.outbound.puller import TOKEN_TRIES
from simulator.provocations import PROVOCATIONS
from speeltuin.defaults import sqlite_url
from speeltuin.records import Notification, NotificationOrigin
from speeltuin.store import jti_uses
from tests.conftest import LiveNode, _pair, complete_session
from validators.rules.token_request import check_grant_refused, check_token_response

BSN = "999993653"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveNode, LiveNode]]:
    folder: Path = tmp_path_factory.mktemp("provoked")
    yield from _pair(sqlite_url(folder / "sim.sqlite"), sqlite_url(folder / "ven.sqlite"))


def _create(node: LiveNode, body: dict[str, Any]) -> dict[str, Any]:
    response = node.api("POST", "/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _pair_sessions(sim: LiveNode, ven: LiveNode, name: str, *, vendor_role: str, provoke: tuple[str, ...] = (),
                   ven_faults: tuple[str, ...] = ()) -> dict[str, Any]:
    """Sessions 'sim-<name>' on sim (with `provoke`) and 'ven-<name>' on ven (with `ven_faults`), as the scenarios
    pair them (scenarios/pairing.py); returns the simulator session's answer."""
    sim_id, ven_id = f"sim-{name}", f"ven-{name}"
    ven_base = f"{ven.public_url}/s/{ven_id}"
    sim_body: dict[str, Any] = {"id": sim_id, "vendor_role": vendor_role, "vendor_ura": ven.ura,
                                "vendor_jwks": ven.jwks(), "vendor_client_id": ven.client_id,
                                "vendor_token_url": f"{ven_base}/token", "provoke": list(provoke)}
    if vendor_role == "receiver":
        sim_body["vendor_notification_base"] = f"{ven_base}/notify"
    else:
        sim_body["vendor_fhir_base"] = f"{ven_base}/fhir"
    created = _create(sim, sim_body)
    endpoints = created["endpoints"]
    ven_body: dict[str, Any] = {"id": ven_id, "vendor_role": "sender" if vendor_role == "receiver" else "receiver",
                                "vendor_ura": sim.ura, "vendor_jwks": sim.jwks(), "vendor_client_id": sim.client_id,
                                "own_client_id": ven.client_id, "vendor_token_url": endpoints["token_url"],
                                "faults": list(ven_faults)}
    if vendor_role == "receiver":
        ven_body["vendor_fhir_base"] = endpoints["fhir_base"]
    else:
        ven_body["vendor_notification_base"] = endpoints["notification_base"]
    _create(ven, ven_body)
    return created


def _notify(node: LiveNode, session_id: str, **body: Any) -> dict[str, Any]:
    response = node.api("POST", f"/sessions/{session_id}/notify", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _received(node: LiveNode, session_id: str) -> list[Notification]:
    return [n for n in node.runtime.store.list_notifications(session_id) if n.origin == NotificationOrigin.RECEIVED]


def _pulled(node: LiveNode, session_id: str, count: int = 1, timeout: float = 20.0) -> list[Notification]:
    """The first `count` notifications received in the session, once all their pulls have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = _received(node, session_id)[:count]
        if len(received) == count and all(n.pull_status in ("done", "failed", "stopped") for n in received):
            return received
        time.sleep(0.05)
    raise AssertionError(f"{count} pull(s) in {session_id}: not within {timeout:.0f} s")


def _rules(findings: list[dict[str, Any]]) -> list[str]:
    return [f["rule"] for f in findings if f["severity"] == "error"]


# --- RCV-03: a notification without a token ------------------------------------------------------------------

def test_rcv_03_faultless_vendor_refuses_a_notification_without_token(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    _pair_sessions(sim, ven, "r03", vendor_role="receiver")
    sent = _notify(sim, "sim-r03", bsn=BSN, without_token=True)
    delivery = sent["delivery"]
    assert delivery["status"] == 401 and delivery["without_token"] is True, delivery
    assert 'Bearer error="invalid_token"' in delivery["www_authenticate"]
    assert '"resourceType": "OperationOutcome"' in delivery["body"] and "Authorization" in delivery["body"]
    assert delivery["findings"] == []  # refused as SPEC §5.4 says
    assert _received(ven, "ven-r03") == []
    stored = next(n for n in sim.runtime.store.list_notifications("sim-r03"))
    assert stored.delivery == delivery  # GET .../notifications shows it too


def test_rcv_03_accepts_notification_without_token(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    name = "accepts-notification-without-token"
    assert FAULT_TRIGGERS[name] == "notify:without_token"
    _pair_sessions(sim, ven, "r03f", vendor_role="receiver", ven_faults=(name,))
    sent = _notify(sim, "sim-r03f", bsn=BSN, without_token=True)
    delivery = sent["delivery"]
    assert delivery["status"] == 201 and delivery["www_authenticate"] is None, delivery
    assert _rules(delivery["findings"]) == [FAULT_RULES[name]]  # HTTP-006
    # Only the missing token is overlooked: a bad one is still refused, and a normal notification still works.
    bad = requests.post(f"{ven.url}/s/ven-r03f/notify/Task", json=sent["task"], timeout=10,
                        headers={"Authorization": "Bearer not-a-token", "Content-Type": "application/fhir+json"})
    assert bad.status_code == 401
    assert _notify(sim, "sim-r03f", bsn=BSN)["delivery"]["status"] == 201
    assert [n.pull_status for n in _pulled(ven, "ven-r03f", count=2)] == ["done", "done"]


def test_without_token_must_be_a_boolean(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    _pair_sessions(sim, ven, "r03v", vendor_role="receiver")
    refused = sim.api("POST", "/sessions/sim-r03v/notify", json={"bsn": BSN, "without_token": "yes"})
    assert refused.status_code == 400 and "without_token must be true or false" in refused.json()["error"]
    assert sim.runtime.store.list_notifications("sim-r03v") == []


# --- SND-02: an update, same groupIdentifier, pulled again -----------------------------------------------------

@pytest.mark.parametrize("faulty", [False, True], ids=["faultless", "update-with-new-group"])
def test_snd_02_update_keeps_the_group_and_is_pulled_again(nodes: tuple[LiveNode, LiveNode], faulty: bool) -> None:
    sim, ven = nodes
    name = "s02f" if faulty else "s02"
    assert FAULT_TRIGGERS["update-with-new-group"] == "update"
    _pair_sessions(sim, ven, name, vendor_role="sender", ven_faults=("update-with-new-group",) if faulty else ())
    first = _notify(ven, f"ven-{name}", bsn=BSN)
    update = _notify(ven, f"ven-{name}", update_of=first["notification_id"])  # bsn left out: the first's patient
    assert first["delivery"]["status"] == update["delivery"]["status"] == 201
    assert update["update_of"] == first["notification_id"]
    original, updated = _pulled(sim, f"sim-{name}", count=2)
    assert (original.pull_status, updated.pull_status) == ("done", "done")  # the receiver pulls both
    assert updated.patient_bsn == BSN and updated.identifier != original.identifier
    assert updated.authorization_base != original.authorization_base
    assert (updated.group_identifier == original.group_identifier) is not faulty
    assert updated.group_identifier.startswith("urn:uuid:")


def test_update_of_is_refused_unless_sent_in_this_session(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    _pair_sessions(sim, ven, "s02v", vendor_role="sender")
    _pair_sessions(sim, ven, "s02w", vendor_role="sender")
    elsewhere = _notify(ven, "ven-s02w", bsn=BSN)["notification_id"]
    own = _notify(ven, "ven-s02v", bsn=BSN)["notification_id"]
    _pair_sessions(sim, ven, "s02r", vendor_role="receiver")
    _notify(sim, "sim-s02r", bsn=BSN)
    received_id = _pulled(ven, "ven-s02r")[0].id  # a notification ven received, not one it sent
    cases = [({"update_of": "n-unknown"}, "update_of: no notification 'n-unknown' sent in session ven-s02v"),
             ({"update_of": elsewhere}, f"update_of: no notification {elsewhere!r} sent in session ven-s02v"),
             ({"update_of": received_id}, f"no notification {received_id!r} sent in session ven-s02v"),
             ({"update_of": 7}, "update_of must be the notification_id (a string)"),
             ({"update_of": own, "bsn": "999990639"}, "is for BSN 999993653, not 999990639")]
    for body, message in cases:
        refused = ven.api("POST", "/sessions/ven-s02v/notify", json=body)
        assert refused.status_code == 400 and message in refused.json()["error"], (body, refused.text)
    assert len(ven.runtime.store.list_notifications("ven-s02v")) == 1  # nothing sent


# --- RCV-12: pull tokens refused -------------------------------------------------------------------------------

def _jtis_of(node: LiveNode, session_id: str) -> int:
    with node.runtime.store.engine.connect() as c:
        return c.execute(select(func.count()).select_from(jti_uses).where(jti_uses.c.session_id == session_id)
                         ).scalar_one()


@pytest.mark.parametrize("faulty", [False, True], ids=["faultless", "retries-refused-token"])
def test_rcv_12_refused_pull_token_is_asked_a_bounded_number_of_times(nodes: tuple[LiveNode, LiveNode],
                                                                       faulty: bool) -> None:
    sim, ven = nodes
    name = "r12f" if faulty else "r12"
    assert FAULT_TRIGGERS["retries-refused-token"] == "provoke:refuse-pull-tokens"
    created = _pair_sessions(sim, ven, name, vendor_role="receiver", provoke=("refuse-pull-tokens",),
                             ven_faults=("retries-refused-token",) if faulty else ())
    assert created["config"]["provoke"] == ["refuse-pull-tokens"]
    jtis_before = _jtis_of(sim, f"sim-{name}")
    sent = _notify(sim, f"sim-{name}", bsn=BSN)
    assert sent["delivery"]["status"] == 201  # the notification token is not refused: only pull tokens are
    pulled = _pulled(ven, f"ven-{name}")[0]
    summary = pulled.pull_summary
    assert pulled.pull_status == "failed" and "invalid_grant" in summary["error"], summary
    tries = REFUSED_TOKEN_TRIES if faulty else TOKEN_TRIES
    assert TOKEN_TRIES <= 3 < REFUSED_TOKEN_TRIES
    assert summary["token_requests"] == tries and summary["results"] == []
    # The simulator's side: each pull-token request reached its AS with two assertions (two jtis).
    assert _jtis_of(sim, f"sim-{name}") - jtis_before == 2 * tries
    if faulty:
        assert summary["finished_at"] - summary["started_at"] >= (tries - 1) * REFUSED_TOKEN_INTERVAL_S


def test_refused_pull_token_is_a_correct_invalid_grant(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    created = _pair_sessions(sim, ven, "r12d", vendor_role="receiver", provoke=("refuse-pull-tokens",))
    ven.config.auto_pull = False
    try:
        sent = _notify(sim, "sim-r12d", bsn=BSN)
    finally:
        ven.config.auto_pull = True
    assert sent["delivery"]["status"] == 201
    token_url = created["endpoints"]["token_url"]
    base = sim.runtime.store.get_notification(sent["notification_id"]).authorization_base
    response = requests.post(token_url, timeout=10,
                             data=ven.runtime.signer.token_request_form(ven.client_id, ven.ura, token_url, base))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.text
    assert "refuse-pull-tokens" in response.json()["error_description"]
    assert check_token_response(response.status_code, response.headers, response.content) == []  # RFC 6749 §5.2
    assert check_grant_refused(response.status_code, response.content) == []
    # A bad client is still told so: the provocation refuses the grant, it does not skip client authentication.
    bad = requests.post(token_url, timeout=10, data={**ven.runtime.signer.token_request_form(
        ven.client_id, ven.ura, token_url, base), "client_assertion": "not.a.jwt"})
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")


# --- RCV-13: 503 with Retry-After once per notification --------------------------------------------------------

@pytest.mark.parametrize("faulty", [False, True], ids=["faultless", "ignores-retry-after"])
def test_rcv_13_unavailable_once_is_retried_and_completed(nodes: tuple[LiveNode, LiveNode], faulty: bool) -> None:
    sim, ven = nodes
    name = "r13f" if faulty else "r13"
    assert FAULT_TRIGGERS["ignores-retry-after"] == "provoke:unavailable-once"
    _pair_sessions(sim, ven, name, vendor_role="receiver", provoke=("unavailable-once",),
                   ven_faults=("ignores-retry-after",) if faulty else ())
    sent = _notify(sim, f"sim-{name}", bsn=BSN)
    assert sent["delivery"]["status"] == 201
    pulled = _pulled(ven, f"ven-{name}")[0]
    statuses = [r["status"] for r in pulled.pull_summary["results"]]
    assert sent["notification_id"] in sim.runtime.made_unavailable  # the simulator did answer 503 once
    if faulty:
        assert pulled.pull_status == "failed" and statuses[0] == 503 and set(statuses[1:]) == {200}, statuses
    else:
        assert pulled.pull_status == "done" and set(statuses) == {200}, pulled.pull_summary
        assert pulled.pull_summary["finished_at"] - pulled.pull_summary["started_at"] >= 1  # it waited Retry-After


def test_unavailable_once_answers_503_with_retry_after_once_per_notification(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    created = _pair_sessions(sim, ven, "r13d", vendor_role="receiver", provoke=("unavailable-once",))
    token_url, fhir = created["endpoints"]["token_url"], created["endpoints"]["fhir_base"]
    ven.config.auto_pull = False
    try:
        first, second = (_notify(sim, "sim-r13d", bsn=BSN) for _ in range(2))
    finally:
        ven.config.auto_pull = True

    def token(sent: dict[str, Any]) -> str:
        base = sim.runtime.store.get_notification(sent["notification_id"]).authorization_base
        form = ven.runtime.signer.token_request_form(ven.client_id, ven.ura, token_url, base)
        return requests.post(token_url, data=form, timeout=10).json()["access_token"]

    def get(path: str, access_token: str | None) -> requests.Response:
        headers = {"Accept": "application/fhir+json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        return requests.get(f"{fhir}/{path}", headers=headers, timeout=10)

    assert get("Patient", None).status_code == 401  # no token: refused as ever, and not counted as a first request
    first_token, second_token = token(first), token(second)
    busy = get("Condition", first_token)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    outcome = busy.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "transient"
    assert busy.headers["Content-Type"].startswith("application/fhir+json")
    assert get("Condition", first_token).status_code == 200  # later requests are served
    assert get("Patient", first_token).status_code == 200
    assert get("Patient", second_token).status_code == 503  # the other notification has its own first request
    assert get("Patient", second_token).status_code == 200


# --- provocations: validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("provoke, vendor_role, message", [
    (["no-such-thing"], "receiver", "provoke: unknown provocation 'no-such-thing'; known: refuse-pull-tokens, "
                                    "unavailable-once"),
    ("refuse-pull-tokens", "receiver", "provoke must be a list of provocation names; known: refuse-pull-tokens"),
    ([1], "receiver", "provoke must be a list of provocation names"),
    (["unavailable-once"], "sender", "provoke: unavailable-once needs vendor_role 'receiver'"),
])
def test_bad_provocations_are_refused(nodes: tuple[LiveNode, LiveNode], provoke: object, vendor_role: str,
                                      message: str) -> None:
    sim, ven = nodes
    body = complete_session(vendor_role, id="sim-bad-provoke", vendor_ura=ven.ura, vendor_jwks=ven.jwks(),
                            provoke=provoke)
    refused = sim.api("POST", "/sessions", json=body)
    assert refused.status_code == 400 and message in refused.json()["error"], refused.text
    assert sim.api("GET", "/sessions/sim-bad-provoke").status_code == 404


def test_provocations_are_listed_with_descriptions() -> None:
    assert set(PROVOCATIONS) == {"refuse-pull-tokens", "unavailable-once"}
    assert all(text and "\n" not in text for text in PROVOCATIONS.values())
