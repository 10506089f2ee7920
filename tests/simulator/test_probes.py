"""Probes against a vendor's resource server: our own sending node refuses every one of them properly."""
from __future__ import annotations

import time

from speeltuin.records import NotificationOrigin
from tests.simulator.helpers import pair_sessions


def _received(sim):  # type: ignore[no-untyped-def]
    return [n for n in sim.runtime.store.list_notifications("sim-1") if n.origin == NotificationOrigin.RECEIVED]


def test_reference_sender_refuses_every_probe(node_pair) -> None:
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="sender")
    early = sim.api("POST", "/sessions/sim-1/probes/no-token")
    assert early.status_code == 400 and "no notification received" in early.json()["error"]
    sent = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": "999993653"}).json()
    assert sent["delivery"]["status"] == 201
    for kind, status in (("no-token", 401), ("bad-token", 401), ("other-patient", 403), ("malformed-query", 400)):
        result = sim.api("POST", f"/sessions/sim-1/probes/{kind}").json()
        assert (result["status"], result["findings"]) == (status, []), result
    assert sim.api("POST", "/sessions/sim-1/probes/token-after-cancellation").status_code == 400  # not cancelled yet
    assert ven.api("POST", f"/sessions/ven-1/notifications/{sent['notification_id']}/cancel").status_code == 200
    deadline = time.monotonic() + 10
    while _received(sim)[-1].status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = sim.api("POST", "/sessions/sim-1/probes/token-after-cancellation").json()
    assert (refused["status"], refused["findings"]) == (400, []), refused
    assert sim.api("POST", "/sessions/sim-1/probes/nonsense").status_code == 400


def test_a_lenient_sender_is_caught(node_pair) -> None:
    """Make our sender issue tokens regardless (a vendor's bug): the probe reports TOK-015."""
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="sender")
    sent = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": "999993653"}).json()
    ven.api("POST", f"/sessions/ven-1/notifications/{sent['notification_id']}/cancel")
    deadline = time.monotonic() + 10
    while _received(sim)[-1].status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    # the vendor "forgets" the cancellation in its own store
    ven.runtime.store.update_notification(sent["notification_id"], status="requested")
    caught = sim.api("POST", "/sessions/sim-1/probes/token-after-cancellation").json()
    assert caught["status"] == 200 and [f["rule"] for f in caught["findings"]] == ["TOK-015"]
