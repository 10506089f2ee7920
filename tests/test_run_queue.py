"""Runs asked for over the API: a vendor with only its session and its access key (no vendor.toml, no CLI) asks the
test manager next to the simulator (`speeltuin serve --test-manager`) to run scenarios, and follows them live on
GET /api/runs/<id>; what it must do by hand is the waiting step's instruction.

The vendor is the external one of tests/external_vendor, behind the real proxy.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from scenarios.stack import Stack, start_stack
from speeltuin.defaults import sqlite_url
from speeltuin.records import ProxyPorts
from tests.test_run_external_vendor import ENV, NODE_CLIENT_ID, NODE_URA, ROOT, SESSIONS, Setup


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, Stack, dict[str, str]]]:
    """The external vendor; the simulator with its test manager and the proxy; a session per role and its key."""
    folder = tmp_path_factory.mktemp("queue")
    vendor = Setup(folder)
    try:
        with start_stack(folder / "stack", vendor_url=vendor.node, database_url=sqlite_url(folder / "sim.sqlite"),
                         ports=ProxyPorts(vendor.front, vendor.back),
                         simulator_options=("--test-manager", "--manager-timeout", "30")) as stack:
            back = stack.proxy.back_url
            keys = {}
            for role, extra in (("receiver", {"vendor_notification_base": f"{back}/notify"}),
                                ("sender", {"vendor_fhir_base": f"{back}/fhir"})):
                created = stack.simulator.api("POST", "/sessions", json={
                    "id": SESSIONS[role], "name": "Acme EPD", "vendor_role": role, "vendor_ura": NODE_URA,
                    "vendor_client_id": NODE_CLIENT_ID, "vendor_jwks_url": f"{vendor.node}/jwks",
                    "vendor_token_url": f"{back}/token", **extra,
                    # reached through the proxy's back port, its AS knows itself by its own URL (README)
                    "vendor_token_audience": f"{vendor.node}/token"})
                assert created.status_code == 201, created.text
                keys[role] = created.json()["access_key"]
            yield vendor, stack, keys
    finally:
        vendor.stop()


def _api(stack: Stack, method: str, path: str, key: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{stack.simulator.url}/api{path}", headers={"X-Session-Key": key}, timeout=30,
                            **kwargs)


def _follow(stack: Stack, run_id: str, key: str, until: Any, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _api(stack, "GET", f"/runs/{run_id}", key)
        assert status.status_code == 200, status.text
        if until(status.json()):
            return status.json()
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not get there: {status.json()}")


def test_a_vendor_asks_for_a_run_with_its_session_key_and_follows_it(service) -> None:
    _vendor, stack, keys = service
    asked = _api(stack, "POST", f"/sessions/{SESSIONS['receiver']}/runs", keys["receiver"],
                 json={"scenarios": ["RCV-01", "RCV-11"]})
    assert asked.status_code == 202, asked.text
    run_id = asked.json()["run"]
    assert asked.json()["status_url"] == f"/api/runs/{run_id}"
    done = _follow(stack, run_id, keys["receiver"], lambda run: run["status"] in ("passed", "failed"))
    assert done["status"] == "passed", done
    assert [s["id"] for s in done["scenarios"]] == ["RCV-01", "RCV-11"]
    assert all(step["status"] == "passed" for s in done["scenarios"] for step in s["steps"])
    assert done["sessions"] == [SESSIONS["receiver"]]
    # the other role's key opens none of it; the session's report now holds the run's traffic
    assert _api(stack, "GET", f"/runs/{run_id}", keys["sender"]).status_code == 403
    report = _api(stack, "GET", f"/sessions/{SESSIONS['receiver']}/report.json", keys["receiver"]).json()
    assert report["scenarios"][0]["exchanges"]


def test_guided_over_the_api_the_instruction_waits_in_the_run_until_the_vendor_acts(service) -> None:
    vendor, stack, keys = service
    run_id = _api(stack, "POST", f"/sessions/{SESSIONS['sender']}/runs", keys["sender"],
                  json={"scenarios": ["SND-01"]}).json()["run"]
    waiting = _follow(stack, run_id, keys["sender"], lambda run: run["waiting"], timeout=60)
    [what] = waiting["waiting"]
    assert what["scenario"] == "SND-01" and what["waiting_for"] == "a Notification Task from the vendor"
    assert "send a notification" in what["instruction"] and f"/s/{SESSIONS['sender']}/notify/Task" in what["instruction"]
    acted = subprocess.run([sys.executable, "-m", "tests.external_vendor.ctl", "notify", "--node", vendor.node],
                           cwd=ROOT, env=dict(ENV, SPEELTUIN_PATIENT_BSN="999993653"), capture_output=True, text=True,
                           timeout=60)
    assert acted.returncode == 0, acted.stdout + acted.stderr
    done = _follow(stack, run_id, keys["sender"], lambda run: run["status"] in ("passed", "failed"))
    assert done["status"] == "passed", done


@pytest.mark.parametrize("body, status, message", [
    ({"scenarios": ["RCV-99"]}, "failed", "no scenario RCV-99; known: RCV-01"),
    ({"scenarios": ["SND-01"]}, "failed", "SND-01 need a vendor that is not the receiver"),
])
def test_a_run_that_cannot_be_made_says_why(service, body: dict, status: str, message: str) -> None:
    _vendor, stack, keys = service
    run_id = _api(stack, "POST", f"/sessions/{SESSIONS['receiver']}/runs", keys["receiver"], json=body).json()["run"]
    done = _follow(stack, run_id, keys["receiver"], lambda run: run["status"] != "queued", timeout=30)
    assert done["status"] == status and message in done["error"]


@pytest.mark.parametrize("body, error", [
    ({"scenarios": "RCV-01"}, "scenarios: must be a list of scenario ids"),
    ([1, 2], "the body must be a JSON object"),
])
def test_a_malformed_request_is_400(service, body: object, error: str) -> None:
    _vendor, stack, keys = service
    answer = _api(stack, "POST", f"/sessions/{SESSIONS['receiver']}/runs", keys["receiver"], json=body)
    assert answer.status_code == 400 and error in answer.json()["error"]
    other = _api(stack, "POST", f"/sessions/{SESSIONS['sender']}/runs", keys["receiver"], json={})
    assert other.status_code == 403
