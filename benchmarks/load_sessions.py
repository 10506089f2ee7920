"""Many sessions at once (issue 13): 50 receiving vendors notified and pulling concurrently for 2 minutes, then a
check from the store that no session's patients, tokens or exchanges turned up in another session.

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/load_sessions.py [--sessions N] [--seconds S] [--workers N] [--threads T]
                                                 [--postgresql] [--no-proxy]
Starts `speeltuin serve --workers N` (gunicorn) on 127.0.0.1 and, in front of it, `speeltuin proxy` (the real
mitmdump with the validating addon, as the service runs it; --no-proxy: the vendors call the simulator directly and
nothing is recorded). Imports one test patient per session (admin API, generated full BgZ content and a referral
letter) and opens one receiver session per vendor, each vendor with its own key, client id and URA.

The vendors are written here, from SPEC.md and the README, and share one HTTP server on loopback (reached through the
proxy's back port): per session an AS-R (verifies the simulator's two assertions: signature by kid from its JWKS,
aud, lifetime, jti) and a notification endpoint (POST Task, conditional PUT for a cancellation). Each session's
thread, until the time is up: the simulator notifies (admin API), the vendor gets a pull token with the Task's
authorization base, pulls every query the Task offers and the referral letter (PDF), tries its token on the next
session's FHIR base (must be refused), and every fourth round has the notification cancelled and checks its token
is refused at once.

Prints notifications, pulls and requests completed, requests/s, p50/p95 per kind of call, the error count (must be 0)
and the leak check: every answer a vendor got names only its own patient; every notification in the store belongs
to its session's patient and vendor; every token a vendor got is stored under its session and bound to a
notification of it; every exchange recorded under a session is that session's (its path, its patient, its vendor's
URA, no other session's) and each call was recorded once. Exit status 1 when there were errors or leaks.
Default store: a temporary SQLite file; --postgresql a throw-away database on $SPEELTUIN_BENCH_POSTGRES (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped after.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Iterable

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from proxy_overhead import Processes, _client, free_port, wait_until
from simulator_throughput import postgres_database, process_tree_cpu
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from speeltuin.store import Store

ROOT = Path(__file__).resolve().parents[1]
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TASK_PARAMETER = "http://fhir.nl/fhir/NamingSystem/TaskParameter"
FHIR_JSON = "application/fhir+json"
CANCEL_EVERY = 4  # rounds: one notification in four is cancelled after its pull
BSN_LIKE = re.compile(rb"(?<!\d)9\d{8}(?!\d)")
FLUSHED = "/_speeltuin/flushed"


def bsn_valid(bsn: str) -> bool:
    """SPEC §6.3: the 11-check."""
    return sum(int(d) * w for d, w in zip(bsn, (9, 8, 7, 6, 5, 4, 3, 2, -1))) % 11 == 0


def test_bsns(count: int) -> list[str]:
    """`count` BSNs of the test range (9999...) that pass the 11-check and are none of the built-in patients'."""
    found, n = [], 999_970_000
    while len(found) < count:
        n += 1
        if bsn_valid(str(n)):
            found.append(str(n))
    return found


# --- the vendors: one server, one AS-R and notification endpoint per session ----------------------------------------
@dataclass
class Vendor:
    """One session's receiving node."""

    session: str
    bsn: str  # its test patient
    ura: str
    client_id: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str = field(default_factory=lambda: "v-" + secrets.token_hex(6))
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # Task identifier value -> the Task received
    bearer: set[str] = field(default_factory=set)  # tokens its AS-R issued (to the simulator)
    calls: Counter[str] = field(default_factory=Counter)  # what the simulator called: token, task, cancel
    lock: threading.Lock = field(default_factory=threading.Lock)

    def jwks(self) -> dict[str, Any]:
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"typ": "JWT", "kid": self.kid})

    def token_form(self, token_url: str, authorization_base: str) -> dict[str, str]:
        """SPEC §5.2: client assertion and authorization assertion, 60 s, fresh jtis, kid in the header."""
        now = int(time.time())
        common = {"aud": token_url, "iat": now, "exp": now + 60}
        return {"grant_type": GRANT_JWT_BEARER, "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.sign({**common, "iss": self.client_id, "sub": self.client_id,
                                               "jti": str(uuid.uuid4())}),
                "assertion": self.sign({**common, "iss": self.client_id, "sub": self.ura, "jti": str(uuid.uuid4()),
                                        "authorization_base": authorization_base})}


