"""`speeltuin service` and `speeltuin proxy` as real processes: stopping them (SIGTERM) stops every process they
started and leaves nothing listening; a part that dies takes the service down with a message naming it."""
from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scenarios.stack import accepts_tcp, free_port
from speeltuin.defaults import sqlite_url
from speeltuin.records import PROXY_FLUSH_PATH, Role, Session, SessionConfig
from speeltuin.store import Store
from tests.conftest import complete_session
from tests.processes import processes, processes_naming


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    # an instance folder of its own: mitmproxy's settings and CA are not shared with any other service running
    env = {**os.environ, "SPEELTUIN_ADMIN_KEY": "test-admin-key-of-the-service",
           "SPEELTUIN_INSTANCE": str(tmp_path / "instance")}
    return subprocess.Popen([sys.executable, "-m", "speeltuin.cli", *args], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_port(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while not accepts_tcp(port):
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "did not listen within 60 s"
        time.sleep(0.1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    port, db = free_port(), sqlite_url(tmp_path / "service.sqlite")
    process = _start(["service", "--host", "127.0.0.1", "--port", str(port), "--db", db], tmp_path)
    _wait_for_port(process, port)
    yield process, port, str(tmp_path / "service.sqlite")
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    for pid in processes_naming(str(tmp_path / "service.sqlite")):
        os.kill(pid, signal.SIGKILL)


def test_the_service_stops_every_process_it_started_on_sigterm(service: tuple[subprocess.Popen[str], int, str],
                                                               tmp_path: Path) -> None:
    process, port, db_file = service
    created = requests.post(f"http://127.0.0.1:{port}/api/sessions", timeout=10,
                            headers={"X-Admin-Key": "test-admin-key-of-the-service"},
                            json=complete_session("sender", id="svc-1", vendor_ura="12345678"))
    assert created.status_code == 201, created.text
    assert created.json()["endpoints"]["token_url"] == f"http://127.0.0.1:{port}/s/svc-1/token"
    # `session show` names the address the service announced, without being told
    shown = subprocess.run([sys.executable, "-m", "speeltuin.cli", "session", "show", "svc-1", "--db",
                            sqlite_url(Path(db_file))], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert f"notification_url: http://127.0.0.1:{port}/s/svc-1/notify/Task" in shown.stdout, shown

    started = processes_naming(db_file)
    assert len(started) >= 3, started  # the simulator, mitmdump and the proxy's writer (and its helpers)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not accepts_tcp(port)
    assert processes_naming(db_file) == []
    output = process.stdout.read() if process.stdout else ""
    assert f"vendors reach the simulator at http://127.0.0.1:{port}" in output and "Traceback" not in output


def test_a_part_that_dies_stops_the_service_with_a_message(service: tuple[subprocess.Popen[str], int, str]) -> None:
    process, port, db_file = service
    table = processes()
    # the simulator the service started (its gunicorn workers are that process's children)
    [simulator] = [pid for pid in processes_naming(db_file, table) if " serve " in table[pid][1]
                   and table[pid][0] == process.pid]
    os.kill(simulator, signal.SIGKILL)
    assert process.wait(60) == 1
    assert "the simulator ended" in (process.stdout.read() if process.stdout else "")
    assert not accepts_tcp(port) and processes_naming(db_file) == []


def test_the_proxy_stops_with_its_writer_on_sigterm(tmp_path: Path) -> None:
    front, back, db_file = free_port(), free_port(), tmp_path / "proxy.sqlite"
    process = _start(["proxy", "--simulator", "http://127.0.0.1:9", "--vendor", "http://127.0.0.1:9",
                      "--front-port", str(front), "--back-port", str(back), "--db", sqlite_url(db_file)], tmp_path)
    try:
        _wait_for_port(process, front)
        assert len(processes_naming(str(db_file))) >= 2  # mitmdump and its writer
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not accepts_tcp(front) and not accepts_tcp(back)
        assert processes_naming(str(db_file)) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_store_the_proxy_cannot_open_is_a_clear_error(tmp_path: Path) -> None:
    process = _start(["proxy", "--simulator", "http://127.0.0.1:9", "--vendor", "http://127.0.0.1:9",
                      "--front-port", str(free_port()), "--back-port", str(free_port()),
                      "--db", "postgresql+psycopg://someone:s3cret@127.0.0.1:1/none"], tmp_path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "speeltuin_db: cannot open the store at postgresql+psycopg://someone:***@127.0.0.1:1/none" in output
    assert "s3cret" not in output and "Traceback" not in output


FAILING_VALIDATOR = '''
# Loaded at the start of every Python process of this test (mitmdump and its writer): a searchset rule's helper
# fails, as a bug in a validator would.
import validators.rules.bundle as _bundle


def _crash(*_args, **_kwargs):
    raise RuntimeError("a bug in a validator")


_bundle._build_index = _crash
'''


@dataclass
class Upstream:
    """A stand-in for the server behind the proxy: answers every request with a searchset, counts the requests."""

    port: int
    seen: list[str]


BUNDLE = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(BUNDLE)))
            self.end_headers()
            self.wfile.write(BUNDLE)

        do_GET = do_POST = do_PUT = _answer  # noqa: N815 - the standard library's names

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield Upstream(server.server_port, seen)
    server.shutdown()


def _proxy_for(upstream: Upstream, tmp_path: Path, *options: str,
               env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int, Store]:
    """`speeltuin proxy` in front of the upstream, with session proxied-1 in its store."""
    db_file = tmp_path / "proxy.sqlite"
    store = Store(sqlite_url(db_file))
    store.create_session(Session("proxied-1", "proxied", Role.SENDER, SessionConfig(
        vendor_ura="12345678", vendor_client_id="v", own_ura="90000101", own_client_id="sim"), time.time()))
    front = free_port()
    process = subprocess.Popen([sys.executable, "-m", "speeltuin.cli", "proxy", "--simulator",
                                f"http://127.0.0.1:{upstream.port}", "--vendor", "http://127.0.0.1:9",
                                "--front-port", str(front), "--back-port", str(free_port()),
                                "--db", sqlite_url(db_file), *options],
                               env=env, cwd=tmp_path, start_new_session=True)
    _wait_for_port(process, front)  # type: ignore[arg-type]
    return process, front, store


def _recorded(front: int, store: Store) -> list:
    assert requests.get(f"http://127.0.0.1:{front}{PROXY_FLUSH_PATH}", timeout=40).json()["flushed"] is True
    return store.list_exchanges(["proxied-1"])


def test_block_on_error_answers_invalid_requests_itself_and_records_them(upstream: Upstream, tmp_path: Path) -> None:
    process, front, store = _proxy_for(upstream, tmp_path, "--block-on-error")
    base = f"http://127.0.0.1:{front}/s/proxied-1"
    try:
        task = {"resourceType": "Task", "identifier": {"system": "urn:ietf:rfc:3986", "value": "x"},
                "status": "requested", "intent": "proposal"}  # identifier as an object: a known defect
        refused = requests.post(f"{base}/notify/Task", json=task, timeout=10,
                                headers={"Content-Type": "application/fhir+json", "Authorization": "Bearer x" * 8})
        outcome = refused.json()
        assert refused.status_code == 400 and outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["diagnostics"].startswith("the validating proxy did not forward this message")
        assert any(issue["diagnostics"].startswith("NOTIF-") for issue in outcome["issue"][1:])
        token = requests.post(f"{base}/token", data={"client_assertion": "x"}, timeout=10)  # no grant_type
        assert token.status_code == 400 and token.json()["error"] == "invalid_request"
        assert token.headers["Cache-Control"] == "no-store"
        search = requests.get(f"{base}/fhir/Condition", timeout=10)  # nothing wrong in itself: forwarded
        assert search.status_code == 200 and search.content == BUNDLE
        assert upstream.seen == ["GET /s/proxied-1/fhir/Condition"]  # the invalid ones never left the proxy
        recorded = {ex.tag: ex for ex in _recorded(front, store)}
        assert recorded["notification"].status == 400
        assert any(f.rule.startswith("NOTIF-") for f in recorded["notification"].findings)
        assert recorded["token-request"].status == 400
    finally:
        process.terminate()
        process.wait(30)
        store.close()


def test_without_block_on_error_invalid_requests_are_forwarded(upstream: Upstream, tmp_path: Path) -> None:
    process, front, store = _proxy_for(upstream, tmp_path)
    try:
        answer = requests.post(f"http://127.0.0.1:{front}/s/proxied-1/token", data={"client_assertion": "x"},
                               timeout=10)
        assert answer.status_code == 200 and upstream.seen == ["POST /s/proxied-1/token"]
        [exchange] = _recorded(front, store)
        assert any(f.severity == "error" for f in exchange.findings)
    finally:
        process.terminate()
        process.wait(30)
        store.close()


def test_a_validator_that_raises_in_the_real_proxy_leaves_the_exchange_recorded(upstream: Upstream,
                                                                                 tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAILING_VALIDATOR)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(Path.cwd())])}
    process, front, store = _proxy_for(upstream, tmp_path, env=env)
    try:
        answer = requests.get(f"http://127.0.0.1:{front}/s/proxied-1/fhir/Condition", timeout=10)
        assert answer.status_code == 200 and answer.content == BUNDLE  # the vendor's traffic goes on
        [exchange] = _recorded(front, store)
        [internal] = [f for f in exchange.findings if f.rule == "INTERNAL-001"]
        assert internal.message == "validators.rules.bundle raised RuntimeError: a bug in a validator"
        assert exchange.response_body == BUNDLE.decode() and exchange.tag == "search"
    finally:
        process.terminate()
        process.wait(30)
        store.close()


