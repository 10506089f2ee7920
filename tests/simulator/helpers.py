"""Session set-up shared by the simulator tests: the same pairing the scenarios make, over real HTTP."""
from __future__ import annotations

import time

from scenarios.pairing import pair_sessions as _pair_sessions
from speeltuin.records import Notification, NotificationOrigin
from tests.conftest import LiveNode


def pair_sessions(sim: LiveNode, ven: LiveNode, *, vendor_role: str) -> dict[str, str]:
    """Sessions 'sim-1' on `sim` and 'ven-1' on `ven`; `vendor_role` is the role `ven` plays for `sim`."""
    return _pair_sessions(sim, ven, vendor_role=vendor_role, sim_id="sim-1", ven_id="ven-1")


def wait_for_pull(node: LiveNode, session_id: str, timeout: float = 30.0) -> Notification:
    """The first notification `node` received in the session, once its pull has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = [n for n in node.runtime.store.list_notifications(session_id) if n.origin == NotificationOrigin.RECEIVED]
        if received and received[0].pull_status in ("done", "failed", "stopped"):
            return received[0]
        time.sleep(0.1)
    raise AssertionError(f"the pull in session {session_id} did not finish within {timeout:.0f} s")
