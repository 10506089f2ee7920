"""A vendor system that is down, behind the real proxy: the proxy's own 502 page is not taken for the vendor's answer.
The notification's delivery says there was no answer and why, as it does when the simulator calls the vendor
directly."""
from __future__ import annotations

from pathlib import Path

from scenarios.stack import free_port, start_stack
from tests.conftest import complete_session


def test_a_vendor_that_is_down_gave_no_answer(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with start_stack(tmp_path, vendor_url=down) as stack:
        created = stack.simulator.api("POST", "/sessions", json=complete_session(
            "receiver", id="down-1", vendor_ura="90000202", vendor_token_url=f"{stack.proxy.back_url}/token",
            vendor_notification_base=f"{stack.proxy.back_url}/notify"))
        assert created.status_code == 201, created.text
        notified = stack.simulator.api("POST", "/sessions/down-1/notify", json={"bsn": "999993653"})
        assert notified.status_code == 200, notified.text
        delivery = notified.json()["delivery"]
        assert "status" not in delivery, delivery  # no 502 "from the vendor"
        assert f"the validating proxy could not reach the system behind {stack.proxy.back_url}/token (" \
            in delivery["error"] and "Bad Gateway" not in delivery["error"], delivery
        listed = stack.simulator.api("GET", "/sessions/down-1/notifications").json()
        assert listed[0]["delivery"]["error"] == delivery["error"]  # kept with the notification