@dataclass
class TlsService:
    public: str  # https://127.0.0.1:<port>
    ca: Path  # the test CA
    pki: Path
    db_file: Path
    vendor: object  # tests.conftest.LiveNode: the vendor system, HTTPS with its certificate of the test CA
    vendor_cert: Path  # its certificate (URA 90000202)

    def recorded(self, session_id: str) -> list:
        assert requests.get(f"{self.public}{PROXY_FLUSH_PATH}", verify=str(self.ca), timeout=40).json()["flushed"]
        store = Store(sqlite_url(self.db_file))
        try:
            return store.list_exchanges([session_id])
        finally:
            store.close()


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsService]:
    """`speeltuin service` over HTTPS with the test CA, and an HTTPS reference vendor, sessions on both with mTLS."""
    from speeltuin.records import TlsFiles
    from testdata.pki import init_ca, issue
    from tests.conftest import start_live_node

    tmp_path = tmp_path_factory.mktemp("tls-service")
    ca = init_ca(tmp_path / "pki")
    sim_cert, ven_cert = (issue(tmp_path / "pki", name=name, ura=ura) for name, ura in
                          (("sim", "90000101"), ("ven", "90000202")))
    vendor, vendor_server = start_live_node(sqlite_url(tmp_path / "vendor.sqlite"), ura="90000202", client_id="ven",
                                            name="ven", tls=TlsFiles(ven_cert.cert_path, ven_cert.key_path, ca))
    port, db_file = free_port(), tmp_path / "service.sqlite"
    process = _start(["service", "--host", "127.0.0.1", "--port", str(port), "--db", sqlite_url(db_file),
                      "--tls-cert", str(sim_cert.cert_path), "--tls-key", str(sim_cert.key_path),
                      "--tls-ca", str(ca)], tmp_path)
    try:
        _wait_for_port(process, port)
        public = f"https://127.0.0.1:{port}"
        admin = {"X-Admin-Key": "test-admin-key-of-the-service"}
        simulator_jwks = requests.get(f"{public}/jwks", verify=str(ca), timeout=10).json()
        # the vendor's own session, for the simulator as its sender (it checks our client certificate's URA)
        mirror = vendor.api("POST", "/sessions", json={
            "id": "ven-tls", "vendor_role": "sender", "vendor_ura": "90000101", "vendor_jwks": simulator_jwks,
            "vendor_client_id": "speeltuin-simulator", "mtls": True,
            "vendor_token_url": f"{public}/s/sim-tls/token", "vendor_fhir_base": f"{public}/s/sim-tls/fhir"})
        assert mirror.status_code == 201, mirror.text
        created = requests.post(f"{public}/api/sessions", headers=admin, verify=str(ca), timeout=10, json={
            "id": "sim-tls", "vendor_role": "receiver", "vendor_ura": "90000202", "vendor_jwks": vendor.jwks(),
            "vendor_client_id": "ven", "mtls": True, "vendor_token_url": f"{vendor.url}/s/ven-tls/token",
            "vendor_notification_base": f"{vendor.url}/s/ven-tls/notify"})
        assert created.status_code == 201, created.text
        yield TlsService(public, ca, tmp_path / "pki", db_file, vendor, ven_cert.cert_path)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        vendor_server.shutdown()  # type: ignore[attr-defined]
        vendor_server.server_close()  # type: ignore[attr-defined]
        vendor.runtime.store.close()


