"""Chain mode: two reference-vendor instances (real `speeltuin serve` processes) exchange a notified pull through
`speeltuin chain proxy` (real mitmdump), with no simulator in between. The proxy's store holds only the chain
session; its exchanges are attributed by the listening port (reverse mode) or, through the forward listener, by the
system's own address (host mapping); traffic for no session is kept as unmatched."""
from __future__ import annotations

import http.server
import json
import os
import re
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

from scenarios.pairing import pair_sessions
from scenarios.stack import Node, accepts_tcp, free_port
from simulator.outbound.defects import DEFECT_RULES
from speeltuin.defaults import sqlite_url
from speeltuin.records import PROXY_FLUSH_PATH, Exchange
from speeltuin.store import Store

BSN = "999993653"
SENDER_URA, RECEIVER_URA = "90000501", "90000602"


@dataclass
class Chain:
    sender: Node  # node A: its public URL is the proxy's port in front of it
    receiver: Node  # node B
    sender_port: int
    receiver_port: int
    forward_port: int
    store: Store  # the chain proxy's own store
    cli: list[str]  # `speeltuin` with that store's --db

    def flush(self) -> None:
        answer = _direct().get(f"http://127.0.0.1:{self.sender_port}{PROXY_FLUSH_PATH}", timeout=40)
        assert answer.json()["flushed"] is True

    def exchanges(self, session_id: str | None, since: float = 0.0) -> list[Exchange]:
        return self.store.query_exchanges(session_id, since=since, limit=10_000)[0]


def _direct() -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    return client


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "speeltuin.cli", *command], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)