class VendorServer:
    """The vendors' shared HTTP server: /v/<session>/token and /v/<session>/fhir/Task."""

    def __init__(self, vendors: dict[str, Vendor], problems: "Problems") -> None:
        self.vendors = vendors
        self.problems = problems
        self.public_url = ""  # where the simulator reaches it (the proxy's back port): the aud it must sign
        self.simulator_jwks_url = ""
        self.jwks_session = ""  # the session whose jwks_url it reads: its fetches are that session's exchanges
        self.jwks_fetches = 0
        self.simulator_ura = ""
        self._keys: dict[str, Any] = {}
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        parts = request.path.strip("/").split("/")
        vendor = self.vendors.get(parts[1]) if len(parts) >= 3 and parts[0] == "v" else None
        try:
            if vendor is None:
                response = _outcome(404, f"no vendor at {request.path}")
            elif parts[2:] == ["token"] and request.method == "POST":
                response = self._token(vendor, request)
            elif parts[2:] == ["fhir", "Task"] and request.method in ("POST", "PUT"):
                response = self._task(vendor, request)
            else:
                response = _outcome(404, f"no route {request.method} {request.path}")
        except Exception as exc:  # noqa: BLE001 - a vendor bug is a problem to report, never a hung simulator
            self.problems.error(f"vendor server: {exc!r}")
            response = _outcome(500, repr(exc))
        return response(environ, start_response)

    def load_keys(self) -> None:
        """Read the simulator's JWKS (done once before the load, as a vendor registers it: fetched while 50
        notifications wait on this AS-R, it would need a simulator thread that those notifications all hold)."""
        keys = _client().get(self.simulator_jwks_url, timeout=30).json()["keys"]
        self.jwks_fetches += 1
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in keys}

    def _key(self, kid: str) -> Any:
        if kid not in self._keys:  # refetch on an unknown kid (README)
            with self._lock:
                self.load_keys()
        return self._keys[kid]

    def _verify(self, compact: str, audience: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(compact)
        claims = jwt.decode(compact, self._key(str(header.get("kid"))), algorithms=[header["alg"]], audience=audience,
                            leeway=60, options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        if claims["exp"] - claims["iat"] > 300:
            raise ValueError("assertion lifetime over 5 minutes")
        with self._lock:
            if (claims["iss"], claims["jti"]) in self._seen:
                raise ValueError(f"jti {claims['jti']} replayed")
            self._seen.add((claims["iss"], claims["jti"]))
        return claims

    def _token(self, vendor: Vendor, request: Request) -> Response:
        vendor.calls["token"] += 1
        token_url = f"{self.public_url}/v/{vendor.session}/token"
        try:
            client = self._verify(request.form["client_assertion"], token_url)
            grant = self._verify(request.form["assertion"], token_url)
        except (KeyError, ValueError, jwt.PyJWTError) as exc:
            self.problems.error(f"{vendor.session}: AS-R refused the simulator: {exc}")
            return Response(json.dumps({"error": "invalid_client", "error_description": str(exc)}), 401,
                            content_type="application/json")
        if client["iss"] != client["sub"] or grant["sub"] != self.simulator_ura:
            self.problems.error(f"{vendor.session}: assertion iss/sub {client['iss']}/{grant['sub']}")
        token = secrets.token_urlsafe(24)
        with vendor.lock:
            vendor.bearer.add(token)
        return Response(json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 300}), 200,
                        content_type="application/json", headers={"Cache-Control": "no-store"})

    def _task(self, vendor: Vendor, request: Request) -> Response:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in vendor.bearer:
            leaked = any(bearer in other.bearer for other in self.vendors.values() if other is not vendor)
            self.problems.leak(f"{vendor.session}: a Task with " + ("another session's token" if leaked else
                                                                      "an unknown token"))
            return _outcome(401, "unknown token")
        task = json.loads(request.get_data())
        if task["for"]["identifier"]["value"] != vendor.bsn or task["owner"]["identifier"]["value"] != vendor.ura:
            self.problems.leak(f"{vendor.session}: a Task for patient {task['for']['identifier']['value']}, owner "
                               f"{task['owner']['identifier']['value']}")
        if request.method == "POST":
            vendor.calls["task"] += 1
            with vendor.lock:
                vendor.tasks[task["identifier"][0]["value"]] = task
            return Response(json.dumps(task), 201, content_type=FHIR_JSON,
                            headers={"Location": f"{self.public_url}/v/{vendor.session}/fhir/Task/{uuid.uuid4()}"})
        vendor.calls["cancel"] += 1
        value = request.args.get("identifier", "").rpartition("|")[2]
        with vendor.lock:
            if value not in vendor.tasks:
                return _outcome(404, f"no Task {value}")
            vendor.tasks[value] = task
        return Response(json.dumps(task), 200, content_type=FHIR_JSON)


