"""The simulator's probes, recorded by the real proxy: the session's evidence says what the vendor's answer showed
(the probe's verdict on the recorded exchange), and what the probe sent wrong on purpose is a note, not an error
against the vendor. The vendor is the reference vendor, faultless in one session and leaking another patient's
data in the other."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import requests

from scenarios.pairing import pair_sessions
from scenarios.stack import Stack, start_stack
from speeltuin.records import PROXY_FLUSH_PATH
from speeltuin.session_report import session_report
from speeltuin.store import Store

BSN = "999993653"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(Path(tmp_path_factory.mktemp("probes"))) as started:
        assert started.vendor is not None
        for sim_id, faults in (("probe-good", ()), ("probe-leaky", ("leaks-other-patient",))):
            pair_sessions(started.simulator, started.vendor, vendor_role="sender", sim_id=sim_id,
                          ven_id=f"ven-{sim_id}", ven_faults=faults)
            sent = started.vendor.api("POST", f"/sessions/ven-{sim_id}/notify", json={"bsn": BSN})
            assert sent.status_code == 200 and sent.json()["delivery"]["status"] == 201, sent.text
        yield started


def _probe(stack: Stack, session_id: str, kind: str) -> dict:
    answered = stack.simulator.api("POST", f"/sessions/{session_id}/probes/{kind}")
    assert answered.status_code == 200, answered.text
    return answered.json()


def _recorded(stack: Stack, session_id: str) -> Store:
    assert requests.get(f"{stack.proxy.front_url}{PROXY_FLUSH_PATH}", timeout=40).json()["flushed"]
    return Store(stack.simulator.database_url)


def test_a_refused_probe_leaves_no_error_against_the_vendor(stack: Stack) -> None:
    for kind in ("no-token", "wrong-aud"):
        result = _probe(stack, "probe-good", kind)
        assert not [f for f in result["findings"] if f["severity"] == "error"], result
    store = _recorded(stack, "probe-good")
    try:
        probes = [f for ex in store.list_exchanges(["probe-good"]) for f in ex.findings
                  if "probe" in f.message]
        report = session_report(store, "probe-good", page_size=0)
    finally:
        store.close()
    # BEAR-001 (no Authorization header) and JWT-013 (wrong aud): what the probes sent on purpose, noted
    assert {f.rule for f in probes} >= {"BEAR-001", "JWT-013"}, probes
    assert all(f.severity == "info" and "sent on purpose" in f.message for f in probes), probes
    assert report.counts()["error"] == 0, report.scenarios[0].steps


def test_a_leak_the_probe_finds_is_an_error_in_the_sessions_evidence(stack: Stack) -> None:
    result = _probe(stack, "probe-leaky", "other-patient")
    assert [f["rule"] for f in result["findings"] if f["severity"] == "error"] == ["HTTP-008"], result
    store = _recorded(stack, "probe-leaky")
    try:
        leaked = [ex for ex in store.list_exchanges(["probe-leaky"])
                  if ex.tag == "search" and "HTTP-008" in {f.rule for f in ex.findings if f.severity == "error"}]
        report = session_report(store, "probe-leaky", page_size=0)
    finally:
        store.close()
    assert len(leaked) == 1 and "identifier=" in leaked[0].url, leaked
    assert report.status == "failed" and "HTTP-008" in report.scenarios[0].steps[0].detail
