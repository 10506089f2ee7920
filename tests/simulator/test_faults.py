"""The reference vendor's fault switches: faultless, the simulator refuses every probe and defect (it is conformant);
with the fault a scenario targets, it fails exactly there, with the rule FAULT_RULES names.

Two real nodes on loopback, shared by the module: 'sim' (the simulator, probing or notifying) and 'ven' (the
reference vendor, whose `config.faults` each test switches).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from scenarios.pairing import pair_sessions
from simulator.app import create_app
from simulator.faults import FAULT_RULES, FAULT_TRIGGERS, FAULTS, UnknownFault, check_faults
from simulator.outbound.defects import DEFECT_RULES, DEFECTS, VALID_TASK_DEFECTS
from simulator.outbound.probes import PROBE_RULES, PROBES
from simulator.provocations import PROVOCATIONS
from simulator.runtime import SimulatorConfig
from speeltuin.cli import main
from speeltuin.defaults import sqlite_url
from speeltuin.records import Notification, NotificationOrigin
from tests.conftest import LiveNode, _pair
from validators.catalogue import load_all
from validators.rules.notification import check_notification_task
from validators.rules.token_request import check_pull_grant

BSN = "999993653"
# probe -> the fault that makes the reference vendor fail it (token-after-cancellation: its own test below)
PROBE_FAULTS = {trigger.removeprefix("probe:"): fault for fault, trigger in FAULT_TRIGGERS.items()
                if trigger.startswith("probe:") and trigger != "probe:token-after-cancellation"}
PROBE_FAULTS["bad-token"] = "accepts-unknown-token"  # a token it never issued, of another shape


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveNode, LiveNode]]:
    folder: Path = tmp_path_factory.mktemp("faults")
    yield from _pair(sqlite_url(folder / "sim.sqlite"), sqlite_url(folder / "ven.sqlite"))


@contextmanager
def fault(node: LiveNode, *names: str) -> Iterator[None]:
    node.config.faults = check_faults(names)
    try:
        yield
    finally:
        node.config.faults = frozenset()


def _received(node: LiveNode, session_id: str) -> list[Notification]:
    return [n for n in node.runtime.store.list_notifications(session_id) if n.origin == NotificationOrigin.RECEIVED]


def _wait(what: str, condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _pulled(node: LiveNode, session_id: str) -> Notification:
    return _wait(f"the pull in {session_id}", lambda: next(
        (n for n in _received(node, session_id)[-1:] if n.pull_status in ("done", "failed", "stopped")), None))


def _errors(result: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in result["findings"] if f["severity"] == "error"]


# --- the catalogue of faults ---------------------------------------------------------------------------------

def test_every_fault_has_a_trigger_and_every_rule_is_in_the_catalogue() -> None:
    catalogue = load_all()
    assert set(FAULT_TRIGGERS) == set(FAULTS)
    # judged by the scenarios' steps (RCV-02, SND-02, RCV-12, RCV-13), no rule
    no_rule = {"ignores-cancellation", "update-with-new-group", "retries-refused-token", "ignores-retry-after"}
    assert set(FAULT_RULES) == set(FAULTS) - no_rule
    for rules in (FAULT_RULES, DEFECT_RULES, PROBE_RULES):
        assert set(rules.values()) <= set(catalogue), sorted(set(rules.values()) - set(catalogue))
    assert set(PROBE_RULES) == set(PROBES) and set(DEFECT_RULES) == set(DEFECTS)
    for name, trigger in FAULT_TRIGGERS.items():
        kind, _, what = trigger.partition(":")
        if kind == "probe":
            assert FAULT_RULES[name] == PROBE_RULES[what], name
        elif kind == "defect":
            assert FAULT_RULES[name] == DEFECT_RULES[what], name
        elif kind == "provoke":
            assert what in PROVOCATIONS, name
        elif kind == "notify":
            assert what == "without_token" and FAULT_RULES[name] == "HTTP-006", name
        else:
            assert trigger in ("cancel", "update", "pull"), name


def test_an_unknown_fault_is_refused() -> None:
    with pytest.raises(UnknownFault, match="known: accepts-"):
        check_faults(["accepts-everything"])


def test_the_app_factory_refuses_an_unknown_fault(tmp_path: Path) -> None:
    config = SimulatorConfig(database_url=sqlite_url(tmp_path / "s.sqlite"), faults=frozenset({"accepts-everything"}))
    with pytest.raises(UnknownFault):
        create_app(config)


def test_serve_refuses_an_unknown_fault_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--fault", "accepts-alg-none", "--fault", "accepts-everything", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown fault 'accepts-everything'" in err


# --- sending side: the probes of simulator/outbound/probes.py ------------------------------------------------

@pytest.fixture(scope="module")
def sender(nodes: tuple[LiveNode, LiveNode]) -> tuple[LiveNode, LiveNode]:
    """'ven' is the sending node and has notified 'sim', which has pulled."""
    sim, ven = nodes
    pair_sessions(sim, ven, vendor_role="sender", sim_id="sim-snd", ven_id="ven-snd")
    sent = ven.api("POST", "/sessions/ven-snd/notify", json={"bsn": BSN}).json()
    assert sent["delivery"]["status"] == 201, sent
    assert _pulled(sim, "sim-snd").pull_status == "done"
    return sim, ven


@pytest.mark.parametrize("kind", sorted(PROBE_FAULTS))
def test_faultless_refuses_the_probe_and_the_fault_fails_it(sender: tuple[LiveNode, LiveNode], kind: str) -> None:
    sim, ven = sender
    refused = sim.api("POST", f"/sessions/sim-snd/probes/{kind}")
    assert refused.status_code == 200, refused.text
    assert refused.json()["findings"] == [], refused.json()
    name = PROBE_FAULTS[kind]
    with fault(ven, name):
        failed = sim.api("POST", f"/sessions/sim-snd/probes/{kind}").json()
    assert FAULT_RULES[name] in _errors(failed), failed
    assert failed["status"] in (200, 201), failed  # the vendor answered as if all were well
    assert "access_token\": \"<redacted>" in failed["body"] or failed["method"] == "GET"


def test_probe_answers_are_the_reference_vendors(sender: tuple[LiveNode, LiveNode]) -> None:
    """What a conformant vendor answers: the status each probe expects, and XML for an XML Accept."""
    sim, _ven = sender
    expected = {"unknown-token": 401, "accept-xml": 200, "malformed-query": 400, "wrong-aud": 401,
                "expired-assertion": 401, "unknown-key": 401, "alg-none": 401, "alg-hmac": 401,
                "replayed-jti": 401, "unknown-authorization-base": 400}
    for kind, status in expected.items():
        result = sim.api("POST", f"/sessions/sim-snd/probes/{kind}").json()
        assert result["status"] == status, result
    xml = sim.api("POST", "/sessions/sim-snd/probes/accept-xml").json()
    assert "<Bundle xmlns=\"http://hl7.org/fhir\"" in xml["body"] and "?_include=" in xml["url"]
    malformed = sim.api("POST", "/sessions/sim-snd/probes/malformed-query").json()
    assert "/Patient?_include=" in malformed["url"] and malformed["url"].endswith("&_count=not-a-number")
    replay = sim.api("POST", "/sessions/sim-snd/probes/replayed-jti").json()
    assert replay["first_status"] == 200


@pytest.mark.parametrize("name", sorted(set(PROBE_FAULTS.values())))
def test_a_fault_fails_only_its_own_probe(sender: tuple[LiveNode, LiveNode], name: str) -> None:
    """Each fault changes one behaviour: with it on, every other probe is still refused."""
    sim, ven = sender
    own = {kind for kind, fault_name in PROBE_FAULTS.items() if fault_name == name}
    with fault(ven, name):
        for kind in sorted(set(PROBE_FAULTS) - own):
            result = sim.api("POST", f"/sessions/sim-snd/probes/{kind}").json()
            assert result["findings"] == [], (name, result)


def test_grants_after_cancellation(nodes: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = nodes
    pair_sessions(sim, ven, vendor_role="sender", sim_id="sim-revoke", ven_id="ven-revoke")
    sent = ven.api("POST", "/sessions/ven-revoke/notify", json={"bsn": BSN}).json()
    _pulled(sim, "sim-revoke")
    assert ven.api("POST", f"/sessions/ven-revoke/notifications/{sent['notification_id']}/cancel").status_code == 200
    _wait("the cancellation", lambda: _received(sim, "sim-revoke")[-1].status == "cancelled")
    refused = sim.api("POST", "/sessions/sim-revoke/probes/token-after-cancellation").json()
    assert (refused["status"], refused["findings"]) == (400, []), refused
    with fault(ven, "grants-after-cancellation"):
        granted = sim.api("POST", "/sessions/sim-revoke/probes/token-after-cancellation").json()
    assert granted["status"] == 200 and _errors(granted) == [FAULT_RULES["grants-after-cancellation"]], granted


# --- receiving side: defective Tasks and the cancellation ----------------------------------------------------

@pytest.fixture(scope="module")
def receiver(nodes: tuple[LiveNode, LiveNode]) -> tuple[LiveNode, LiveNode]:
    """'ven' is the receiving node 'sim' notifies."""
    sim, ven = nodes
    pair_sessions(sim, ven, vendor_role="receiver", sim_id="sim-rcv", ven_id="ven-rcv")
    return sim, ven


def _notify(sim: LiveNode, defect: str | None = None) -> dict[str, Any]:
    body = {"bsn": BSN, **({"defect": defect} if defect else {})}
    response = sim.api("POST", "/sessions/sim-rcv/notify", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_faultless_receiver_refuses_every_defect(receiver: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = receiver
    for defect in sorted(DEFECTS):
        sent = _notify(sim, defect)
        delivery = sent["delivery"]
        assert 400 <= delivery["status"] < 500 and "OperationOutcome" in delivery["body"], (defect, delivery)
        assert DEFECT_RULES[defect] in delivery["body"], (defect, delivery)  # the OperationOutcome names the rule
    assert _received(ven, "ven-rcv") == []


def test_other_owner_is_refused_403_naming_tok_011(receiver: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = receiver
    sent = _notify(sim, "owner-other-organisation")
    assert check_notification_task(sent["task"]) == []  # the Task itself is fine
    assert [f.rule for f in check_pull_grant({"sub": ven.ura}, sent["task"])] == ["TOK-011"]
    assert sent["delivery"]["status"] == 403 and "TOK-011" in sent["delivery"]["body"]
    with fault(ven, "accepts-other-owner"):
        ven.config.auto_pull = False
        try:
            accepted = _notify(sim, "owner-other-organisation")
            assert _notify(sim, "identifier-object")["delivery"]["status"] == 400  # only the owner is overlooked
        finally:
            ven.config.auto_pull = True
    assert accepted["delivery"]["status"] == 201, accepted["delivery"]


def test_accepts_defective_task_accepts_them_all_but_the_ended_period_and_other_owner(
        receiver: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = receiver
    ven.config.auto_pull = False  # the pull of one of them is checked below
    try:
        with fault(ven, "accepts-defective-task"):
            for defect in sorted(set(DEFECTS) - VALID_TASK_DEFECTS - {"period-end-in-the-past"}):
                delivery = _notify(sim, defect)["delivery"]
                assert delivery["status"] == 201, (defect, delivery)
            for defect in ("period-end-in-the-past", "owner-other-organisation"):
                assert _notify(sim, defect)["delivery"]["status"] in (400, 403), defect
    finally:
        ven.config.auto_pull = True
    with fault(ven, "accepts-defective-task"):
        sent = _notify(sim, "identifier-object")  # RCV-11's defect
    assert sent["delivery"]["status"] == 201
    assert FAULT_RULES["accepts-defective-task"] in {f.rule for f in check_notification_task(sent["task"])}
    assert _pulled(ven, "ven-rcv").pull_status == "done"  # pulled as if it were fine


def test_accepts_expired_period(receiver: tuple[LiveNode, LiveNode]) -> None:
    sim, ven = receiver
    with fault(ven, "accepts-expired-period"):
        sent = _notify(sim, "period-end-in-the-past")
        assert _notify(sim, "identifier-object")["delivery"]["status"] == 400  # only the period is overlooked
    assert sent["delivery"]["status"] == 201
    assert FAULT_RULES["accepts-expired-period"] in {f.rule for f in check_notification_task(sent["task"])}
    assert _pulled(ven, "ven-rcv").pull_status == "stopped"  # accepted, yet nothing may be pulled


@pytest.mark.parametrize("faulty", [False, True], ids=["faultless", "ignores-cancellation"])
def test_cancellation(receiver: tuple[LiveNode, LiveNode], faulty: bool) -> None:
    sim, ven = receiver
    sent = _notify(sim)
    assert sent["delivery"]["status"] == 201
    first = _pulled(ven, "ven-rcv")
    assert first.pull_status == "done"
    with fault(ven, *(["ignores-cancellation"] if faulty else [])):
        cancelled_at = time.time()
        answer = sim.api("POST", f"/sessions/sim-rcv/notifications/{sent['notification_id']}/cancel").json()
        assert answer["delivery"]["status"] == 200  # both answer 200 ...
        if faulty:  # ... the faulty one keeps the notification live and pulls again: refused by our sender's AS
            again = _wait("a pull after the cancellation", lambda: next(
                (n for n in _received(ven, "ven-rcv") if n.id == first.id and n.pull_status == "failed"
                 and n.pull_summary["started_at"] >= cancelled_at), None))
            assert again.status == "requested" and "400" in again.pull_summary["error"]
    if not faulty:
        after = next(n for n in _received(ven, "ven-rcv") if n.id == first.id)
        assert after.status == "cancelled" and after.pull_summary["started_at"] < cancelled_at
