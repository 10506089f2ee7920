"""`speeltuin serve --workers N`: the simulator under gunicorn (the production server of the shared service): real
worker processes answer, the per-request access log stays off, requests gunicorn cannot parse are answered in the
endpoint's format, SIGTERM stops them all, and TLS is refused with a clear message (gunicorn serves plain HTTP behind
the proxy)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from scenarios.stack import accepts_tcp, free_port
from speeltuin.defaults import sqlite_url
from tests.conftest import complete_session
from tests.simulator.test_unparsed_requests import raw_exchange
from tests.processes import processes_naming

ADMIN = "gunicorn-admin-key-0123456789"


def test_serve_with_workers_answers_from_several_processes_without_an_access_log(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "gunicorn.sqlite"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "speeltuin.cli", "serve", "--host", "127.0.0.1", "--port",
                                    str(port), "--db", sqlite_url(db), "--workers", "2", "--threads", "4"],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "SPEELTUIN_ADMIN_KEY": ADMIN})
    try:
        deadline = time.monotonic() + 60
        while not accepts_tcp(port):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        client = requests.Session()
        client.trust_env = False
        created = client.post(f"http://127.0.0.1:{port}/api/sessions", headers={"X-Admin-Key": ADMIN}, timeout=30,
                              json=complete_session("sender", id="g-1", vendor_ura="12345678"))
        assert created.status_code == 201, created.text
        for _ in range(40):  # every worker knows the session: it lives in the store, not in a process
            shown = client.get(f"http://127.0.0.1:{port}/api/sessions/g-1", headers={"X-Admin-Key": ADMIN},
                               timeout=30)
            assert shown.status_code == 200, shown.text
        # what gunicorn refuses before the app runs is answered in the endpoint's format, not as an HTML page
        # (gunicorn gives no path with a request line over 8 kB or a broken header: FHIR's format, the most common)
        status, headers, body = raw_exchange(port, f"GET /s/any/token?{'a' * 9000} HTTP/1.1\r\n\r\n".encode())
        assert (status, json.loads(body)["resourceType"]) == (414, "OperationOutcome"), body
        status, headers, body = raw_exchange(port, b"GET /s/any/fhir/Patient HTTP/1.1\r\nX-Big: "
                                             + b"b" * 70_000 + b"\r\n\r\n")
        assert status == 431 and json.loads(body)["resourceType"] == "OperationOutcome", body
        assert headers["content-type"].startswith("application/fhir+json")
        status, headers, body = raw_exchange(port, b"GET /s/any/fhir/Patient HTTP/1.1\r\nBad Header\r\n\r\n")
        assert status == 400 and json.loads(body)["resourceType"] == "OperationOutcome", body
        workers = [pid for pid in processes_naming(str(db)) if pid != process.pid]
        assert len(workers) >= 2, workers  # the gunicorn master's children
        assert "GET /api/sessions/g-1" not in log.read_text()  # no line per request
        assert "gunicorn worker(s)" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert not accepts_tcp(port)
    assert processes_naming(str(db)) == []


def test_workers_with_tls_is_a_clear_error(tmp_path: Path) -> None:
    from testdata.pki import init_ca, issue

    ca = init_ca(tmp_path / "pki")
    cert = issue(tmp_path / "pki", name="sim", ura="90000101")
    refused = subprocess.run([sys.executable, "-m", "speeltuin.cli", "serve", "--port", str(free_port()), "--db",
                              sqlite_url(tmp_path / "s.sqlite"), "--workers", "2", "--tls-cert", str(cert.cert_path),
                              "--tls-key", str(cert.key_path), "--tls-ca", str(ca)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--workers serves plain HTTP" in refused.stderr
    assert "Traceback" not in refused.stderr
