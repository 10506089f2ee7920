"""Before the simulator sends anything to a vendor over TLS, the vendor's server certificate must chain to the CA it
trusts for vendors and carry the session's vendor URA (issue 14). Real TLS on loopback, certificates from the test
PKI; the vendor is a plain HTTPS server that records every request it gets."""
from __future__ import annotations

import http.server
import json
import ssl
import threading
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509

from speeltuin.defaults import sqlite_url
from speeltuin.records import TlsFiles
from testdata.pki import CA_CERT, init_ca, issue, jwks_for
from tests.conftest import LiveNode, start_live_node

VENDOR_URA = "90000202"


class RecordingVendor:
    """An HTTPS vendor: grants any token, accepts any Task, and keeps every request it was sent."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.jwks = jwks_for(*x509.load_pem_x509_certificates(cert.read_bytes()))  # its keys, for its session
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen.append(("POST", self.path, body))
                if self.path.endswith("/token"):
                    self._answer(200, {"access_token": "t" * 40, "token_type": "Bearer", "expires_in": 300})
                else:
                    self._answer(201, {"resourceType": "Task", "id": "1"}, {"Location": f"{self.path}/1"})

            def _answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                    **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root / "ours")
    init_ca(root / "theirs")
    return root


@pytest.fixture
def simulator(pki: Path, tmp_path: Path) -> Iterator[LiveNode]:
    sim = issue(pki / "ours", name="sim", ura="90000101")
    node, server = start_live_node(sqlite_url(tmp_path / "sim.sqlite"), ura="90000101", client_id="sim", name="sim",
                                   tls=TlsFiles(sim.cert_path, sim.key_path, pki / "ours" / CA_CERT))
    yield node
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    node.runtime.store.close()


def _notify(simulator: LiveNode, vendor: RecordingVendor, session_id: str) -> dict:
    created = simulator.api("POST", "/sessions", json={
        "id": session_id, "vendor_role": "receiver", "vendor_ura": VENDOR_URA, "mtls": False,
        "vendor_jwks": vendor.jwks, "vendor_token_url": f"{vendor.url}/token",
        "vendor_notification_base": f"{vendor.url}/notify"})
    assert created.status_code == 201, created.text
    sent = simulator.api("POST", f"/sessions/{session_id}/notify", json={"bsn": "999993653"})
    assert sent.status_code == 200, sent.text
    return sent.json()


def test_an_https_vendor_without_mutual_tls_receives_a_notification(pki: Path, simulator: LiveNode) -> None:
    right = issue(pki / "ours", name="vendor", ura=VENDOR_URA)
    vendor = RecordingVendor(right.cert_path, right.key_path)
    try:
        sent = _notify(simulator, vendor, "https-plain")
    finally:
        vendor.close()
    assert sent["delivery"].get("status") == 201, sent
    assert [(method, path.rsplit("/", 1)[-1]) for method, path, _ in vendor.requests] == [("POST", "token"),
                                                                                         ("POST", "Task")]


@pytest.mark.parametrize("case", ["another URA", "another CA"])
def test_a_server_that_is_not_the_sessions_vendor_gets_nothing(pki: Path, simulator: LiveNode, case: str) -> None:
    wrong = issue(pki / "ours", name="impostor", ura="87654321") if case == "another URA" else \
        issue(pki / "theirs", name="impostor", ura=VENDOR_URA)
    vendor = RecordingVendor(wrong.cert_path, wrong.key_path)
    try:
        sent = _notify(simulator, vendor, f"https-{case.split()[1].lower()}")
    finally:
        vendor.close()
    assert vendor.requests == []  # not a token request, not a BSN, not an authorization base
    error = sent["delivery"].get("error", "")
    if case == "another URA":
        assert "names URA 87654321, not the session's vendor 90000202" in error, sent
    else:
        assert "certificate verify failed" in error and "--tls-ca" in error, sent
    # the session shows why: the notification as listed carries the delivery error
    listed = simulator.api("GET", f"/sessions/https-{case.split()[1].lower()}/notifications").json()
    assert listed and listed[-1]["delivery"]["error"] == error
