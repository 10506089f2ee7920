"""Fault switches and provocations per session: the reference vendor misbehaves in one session only (the matrix test
runs every fault side by side on one node), the simulator provokes in one session only; a bad name is refused with a
message that names the known ones."""
from __future__ import annotations

from pathlib import Path

import pytest

from simulator.runtime import Runtime, SimulatorConfig
from simulator.sessions import SessionError, create_session
from speeltuin.defaults import sqlite_url
from speeltuin.store import Store
from tests.conftest import complete_session


def _create(store: Store, session_id: str, *, role: str = "sender", **extra: object):
    return create_session(store, complete_session(role, vendor_ura="90000101", id=session_id, **extra),
                          own_ura="90000202", own_client_id="ref")


def test_a_session_keeps_its_faults_and_only_it_has_them(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    faulty = _create(store, "faulty", faults=["serves-without-token", "leaks-other-patient"])
    plain = _create(store, "plain")
    stored = store.get_session("faulty")
    assert stored is not None and stored.config.faults == ("leaks-other-patient", "serves-without-token")
    assert stored.config.to_dict()["faults"] == ["leaks-other-patient", "serves-without-token"]
    assert "faults" not in plain.config.to_dict()  # unchanged for sessions without faults
    config = SimulatorConfig(database_url=store.url, faults=frozenset({"accepts-wrong-aud"}))
    runtime = Runtime(config, store, None, None)  # type: ignore[arg-type]  # no signer or patients needed
    assert runtime.has_fault(faulty, "serves-without-token") and not runtime.has_fault(plain, "serves-without-token")
    assert runtime.has_fault(plain, "accepts-wrong-aud")  # the node's own switches hold in every session
    store.close()


@pytest.mark.parametrize("faults, message", [
    (["no-such-fault"], "faults: unknown fault 'no-such-fault'; known: accepts-alg-hmac, "),
    ("serves-without-token", "faults must be a list of fault names"),
    ([1], "faults must be a list of fault names"),
])
def test_unknown_or_malformed_faults_are_refused(tmp_path: Path, faults: object, message: str) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    with pytest.raises(SessionError, match=message):
        _create(store, "bad", faults=faults)
    assert store.get_session("bad") is None
    store.close()


def test_a_session_keeps_its_provocations_and_shows_them_only_when_set(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    _create(store, "provoking", role="receiver", provoke=["unavailable-once", "refuse-pull-tokens"])
    _create(store, "calm", role="receiver")
    stored = store.get_session("provoking")
    assert stored is not None and stored.config.provoke == ("refuse-pull-tokens", "unavailable-once")
    assert stored.config.to_dict()["provoke"] == ["refuse-pull-tokens", "unavailable-once"]
    calm = store.get_session("calm")
    assert calm is not None and calm.config.provoke == () and "provoke" not in calm.config.to_dict()
    store.close()


@pytest.mark.parametrize("provoke, role, message", [
    (["no-such-provocation"], "receiver", "provoke: unknown provocation 'no-such-provocation'; known: "
                                          "refuse-pull-tokens, unavailable-once"),
    ({"refuse-pull-tokens": True}, "receiver", "provoke must be a list of provocation names"),
    (["refuse-pull-tokens"], "sender", "provoke: refuse-pull-tokens needs vendor_role 'receiver'"),
])
def test_unknown_or_misplaced_provocations_are_refused(tmp_path: Path, provoke: object, role: str,
                                                       message: str) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    with pytest.raises(SessionError, match=message):
        _create(store, "bad", role=role, provoke=provoke)
    assert store.get_session("bad") is None
    store.close()


def test_a_running_session_switches_its_provocations_on_and_off(tmp_path: Path) -> None:
    from simulator.sessions import set_provocations

    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    receiver = _create(store, "recv", role="receiver")
    switched = set_provocations(store, receiver, ["unavailable-once", "refuse-pull-tokens"])
    assert switched.config.provoke == ("refuse-pull-tokens", "unavailable-once")
    assert store.get_session("recv").config.provoke == ("refuse-pull-tokens", "unavailable-once")  # type: ignore
    assert set_provocations(store, switched, []).config.provoke == ()
    assert store.get_session("recv").config.provoke == ()  # type: ignore[union-attr]
    with pytest.raises(SessionError, match="unknown provocation 'nap'"):
        set_provocations(store, receiver, ["nap"])
    sender = _create(store, "send")
    with pytest.raises(SessionError, match="needs vendor_role 'receiver'"):
        set_provocations(store, sender, ["refuse-pull-tokens"])
    store.close()
