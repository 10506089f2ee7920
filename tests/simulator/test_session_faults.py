"""Fault switches per session: the reference vendor misbehaves in one session only (the matrix test runs every
fault side by side on one node); a bad name is refused with a message that names the known ones."""
from __future__ import annotations

from pathlib import Path

import pytest

from simulator.runtime import Runtime, SimulatorConfig
from simulator.sessions import SessionError, create_session
from speeltuin.defaults import sqlite_url
from speeltuin.store import Store

BODY = {"vendor_role": "sender", "vendor_ura": "90000101"}


def _create(store: Store, session_id: str, **extra: object):
    return create_session(store, {**BODY, "id": session_id, **extra}, own_ura="90000202", own_client_id="ref")


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