def test_a_notified_pull_over_https_and_mutual_tls_in_both_directions_through_the_service(
        tls_service: TlsService) -> None:
    """The simulator's calls to an https:// vendor go through the proxy's forward listener: the proxy checks the
    vendor's certificate against the test CA, presents the service's certificate (mutual TLS), and records them.
    The vendor's pull comes in on the public listener: the proxy asks for its client certificate, checks it against
    the test CA and passes it on; the simulator checks its URA against the session."""
    public, ca, vendor = tls_service.public, tls_service.ca, tls_service.vendor
    notified = requests.post(f"{public}/api/sessions/sim-tls/notify", verify=str(ca), timeout=60,
                             headers={"X-Admin-Key": "test-admin-key-of-the-service"}, json={"bsn": "999993653"})
    assert notified.status_code == 200 and notified.json()["delivery"].get("status") == 201, notified.text
    deadline = time.monotonic() + 60
    pulls: list = []
    while not pulls or pulls[-1]["pull_status"] in ("pending", "pulling", None):
        pulls = vendor.api("GET", "/sessions/ven-tls/notifications").json()  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, pulls
        time.sleep(0.2)
    assert pulls[-1]["pull_status"] == "done", pulls[-1]
    recorded = tls_service.recorded("sim-tls")
    by_kind = {(ex.tag, ex.direction): ex for ex in recorded}
    sent = by_kind[("notification", "to-vendor")]
    assert sent.status == 201 and sent.url.startswith("https://")
    assert by_kind[("token-request", "to-vendor")].status == 200
    assert by_kind[("token-request", "to-simulator")].status == 200  # the vendor's pull token, over mTLS
    searches = [ex for ex in recorded if ex.tag == "search" and ex.direction == "to-simulator"]
    assert len(searches) >= 20 and all(ex.status == 200 and ex.url.startswith(public) for ex in searches)