def _wait(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not accepts_tcp(port):
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"nothing on port {port} within 60 s: {log.read_text()[-2000:]}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    work = tmp_path_factory.mktemp("chain")
    a_port, b_port, pa, pb, forward = (free_port() for _ in range(5))
    nodes = {}
    processes = []
    try:
        for name, port, proxy_port, ura in (("sender", a_port, pa, SENDER_URA), ("receiver", b_port, pb,
                                                                                 RECEIVER_URA)):
            node = Node(name, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{proxy_port}", f"key-{name}-0123456789",
                        sqlite_url(work / f"{name}.sqlite"), ura, f"{name}-system")
            processes.append(_spawn(["serve", "--host", "127.0.0.1", "--port", str(port), "--db", node.database_url,
                                     "--public-url", node.public_url, "--ura", ura, "--client-id", node.client_id,
                                     "--name", name], work / f"{name}.log", {"SPEELTUIN_ADMIN_KEY": node.admin_key}))
            nodes[name] = node
        for process, (name, node) in zip(processes, nodes.items()):
            _wait(process, int(node.url.rsplit(":", 1)[1]), work / f"{name}.log")
        cli = ["--db", sqlite_url(work / "chain.sqlite")]
        jwks = {}
        for name, node in nodes.items():
            jwks[name] = work / f"{name}-jwks.json"
            jwks[name].write_text(json.dumps(node.jwks()))
        created = subprocess.run(
            [sys.executable, "-m", "speeltuin.cli", "chain", "create", *cli, "--id", "chain-ports", "--format",
             "json", "--sender-ura", SENDER_URA, "--sender-client-id", "sender-system", "--sender-url",
             nodes["sender"].url, "--sender-port", str(pa), "--sender-jwks", str(jwks["sender"]),
             "--receiver-ura", RECEIVER_URA, "--receiver-client-id", "receiver-system", "--receiver-url",
             nodes["receiver"].url, "--receiver-port", str(pb), "--receiver-jwks", str(jwks["receiver"])],
            capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["endpoints"] == {"sender_base": f"http://127.0.0.1:{pa}",
                                                            "receiver_base": f"http://127.0.0.1:{pb}"}
        mapped = subprocess.run(  # the same two systems, known by their own address on the forward listener
            [sys.executable, "-m", "speeltuin.cli", "chain", "create", *cli, "--id", "chain-hosts",
             "--sender-ura", SENDER_URA, "--sender-client-id", "sender-system", "--sender-url", nodes["sender"].url,
             "--receiver-ura", RECEIVER_URA, "--receiver-client-id", "receiver-system", "--receiver-url",
             nodes["receiver"].url], capture_output=True, text=True, timeout=60)
        assert mapped.returncode == 0, mapped.stderr
        processes.append(_spawn(["chain", "proxy", *cli, "--forward-port", str(forward), "--confdir",
                                 str(work / "mitmproxy")], work / "chain-proxy.log"))
        for port in (pa, pb, forward):
            _wait(processes[-1], port, work / "chain-proxy.log")
        store = Store(cli[1])
        yield Chain(nodes["sender"], nodes["receiver"], pa, pb, forward, store, cli)
        store.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _pair(chain: Chain, suffix: str, *, receiver_faults: tuple[str, ...] = ()) -> tuple[str, str]:
    """A session on each node, each pointing at the other's port of the chain proxy; (sender's, receiver's) ids."""
    sender_id, receiver_id = f"a-{suffix}", f"b-{suffix}"
    pair_sessions(chain.sender, chain.receiver, vendor_role="receiver", sim_id=sender_id, ven_id=receiver_id,
                  ven_faults=receiver_faults)
    return sender_id, receiver_id


def _notify(chain: Chain, sender_session: str, **options: object) -> dict:
    answer = chain.sender.api("POST", f"/sessions/{sender_session}/notify", json={"bsn": BSN, **options})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _pulled(chain: Chain, receiver_session: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        received = chain.receiver.api("GET", f"/sessions/{receiver_session}/notifications").json()
        if received and received[-1]["pull_status"] in ("done", "failed", "stopped"):
            return received[-1]
        time.sleep(0.2)
    raise AssertionError("the receiver did not finish its pull within 60 s")


def _errors(exchanges: list[Exchange]) -> list[str]:
    return [f"{ex.tag} {ex.url}: {f.rule} {f.message}" for ex in exchanges for f in ex.findings
            if f.severity == "error"]


def test_a_happy_notified_pull_between_two_vendor_systems_has_no_error_findings(chain: Chain) -> None:
    since = time.time()
    sender_session, receiver_session = _pair(chain, "happy")
    sent = _notify(chain, sender_session)
    assert sent["delivery"]["status"] == 201, sent
    pulled = _pulled(chain, receiver_session)
    assert pulled["pull_status"] == "done", pulled
    chain.flush()
    seen = chain.exchanges("chain-ports", since)
    tags = {(ex.tag, ex.direction) for ex in seen}
    # the sender asks the receiver's AS and notifies (to the vendor: the receiver); the receiver asks the sender's
    # AS and pulls (to the peer: the sender)
    assert {("token-request", "to-vendor"), ("notification", "to-vendor"), ("token-request", "to-peer"),
            ("search", "to-peer")} <= tags, tags
    assert sum(ex.tag == "search" for ex in seen) >= 20  # the BgZ queries, judged like the simulator's
    assert all(ex.source == "proxy" and ex.url.startswith(("http://127.0.0.1:")) for ex in seen)
    assert _errors(seen) == []
    token_requests = [ex for ex in seen if ex.tag == "token-request"]
    assert all(ex.status == 200 for ex in token_requests)
    # judged with each caller's own keys: every signature was checked (JWT-006 says when it could not be) and held
    assert not [f for ex in token_requests for f in ex.findings if f.rule == "JWT-006"]
    assert chain.exchanges(None, since) == []  # nothing of it unmatched
    assert chain.exchanges("chain-hosts", since) == []


@pytest.mark.parametrize("defect", ["identifier-object", "broken-percent-encoding"])
def test_a_faulty_notification_in_a_chain_yields_its_rule(chain: Chain, defect: str) -> None:
    since = time.time()
    sender_session, _ = _pair(chain, defect.replace("-", "")[:20], receiver_faults=("accepts-defective-task",))
    _notify(chain, sender_session, defect=defect)
    chain.flush()
    notifications = [ex for ex in chain.exchanges("chain-ports", since) if ex.tag == "notification"]
    assert len(notifications) == 1
    rules = {f.rule for f in notifications[0].findings if f.severity == "error"}
    assert DEFECT_RULES[defect] in rules, notifications[0].findings


def test_host_mapping_and_unmatched_traffic_on_the_forward_listener(chain: Chain) -> None:
    since = time.time()
    proxies = {"http": f"http://127.0.0.1:{chain.forward_port}"}
    client = _direct()
    answer = client.get(f"{chain.sender.url}/s/a-happy/fhir/metadata", proxies=proxies, timeout=30)
    assert answer.status_code == 200, answer.text
    answer = client.post(f"{chain.receiver.url}/s/b-happy/token", proxies=proxies, timeout=30,
                         data={"grant_type": "client_credentials"})
    assert answer.status_code in (400, 401), answer.text
    stranger = _plain_server()
    try:
        answer = client.get(f"http://127.0.0.1:{stranger.server_port}/whoever/Patient", proxies=proxies, timeout=30)
        assert answer.status_code == 200
    finally:
        stranger.shutdown()
    chain.flush()
    mapped = chain.exchanges("chain-hosts", since)
    assert sorted((ex.tag, ex.direction, ex.url) for ex in mapped) == [
        ("capability", "to-peer", f"{chain.sender.url}/s/a-happy/fhir/metadata"),
        ("token-request", "to-vendor", f"{chain.receiver.url}/s/b-happy/token")]
    token = next(ex for ex in mapped if ex.tag == "token-request")
    assert any(f.severity == "error" for f in token.findings)  # judged: no client assertion at all
    unmatched = chain.exchanges(None, since)
    assert [(ex.url, ex.status) for ex in unmatched] == [
        (f"http://127.0.0.1:{stranger.server_port}/whoever/Patient", 200)]


def test_the_simulator_takes_no_part_in_a_chain_session(chain: Chain, tmp_path: Path) -> None:
    shown = subprocess.run([sys.executable, "-m", "speeltuin.cli", "session", "show", "chain-ports", *chain.cli],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "chain session chain-ports" in shown.stdout and f":{chain.sender_port}" in shown.stdout
    from simulator.app import create_app
    from simulator.runtime import SimulatorConfig

    app = create_app(SimulatorConfig(database_url=chain.cli[1], admin_key="k" * 24))
    client = app.test_client()
    refused = client.get("/s/chain-ports/fhir/Patient")
    assert refused.status_code == 404 and refused.json["resourceType"] == "OperationOutcome"
    assert "chain session" in refused.json["issue"][0]["diagnostics"]
    token = client.post("/s/chain-ports/token", data={"grant_type": "client_credentials"})
    assert token.status_code == 401 and token.json["error"] == "invalid_client"
    notify = client.post("/api/sessions/chain-ports/notify", json={"bsn": BSN}, headers={"X-Admin-Key": "k" * 24})
    assert notify.status_code == 400 and "chain session" in notify.json["error"]
    # a case manager sees the chain session's page and the unmatched traffic in the web UI
    chain.store.add_user("case-manager", "a long enough password")
    form = client.get("/ui/sign-in").text
    csrf = re.search(r'name="manager-csrf_token"[^>]*value="([^"]+)"', form)
    assert csrf, form
    signed_in = client.post("/ui/sign-in/case-manager", data={
        "manager-username": "case-manager", "manager-password": "a long enough password",
        "manager-csrf_token": csrf.group(1)})
    assert signed_in.status_code == 302, signed_in.text
    page = client.get("/ui/sessions/chain-ports")
    assert page.status_code == 200 and f":{chain.sender_port}" in page.text and "token-request" in page.text
    assert client.get("/ui/unmatched").status_code == 200


def test_chain_sessions_refuse_ports_and_addresses_taken(chain: Chain) -> None:
    base = [sys.executable, "-m", "speeltuin.cli", "chain", "create", *chain.cli, "--sender-ura", SENDER_URA,
            "--sender-client-id", "s", "--receiver-ura", RECEIVER_URA, "--receiver-client-id", "r"]
    taken_port = subprocess.run([*base, "--sender-url", "http://127.0.0.1:1234", "--sender-port",
                                 str(chain.sender_port), "--receiver-url", "http://127.0.0.1:1235"],
                                capture_output=True, text=True, timeout=60)
    assert taken_port.returncode == 2 and "taken by chain session 'chain-ports'" in taken_port.stderr
    taken_host = subprocess.run([*base, "--sender-url", chain.sender.url, "--receiver-url", "http://127.0.0.1:1235"],
                                capture_output=True, text=True, timeout=60)
    assert taken_host.returncode == 2 and "chain-hosts" in taken_host.stderr
    with_path = subprocess.run([*base, "--sender-url", "http://127.0.0.1:1234/fhir", "--receiver-url",
                                "http://127.0.0.1:1235"], capture_output=True, text=True, timeout=60)
    assert with_path.returncode == 2 and "without a path" in with_path.stderr
    assert "Traceback" not in taken_port.stderr + taken_host.stderr + with_path.stderr


def _plain_server() -> http.server.ThreadingHTTPServer:
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = b'{"resourceType": "Bundle", "type": "searchset"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