def _outcome(status: int, text: str) -> Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                             "diagnostics": text}]}
    return Response(json.dumps(body), status, content_type=FHIR_JSON)


# --- what is counted ------------------------------------------------------------------------------------------------
class Problems:
    """Errors (a call that did not answer as it must) and leaks (one session's data seen in another's)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.leaks: list[str] = []
        self._lock = threading.Lock()

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def leak(self, text: str) -> None:
        with self._lock:
            self.leaks.append(text)


@dataclass
class Tally:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    notifications: int = 0
    pulls: int = 0
    cancellations: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # session -> calls of its vendor to the simulator
    tokens: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # session -> pull tokens got
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, session: str | None = None) -> None:
        with self.lock:
            self.times[kind].append(seconds)
            if session is not None:
                self.sent[session] += 1


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else values[0]


# --- one session's vendor at work -----------------------------------------------------------------------------------
@dataclass
class Run:
    admin_url: str  # the simulator itself: the admin API is the operator's, not the vendor's traffic
    vendor_base: str  # where the vendors call the simulator (the proxy's front port, or the simulator)
    admin_key: str
    vendors: dict[str, Vendor]
    bsns: set[str]
    tally: Tally
    problems: Problems
    deadline: float


def session_loop(run: Run, vendor: Vendor, neighbour: Vendor, offset: int) -> None:
    http = _client()
    admin = {"X-Admin-Key": run.admin_key}
    base = f"{run.vendor_base}/s/{vendor.session}"
    fhir_base, token_url = f"{base}/fhir", f"{base}/token"
    rounds = 0
    while time.monotonic() < run.deadline:
        rounds += 1
        try:
            one_round(run, http, admin, vendor, neighbour, fhir_base, token_url,
                      cancel=(rounds + offset) % CANCEL_EVERY == 0)  # staggered: some cancel in their first round
        except (requests.RequestException, KeyError, ValueError) as exc:
            run.problems.error(f"{vendor.session}: {exc!r}")
            time.sleep(0.5)


def timed(run: Run, kind: str, call: Any, session: str | None = None) -> requests.Response:
    started = time.perf_counter()
    answer = call()
    run.tally.add(kind, time.perf_counter() - started, session)
    return answer


def expect(run: Run, answer: requests.Response, statuses: tuple[int, ...], what: str) -> bool:
    if answer.status_code in statuses:
        return True
    run.problems.error(f"{what}: {answer.status_code} {answer.text[:200]}")
    return False


def only_own_patient(run: Run, vendor: Vendor, body: bytes, what: str) -> None:
    others = {m.decode() for m in BSN_LIKE.findall(body)} & run.bsns - {vendor.bsn}
    if others:
        run.problems.leak(f"{vendor.session}: {what} names patient(s) {sorted(others)} of other sessions")


def one_round(run: Run, http: requests.Session, admin: dict[str, str], vendor: Vendor, neighbour: Vendor,
              fhir_base: str, token_url: str, *, cancel: bool) -> None:
    notified = timed(run, "notify", lambda: http.post(f"{run.admin_url}/api/sessions/{vendor.session}/notify",
                                                      headers=admin, timeout=60, json={"bsn": vendor.bsn,
                                                                                       "period_days": 30}))
    if not expect(run, notified, (200,), "notify") or notified.json()["delivery"].get("status") != 201:
        run.problems.error(f"{vendor.session}: notification not delivered: {notified.text[:200]}")
        return
    with run.tally.lock:
        run.tally.notifications += 1
    sent = notified.json()["task"]
    task = vendor.tasks[sent["identifier"][0]["value"]]  # what this vendor received, not what was meant for it
    inputs = [(c["code"], i) for i in task["input"] for c in i["type"]["coding"] if c["system"] == TASK_PARAMETER]
    [authorization_base] = [i["valueString"] for code, i in inputs if code == "authorization-base"]
    queries = [i["valueString"] for code, i in inputs if code == "search-resource"]

    answer = timed(run, "token", lambda: http.post(token_url, data=vendor.token_form(token_url, authorization_base),
                                                   timeout=60), vendor.session)
    if not expect(run, answer, (200,), f"{vendor.session}: pull token"):
        return
    token = answer.json()["access_token"]
    with run.tally.lock:
        run.tally.tokens[vendor.session].append(token)
    bearer = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
    letters: list[str] = []
    for query in queries:
        found = timed(run, "search", lambda: http.get(f"{fhir_base}/{query}", headers=bearer, timeout=60),
                      vendor.session)
        if expect(run, found, (200,), f"{vendor.session}: {query}"):
            only_own_patient(run, vendor, found.content, query)
            if query.startswith("DocumentReference"):
                letters += [e["resource"]["content"][0]["attachment"]["url"] for e in found.json().get("entry", [])
                            if e["resource"]["resourceType"] == "DocumentReference"]
    for letter in letters:
        url = letter if letter.startswith("http") else f"{fhir_base}/{letter}"
        pdf = timed(run, "binary", lambda: http.get(url, timeout=60, headers={**bearer, "Accept": "application/pdf"}),
                    vendor.session)
        if expect(run, pdf, (200,), f"{vendor.session}: {letter}") and not pdf.content.startswith(b"%PDF-"):
            run.problems.error(f"{vendor.session}: {letter} is no PDF")
    with run.tally.lock:
        run.tally.pulls += 1

    # This session's token on the next session's FHIR base: refused, and nothing of that patient in the answer.
    neighbour_base = fhir_base.replace(f"/s/{vendor.session}/", f"/s/{neighbour.session}/")
    probe = timed(run, "probe", lambda: http.get(f"{neighbour_base}/Patient", headers=bearer, timeout=60),
                  vendor.session)
    if probe.status_code not in (401, 403):
        run.problems.leak(f"{vendor.session}'s token on {neighbour.session}: {probe.status_code}")
    if neighbour.bsn.encode() in probe.content:
        run.problems.leak(f"{vendor.session}'s token got {neighbour.session}'s patient")

    if cancel:
        notification = notified.json()["notification_id"]
        done = timed(run, "cancel", lambda: http.post(
            f"{run.admin_url}/api/sessions/{vendor.session}/notifications/{notification}/cancel", headers=admin,
            json={}, timeout=60))
        if expect(run, done, (200,), f"{vendor.session}: cancel"):
            with run.tally.lock:
                run.tally.cancellations += 1
            after = timed(run, "search", lambda: http.get(f"{fhir_base}/Patient", headers=bearer, timeout=60),
                          vendor.session)
            if after.status_code not in (401, 403):
                run.problems.leak(f"{vendor.session}: a cancelled notification's token still pulls: "
                                  f"{after.status_code}")


# --- afterwards: the store ------------------------------------------------------------------------------------------
def check_store(database_url: str, server: VendorServer, tally: Tally, problems: Problems,
                recorded: bool) -> dict[str, int]:
    """The leak check from the store; returns what it counted."""
    store = Store(database_url)
    vendors = server.vendors
    counted = Counter[str]()
    uras = {v.ura: s for s, v in vendors.items()}
    bsns = {v.bsn: s for s, v in vendors.items()}
    try:
        for session, vendor in vendors.items():
            for n in store.list_notifications(session):
                counted["notifications"] += 1
                if n.patient_bsn != vendor.bsn or n.owner_ura != vendor.ura or n.session_id != session:
                    problems.leak(f"{session}: stored notification {n.id} for {n.patient_bsn}/{n.owner_ura}")
            for token in tally.tokens[session]:
                counted["tokens"] += 1
                stored = store.get_token(token)  # by its hash
                bound = store.get_notification(stored["notification_id"]) \
                    if stored and stored.get("notification_id") else None
                if stored is None or stored["session_id"] != session or bound is None \
                        or bound.session_id != session or bound.patient_bsn != vendor.bsn:
                    problems.leak(f"{session}: a pull token it got is stored under "
                                  f"{stored and stored['session_id']}, bound to {bound and bound.patient_bsn}")
            if not recorded:
                continue
            seen, after = 0, None
            while True:
                page, after = store.query_exchanges(session, after=after, limit=500)
                for ex in page:
                    seen += 1
                    check_exchange(ex, session, vendor, uras, bsns, problems)
                if after is None:
                    break
            counted["exchanges"] += seen
            expected = tally.sent[session] + sum(vendor.calls.values()) \
                + (server.jwks_fetches if session == server.jwks_session else 0)
            if seen != expected:
                problems.error(f"{session}: {seen} exchanges recorded, {expected} calls made (each once)")
        if recorded:
            unmatched, _ = store.query_exchanges(None, limit=1000)
            counted["unmatched"] = len(unmatched)
            for ex in unmatched:
                problems.error(f"recorded for no session: {ex.method} {ex.url} {ex.status}")
    finally:
        store.close()
    return dict(counted)


def check_exchange(ex: Any, session: str, vendor: Vendor, uras: dict[str, str], bsns: dict[str, str],
                   problems: Problems) -> None:
    if f"/s/{session}/" not in ex.url and f"/v/{session}/" not in ex.url:
        problems.leak(f"{session}: recorded {ex.method} {ex.url}")
    text = " ".join(str(part) for part in (ex.url, ex.request_body, ex.response_body, ex.request_headers,
                                           ex.response_headers))
    for number in set(re.findall(r"(?<!\d)\d{8,9}(?!\d)", text)):
        owner = bsns.get(number) or uras.get(number)
        if owner is not None and owner != session:
            problems.leak(f"{session}: exchange {ex.id} ({ex.method} {ex.url}) names {number} of {owner}")


# --- the whole run --------------------------------------------------------------------------------------------------
def run(database_url: str, workdir: Path, args: argparse.Namespace) -> bool:
    admin_key = secrets.token_urlsafe(24)
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    front, back = free_port(), free_port()
    vendor_base = f"http://127.0.0.1:{front}" if args.proxy else sim_url
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{defaults.INSTANCE_ENV: str(workdir / "instance"),
                                                   defaults.ADMIN_KEY_ENV: admin_key})
    problems = Problems()
    bsns = test_bsns(args.sessions)
    vendors = {f"load-{i:03}": Vendor(f"load-{i:03}", bsns[i], f"{70_000_000 + i * 101:08}", f"vendor-load-{i:03}")
               for i in range(args.sessions)}
    server = VendorServer(vendors, problems)
    server.public_url = f"http://127.0.0.1:{back}" if args.proxy else server.url
    processes = Processes(workdir, ROOT)
    http = _client()
    try:
        server.start()
        simulator = processes.start("simulator", [
            sys.executable, "-m", "speeltuin.cli", "serve", "--host", "127.0.0.1", "--port", str(sim_port), "--db",
            database_url, "--public-url", vendor_base, "--workers", str(args.workers), "--threads", str(args.threads),
            "--name", "load"], env)
        wait_until(processes, "the simulator", lambda: _answers(f"{sim_url}/api/patients", admin_key), 60)
        proxy = None
        if args.proxy:
            proxy = processes.start("proxy", [
                sys.executable, "-m", "speeltuin.cli", "proxy", "--simulator", sim_url, "--vendor", server.url,
                "--front-port", str(front), "--back-port", str(back), "--db", database_url], env)
            wait_until(processes, "the proxy", lambda: _answers(f"{vendor_base}{FLUSHED}", admin_key), 60)
        started = time.monotonic()
        imported = http.post(f"{sim_url}/api/patients", headers={"X-Admin-Key": admin_key}, timeout=600, json=[
            {"bsn": bsn, "given": "Load", "family": f"Patiënt {n}", "birth_date": "1970-01-01",
             "sex": "F" if n % 2 else "M", "content": "full", "letters": "1"} for n, bsn in enumerate(bsns)])
        if imported.status_code not in (200, 201):
            raise RuntimeError(f"importing the patients: {imported.status_code} {imported.text[:300]}")
        for session, vendor in vendors.items():
            created = http.post(f"{sim_url}/api/sessions", headers={"X-Admin-Key": admin_key}, timeout=60, json={
                "id": session, "name": session, "vendor_role": "receiver", "vendor_ura": vendor.ura,
                "vendor_jwks": vendor.jwks(), "vendor_client_id": vendor.client_id,
                "vendor_token_url": f"{server.public_url}/v/{session}/token",
                "vendor_notification_base": f"{server.public_url}/v/{session}/fhir"})
            if created.status_code != 201:
                raise RuntimeError(f"creating {session}: {created.status_code} {created.text[:300]}")
            server.simulator_ura = created.json()["config"]["own_ura"]
            server.simulator_jwks_url = created.json()["endpoints"]["jwks_url"]
            server.jwks_session = session
        server.load_keys()
        print(f"{args.sessions} sessions (patients imported, sessions made in {time.monotonic() - started:.1f} s); "
              f"simulator: gunicorn {args.workers} worker(s) x {args.threads} threads, {os.cpu_count()} CPU(s), "
              f"store {database_url.split(':', 1)[0]}, "
              + ("behind the validating proxy (speeltuin proxy)" if args.proxy else "called directly (no proxy)"),
              flush=True)

        tally = Tally()
        load = Run(sim_url, vendor_base, admin_key, vendors, set(bsns), tally, problems,
                   time.monotonic() + args.seconds)
        order = list(vendors.values())
        cpu_before = {p.pid: process_tree_cpu(p.pid) for p in (simulator, proxy) if p is not None}
        began, own_before = time.perf_counter(), time.process_time()
        threads = [threading.Thread(target=session_loop, args=(load, v, order[(i + 1) % len(order)], i),
                                    daemon=True)
                   for i, v in enumerate(order)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        own = time.process_time() - own_before  # the vendors and their clients: the load generator itself
        cpu = {p.pid: (process_tree_cpu(p.pid) or 0) - (cpu_before[p.pid] or 0) for p in (simulator, proxy)
               if p is not None}
        processes.check_alive()
        flush_started = time.monotonic()
        if args.proxy:
            flushed = http.get(f"{vendor_base}{FLUSHED}", timeout=1800)
            if flushed.status_code != 200 or flushed.json().get("flushed") is not True:
                problems.error(f"the proxy did not flush: {flushed.status_code} {flushed.text[:200]}")
        flush_s = time.monotonic() - flush_started
        counted = check_store(database_url, server, tally, problems, args.proxy)
        counted["bytes"] = database_bytes(database_url)
        report(args, tally, problems, counted, elapsed, flush_s,
               {"simulator": cpu.get(simulator.pid), "proxy": cpu.get(proxy.pid) if proxy else None,
                "vendors (this script)": own}, vendors)
        return not problems.errors and not problems.leaks
    finally:
        processes.stop()
        server.stop()


def database_bytes(database_url: str) -> int:
    """The store's size on disk now (SQLite: the file and its WAL; PostgreSQL: the database)."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.split(":///", 1)[1])
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()