def test_the_service_refuses_client_certificates_the_session_does_not_allow(tls_service: TlsService,
                                                                            tmp_path: Path) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from testdata.pki import init_ca, issue

    other_ca = init_ca(tmp_path / "other-pki", name="another CA")
    stranger = issue(tmp_path / "other-pki", name="ven", ura="90000202")  # the right URA, from another CA
    wrong_ura = issue(tls_service.pki, name="other", ura="90000303")  # the test CA, another organisation
    token_url, search = f"{tls_service.public}/s/sim-tls/token", f"{tls_service.public}/s/sim-tls/fhir/Patient"
    cases = {"another CA": ((str(stranger.cert_path), str(stranger.key_path)), "does not chain to the test CA"),
             "another URA": ((str(wrong_ura.cert_path), str(wrong_ura.key_path)), "names URA 90000303"),
             "no certificate": (None, "requires mutual TLS")}
    assert other_ca.exists()
    # a caller cannot claim a certificate by writing the proxy's header itself: here the vendor's own, which the
    # session would accept
    der = x509.load_pem_x509_certificate(tls_service.vendor_cert.read_bytes()).public_bytes(Encoding.DER)
    forged = {"X-Speeltuin-Client-Cert": base64.b64encode(der).decode()}
    for case, (cert, said) in cases.items():
        token = requests.post(token_url, cert=cert, verify=str(tls_service.ca), timeout=30, headers=forged,
                              data={"grant_type": "client_credentials"})
        assert token.status_code == 401 and token.json()["error"] == "invalid_client", (case, token.text)
        assert said in token.json()["error_description"], (case, token.text)
        pulled = requests.get(search, cert=cert, verify=str(tls_service.ca), timeout=30, headers=forged)
        assert pulled.status_code == 403 and pulled.json()["resourceType"] == "OperationOutcome", (case, pulled.text)
    recorded = [ex for ex in tls_service.recorded("sim-tls") if ex.direction == "to-simulator" and ex.status == 401]
    assert len(recorded) >= len(cases)  # refused, and on the record


