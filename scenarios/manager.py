"""The test manager as a service: it takes the runs asked for over the API (POST /api/sessions/<id>/runs) from
the store, one at a time, and runs them against the session's vendor system (scenarios/drivers.py SessionVendor).

`speeltuin serve --test-manager` runs it next to the simulator; its progress and results are in the store, where
GET /api/runs/<id> and the session's report read them.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from scenarios.catalogue import all_scenarios
from scenarios.drivers import SessionVendor
from scenarios.runner import Harness, run_scenarios
from scenarios.stack import Node
from speeltuin.store import Store

POLL_S = 0.5  # how often an idle manager looks for a queued run


def _refuse(store: Store, request: dict[str, Any], error: str) -> None:
    now = time.time()
    store.save_run(request["run_id"], now, now, {"id": request["run_id"], "title": "refused", "status": "failed",
                                                 "error": error, "sessions": [request["session_id"]],
                                                 "scenarios": request["scenario_ids"]})


def run_queued(store: Store, simulator: Node, request: dict[str, Any], *, wait_s: float = 60.0,
               quiet_s: float = 3.0) -> None:
    """Run one queued run: the scenarios it names (default: every scenario of the session's vendor role)."""
    session = store.get_session(request["session_id"])
    if session is None:
        return _refuse(store, request, f"no session {request['session_id']!r}")
    role = str(session.vendor_role)
    catalogue = {cls.id: cls for cls in all_scenarios()}
    wanted = request["scenario_ids"] or [cls.id for cls in all_scenarios() if cls.vendor_role == role]
    unknown = [s for s in wanted if s not in catalogue]
    if unknown:
        return _refuse(store, request, f"no scenario {', '.join(unknown)}; known: {', '.join(catalogue)}")
    other = [s for s in wanted if catalogue[s].vendor_role != role]
    if other:
        return _refuse(store, request, f"{', '.join(other)} need a vendor that is not the {role}, as in this session")
    driver = SessionVendor(session.id, label=f"{session.name} (session {session.id})")
    harness = Harness(simulator, driver, store, environment={"simulator": simulator.public_url,
                                                               "vendor system": driver.label},
                      wait_s=wait_s, quiet_s=quiet_s, proxy_url=simulator.public_url)
    run_scenarios(harness, [catalogue[s]() for s in wanted], title=f"{len(wanted)} scenario(s) in session "
                  f"{session.id}", run_id=request["run_id"])


def publish_catalogue(store: Store) -> None:
    """Tell the simulator (its web UI) which scenarios this test manager can run."""
    store.publish_scenarios([{"id": cls.id, "vendor_role": cls.vendor_role, "kind": cls.kind, "title": cls.title,
                              "outcome": cls.outcome} for cls in all_scenarios()])


def work(store: Store, simulator: Node, stop: threading.Event, **options: float) -> None:
    """Publish the catalogue, then take queued runs until `stop` is set; a run that breaks is recorded as failed,
    the manager goes on."""
    publish_catalogue(store)
    while not stop.is_set():
        request = store.take_queued_run()
        if request is None:
            stop.wait(POLL_S)
            continue
        try:
            run_queued(store, simulator, request, **options)
        except Exception as exc:  # the service keeps serving the other sessions
            _refuse(store, request, f"the test manager failed: {type(exc).__name__}: {exc}")
