"""Waiting is a stored state: a run's steps stand in the store as they go (pending, running, waiting with what and
until when, passed, failed, skipped), and GET /api/runs/<id> shows them live, to the admin and the session's key."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scenarios.base import Scenario
from scenarios.drivers import ScenarioSession
from scenarios.runner import Harness, StepFailed, run_scenarios
from scenarios.steps import StepDef, Steps
from speeltuin.defaults import sqlite_url
from speeltuin.session_report import run_progress
from speeltuin.store import Store
from tests.conftest import LiveNode, complete_session, start_live_node


class Driver:
    """Opens the session `progress-a` the node knows; the vendor never has to act."""

    label = "a driver for the test"

    def open_session(self, h: Harness, scenario: Scenario) -> ScenarioSession:
        return ScenarioSession("progress-a", {})

    def act(self, h: Harness, scenario: Scenario, action: str, **extra: str) -> str:
        return "nothing to do"


class WaitsForTheVendor(Scenario):  # no kind: not registered in the catalogue
    id, title, vendor_role = "progress-waits", "Waits for the vendor", "receiver"

    def __init__(self, arrived: threading.Event) -> None:
        super().__init__()
        self.arrived = arrived

    def steps(self) -> Steps:
        return Steps(StepDef("open", "Open the session", lambda h: str(self.open_session(h))),
                     StepDef("await", "Vendor pulls", self.await_vendor),
                     StepDef("fails", "A step that fails", self.fail),
                     StepDef("after", "Never runs", lambda h: "unreachable"))

    def await_vendor(self, h: Harness) -> str:
        return h.wait_for("the vendor's pull", lambda: "pulled" if self.arrived.is_set() else None)

    def fail(self, h: Harness) -> str:
        raise StepFailed("the evidence of a failure")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    db = sqlite_url(tmp_path_factory.mktemp("progress") / "sim.sqlite")
    live, server = start_live_node(db, ura="90000101", client_id="sim", name="sim")
    live.keys = {}  # type: ignore[attr-defined]
    for session_id in ("progress-a", "progress-b"):
        created = live.api("POST", "/sessions", json=complete_session("receiver", id=session_id,
                                                                      vendor_ura="90000202"))
        assert created.status_code == 201, created.text
        live.keys[session_id] = created.json()["access_key"]  # type: ignore[attr-defined]
    yield live
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    live.runtime.store.close()


def _status(node: LiveNode, run_id: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{node.url}/api/runs/{run_id}", headers=headers, timeout=30)


def test_a_waiting_step_is_stored_and_shown_live_then_the_outcome(node: LiveNode) -> None:
    store = Store(node.runtime.store.url)
    arrived = threading.Event()
    harness = Harness(None, Driver(), store, wait_s=30)  # type: ignore[arg-type]  # no simulator call is made
    ran: dict[str, object] = {}
    worker = threading.Thread(target=lambda: ran.update(run=run_scenarios(
        harness, [WaitsForTheVendor(arrived)], title="stored progress", run_id="run-progress")))
    worker.start()
    try:
        deadline, progress = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            progress = run_progress(store, "run-progress")
            if progress and progress["waiting"]:
                break
            time.sleep(0.05)
        assert progress is not None and progress["status"] == "running"
        [waiting] = progress["waiting"]
        assert waiting["scenario"] == "progress-waits" and waiting["step"] == "await"
        assert waiting["waiting_for"] == "the vendor's pull" and waiting["until"] > time.time() + 20
        steps = {s["name"]: s["status"] for s in progress["scenarios"][0]["steps"]}
        assert steps == {"open": "passed", "await": "waiting", "fails": "pending", "after": "pending"}
        live = _status(node, progress["id"], {"X-Session-Key": node.keys["progress-a"]})  # type: ignore[attr-defined]
        assert live.status_code == 200 and live.json()["waiting"][0]["waiting_for"] == "the vendor's pull"
    finally:
        arrived.set()
        worker.join(timeout=30)
    run = ran["run"]
    done = run_progress(store, run.id)  # type: ignore[attr-defined]
    assert done is not None and done["status"] == "failed" and done["waiting"] == []
    assert [(s["name"], s["status"]) for s in done["scenarios"][0]["steps"]] == [
        ("open", "passed"), ("await", "passed"), ("fails", "failed"), ("after", "skipped")]
    assert done["scenarios"][0]["steps"][2]["detail"] == "the evidence of a failure"
    assert done["sessions"] == ["progress-a"]
    # the admin sees it; another session's key is refused; no key is refused; an unknown run is not found
    assert _status(node, run.id, {"X-Admin-Key": node.config.admin_key}).json()["status"] == "failed"  # type: ignore
    other = _status(node, run.id, {"X-Session-Key": node.keys["progress-b"]})  # type: ignore[attr-defined]
    assert other.status_code == 403 and "error" in other.json()
    assert _status(node, run.id, {}).status_code == 401  # type: ignore[attr-defined]
    assert _status(node, "run-unknown", {"X-Admin-Key": node.config.admin_key}).status_code == 404
    store.close()


def test_a_step_status_must_be_known(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    store.record_step("run-1", "sc", "step", status="pending", title="A step", position=0)
    store.record_step("run-1", "sc", "step", status="waiting", waiting_for="x", wait_until=5.0)
    [row] = store.run_steps("run-1")
    assert (row["status"], row["title"], row["waiting_for"], row["wait_until"]) == ("waiting", "A step", "x", 5.0)
    with pytest.raises(ValueError, match="unknown step status 'asleep'"):
        store.record_step("run-1", "sc", "step", status="asleep")
    store.close()