def test_the_service_sends_nothing_to_a_vendor_whose_certificate_names_another_ura(tls_service: TlsService) -> None:
    """Issue 14: the proxy speaks TLS to the vendor for the simulator; the vendor's server certificate (of the test
    CA, URA 90000202) must carry the session's vendor URA, here 90000303, before anything is sent: no token request,
    no Task with its BSN and authorization base, not even the proxy's client certificate."""
    public, ca, vendor = tls_service.public, tls_service.ca, tls_service.vendor
    admin = {"X-Admin-Key": "test-admin-key-of-the-service"}
    received = vendor.api("GET", "/sessions/ven-tls/notifications").json()  # type: ignore[attr-defined]
    created = requests.post(f"{public}/api/sessions", headers=admin, verify=str(ca), timeout=10, json={
        "id": "sim-tls-other-ura", "vendor_role": "receiver", "vendor_ura": "90000303",
        "vendor_jwks": vendor.jwks(), "vendor_client_id": "ven", "mtls": True,  # type: ignore[attr-defined]
        "vendor_token_url": f"{vendor.url}/s/ven-tls/token",  # type: ignore[attr-defined]
        "vendor_notification_base": f"{vendor.url}/s/ven-tls/notify"})  # type: ignore[attr-defined]
    assert created.status_code == 201, created.text
    notified = requests.post(f"{public}/api/sessions/sim-tls-other-ura/notify", headers=admin, verify=str(ca),
                             timeout=60, json={"bsn": "999993653"})
    assert notified.status_code == 200, notified.text
    error = notified.json()["delivery"].get("error", "")
    assert "the validating proxy could not reach the system behind" in error, error  # its 502 is no answer
    assert "names URA 90000202" in error and "expects the vendor URA 90000303" in error, error
    assert vendor.api("GET", "/sessions/ven-tls/notifications").json() == received  # type: ignore[attr-defined]
    [refused] = [ex for ex in tls_service.recorded("sim-tls-other-ura") if ex.direction == "to-vendor"]
    assert refused.tag == "token-request" and refused.status is None
    assert (refused.error or "").startswith("not forwarded to the vendor: the server certificate of 127.0.0.1 names "
                                            "URA 90000202, but session sim-tls-other-ura expects the vendor URA "
                                            "90000303"), refused.error
