"""A receiving simulator (a real `speeltuin serve` process) killed with SIGKILL in the middle of a pull, on SQLite and
on PostgreSQL: after a restart on the same store every exchange and notification recorded before the kill is there,
the interrupted pull is marked failed with the reason (never `pulling` forever), and the session goes on."""
from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from scenarios.stack import accepts_tcp, free_port
from simulator.outbound.task_builder import build_notification_task
from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer
from speeltuin.store import Store
from tests.db import database_url

ADMIN_KEY = "crash-test-admin-key-0123456789"
VENDOR_URA = "12345678"


class HangingVendor:
    """The sending vendor's servers: a token for whoever asks, and FHIR searches that never answer in time."""

    def __init__(self) -> None:
        self.searches = threading.Event()
        release = self.release = threading.Event()
        seen = self.searches

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._answer(200, {"access_token": "vendor-token-" + "x" * 30, "token_type": "Bearer",
                                   "expires_in": 300})

            def do_GET(self) -> None:  # noqa: N802
                seen.set()
                release.wait(60)  # the simulator is killed while it waits here
                self._answer(503, {"resourceType": "OperationOutcome"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the caller is gone

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "speeltuin.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", url,
             "--public-url", f"http://127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, defaults.ADMIN_KEY_ENV: ADMIN_KEY}, start_new_session=True)
    deadline = time.monotonic() + 60
    while not accepts_tcp(port):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
        time.sleep(0.1)
    return process


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


def _notify(base: str, vendor: Signer) -> requests.Response:
    client = requests.Session()
    client.trust_env = False
    token_url = f"{base}/s/crash-1/token"
    token = client.post(token_url, data=vendor.token_request_form("the-vendor", VENDOR_URA, token_url), timeout=30)
    assert token.status_code == 200, token.text
    now = datetime.now(timezone.utc).replace(microsecond=0)
    task = build_notification_task(bsn="999993653", patient_name="S M", sender_ura=VENDOR_URA, sender_name="v",
                                   receiver_ura=defaults.OWN_URA, authorization_base=f"base-{time.time_ns()}",
                                   authored_on=now, period_end=now + timedelta(days=1))
    return client.post(f"{base}/s/crash-1/notify/Task", json=task, timeout=30,
                       headers={"Authorization": f"Bearer {token.json()['access_token']}",
                                "Content-Type": "application/fhir+json"})


def test_a_simulator_killed_mid_pull_keeps_its_record_and_goes_on(store_url: str, tmp_path: Path) -> None:
    vendor_keys = Signer.load_or_create(Store(sqlite_url(tmp_path / "vendor-keys.sqlite")))
    vendor = HangingVendor()
    port, log = free_port(), tmp_path / "simulator.log"
    process = _serve(store_url, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        created = requests.post(f"{base}/api/sessions", headers={"X-Admin-Key": ADMIN_KEY}, timeout=30, json={
            "id": "crash-1", "vendor_role": "sender", "vendor_ura": VENDOR_URA, "vendor_jwks": vendor_keys.jwks(),
            "vendor_client_id": "the-vendor", "vendor_token_url": f"{vendor.url}/token",
            "vendor_fhir_base": f"{vendor.url}/fhir"})
        assert created.status_code == 201, created.text
        first = _notify(base, vendor_keys)
        assert first.status_code == 201, first.text
        assert vendor.searches.wait(30), "the simulator never began to pull"
        store = Store(store_url)
        try:
            before = store.list_notifications("crash-1")
            recorded = len(store.query_exchanges("crash-1", limit=1000)[0])
        finally:
            store.close()
        assert [n.pull_status for n in before] == ["pulling"]
        os.killpg(process.pid, signal.SIGKILL)  # no chance to finish anything
        process.wait(30)

        process = _serve(store_url, port, log)  # the same store, the same address
        store = Store(store_url)
        try:
            after = store.list_notifications("crash-1")
            assert len(store.query_exchanges("crash-1", limit=1000)[0]) >= recorded
        finally:
            store.close()
        assert [n.id for n in after] == [n.id for n in before]
        assert after[0].pull_status == "failed" and "interrupted" in after[0].pull_summary["error"], after[0]
        shown = requests.get(f"{base}/api/sessions/crash-1/notifications", headers={"X-Admin-Key": ADMIN_KEY},
                             timeout=30).json()
        assert shown[0]["pull_status"] == "failed" and "interrupted" in shown[0]["pull_summary"]["error"]
        again = _notify(base, vendor_keys)  # the session goes on
        assert again.status_code == 201, again.text
    finally:
        vendor.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