def _answers(url: str, admin_key: str) -> bool:
    try:
        return _client().get(url, headers={"X-Admin-Key": admin_key}, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def report(args: argparse.Namespace, tally: Tally, problems: Problems, counted: dict[str, int], elapsed: float,
           flush_s: float, cpu: dict[str, float | None], vendors: dict[str, Vendor]) -> None:
    calls = sum(len(t) for t in tally.times.values())
    by_simulator = sum(sum(v.calls.values()) for v in vendors.values())
    print(f"in {elapsed:.1f} s: {tally.notifications} notifications delivered, {tally.pulls} pulls completed (token, "
          f"every offered query, the letter), {tally.cancellations} cancellations; {calls} calls to the simulator "
          f"({calls / elapsed:,.1f}/s) and {by_simulator} from it to the vendors ({by_simulator / elapsed:,.1f}/s)")
    print(f"{'call':>8} {'count':>8} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for kind in ("notify", "token", "search", "binary", "probe", "cancel"):
        times = tally.times.get(kind, [])
        if times:
            print(f"{kind:>8} {len(times):>8} {len(times) / elapsed:>8.1f} {statistics.median(times) * 1000:>8.1f} "
                  f"{p95(times) * 1000:>8.1f}")
    every = [t for times in tally.times.values() for t in times]
    if every:
        print(f"{'all':>8} {len(every):>8} {len(every) / elapsed:>8.1f} {statistics.median(every) * 1000:>8.1f} "
              f"{p95(every) * 1000:>8.1f}")
    # What a request costs in CPU hardly depends on what else the machine runs; the rates do (load average shown).
    used = ", ".join(f"{name} {seconds:.0f} s ({seconds * 1000 / max(calls + by_simulator, 1):.1f} ms per call)"
                     for name, seconds in cpu.items() if seconds is not None)
    print(f"CPU used during the run: {used}, of {elapsed * (os.cpu_count() or 1):.0f} s on {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f}"
          + (f"; the proxy's recording caught up {flush_s:.1f} s after the last call" if args.proxy else ""))
    print(f"errors: {len(problems.errors)}" + (f" (e.g. {problems.errors[:3]})" if problems.errors else ""))
    checked = (f"{counted.get('notifications', 0)} stored notifications, {counted.get('tokens', 0)} pull tokens"
               + (f", {counted.get('exchanges', 0)} recorded exchanges ({counted.get('unmatched', 0)} unmatched)"
                  if args.proxy else " (no exchanges: --no-proxy)"))
    if counted.get("exchanges"):
        print(f"store: {counted['bytes'] / 1e6:.0f} MB after the run, about "
              f"{counted['bytes'] / counted['exchanges'] / 1e3:.0f} kB per recorded exchange (patients' data included)")
    print(f"cross-session leak check over {checked}: "
          + ("none" if not problems.leaks else f"{len(problems.leaks)} LEAKS, e.g. {problems.leaks[:3]}"))


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (default 16)")
    parser.add_argument("--postgresql", action="store_true", help="a throw-away PostgreSQL database, not SQLite")
    parser.add_argument("--no-proxy", dest="proxy", action="store_false",
                        help="the vendors call the simulator directly (nothing is recorded)")
    args = parser.parse_args()
    if args.sessions < 2:
        parser.error("--sessions: at least 2 (each session probes the next one's)")
    signal.signal(signal.SIGTERM, _interrupt)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the vendors' server: no line per request
    with tempfile.TemporaryDirectory() as tmp:
        database: ContextManager[str] = postgres_database() if args.postgresql \
            else nullcontext(sqlite_url(Path(tmp) / "load.sqlite"))
        try:
            with database as url:
                ok = run(url, Path(tmp), args)
        except KeyboardInterrupt:
            sys.exit("interrupted: every process started has been stopped")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
