"""Scale-out: two simulators (`speeltuin serve`, real processes) on ONE PostgreSQL database, each behind its own
validating proxy (`speeltuin proxy`, real mitmdump with our addon, both recording into that database), serve the
same session interchangeably.

The vendor is written the way a vendor would write it (tests/independent_client/vendor.py: PyJWT + requests, from
SPEC.md and the README): it plays the receiving node and alternates its calls between front A and front B. Both
simulators announce one public address (front A's, as a load balancer's name would be), so an assertion's `aud` is
the same whichever front it is sent to; what may differ between the fronts is only the process that answers.

The stateful checks: a jti used at one front is refused at the other; a cancellation made through one front
refuses the pull token at the other at once; a pull token stays bound to its notification's patient at the other
front; every exchange is recorded once in the one store, and either front's evidence shows all of them.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from scenarios.stack import free_port
from tests.db import postgres_database
from tests.independent_client.vendor import BSN_SYSTEM, VendorNode, task_inputs
from tests.processes import processes_naming

ADMIN_KEY = "scale-out-admin-key-" + secrets.token_hex(8)
PATIENT_1 = "999993653"  # SPEC §7: Suzanne Moulin, full BgZ
PATIENT_2 = "999990639"  # SPEC §7: Mattheus du Burck
FLUSHED = "/_speeltuin/flushed"  # README: answers once everything answered before it is recorded
FHIR_JSON = "application/fhir+json"


@dataclass
class Deployment:
    """What the vendor sees (two fronts, one public address) and what the test needs to check it."""

    public_url: str  # what both simulators announce (front A's address)
    fronts: tuple[str, str]  # front A, front B: where the vendor's calls really go
    database_url: str
    vendor: VendorNode
    session: dict[str, Any]
    http: requests.Session
    sent: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query) of every call to /s/<id>/

    @property
    def session_id(self) -> str:
        return str(self.session["id"])

    def at(self, front: int, url: str) -> str:
        """The announced (public) URL, sent to front A (0) or B (1) instead."""
        parts = urlsplit(url)
        return f"{self.fronts[front]}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """A vendor call to the simulator's session endpoints; every one is noted, to count them in the store."""
        answer = self.http.request(method, url, timeout=30, **kwargs)
        self.sent.append((method, answer.request.path_url))  # as it went on the wire (requests encodes `|`)
        return answer

    def admin(self, front: int, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The admin API through a front (README: everything is at the public address)."""
        return self.http.request(method, f"{self.fronts[front]}/api{path}", headers={"X-Admin-Key": ADMIN_KEY},
                                 timeout=30, **kwargs)

    def token(self, front: int, form: dict[str, str]) -> requests.Response:
        return self.call("POST", self.at(front, self.session["endpoints"]["token_url"]), data=form,
                         headers={"Accept": "application/json"})

    def pull_form(self, authorization_base: str) -> dict[str, str]:
        ep = self.session["endpoints"]
        return self.vendor.pull_token_form(ep["client_id"], ep["token_url"], authorization_base)

    def pull_token(self, front: int, authorization_base: str) -> str:
        answer = self.token(front, self.pull_form(authorization_base))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def fhir(self, front: int, relative: str, token: str, accept: str = FHIR_JSON) -> requests.Response:
        base = self.at(front, self.session["endpoints"]["fhir_base"])
        return self.call("GET", f"{base}/{relative.lstrip('/')}", headers={"Accept": accept,
                                                                          "Authorization": f"Bearer {token}"})

    def notify(self, front: int, bsn: str) -> tuple[str, dict[str, Any], str]:
        """The simulator behind `front` notifies the vendor: (notification id, the Task received, its base)."""
        before = set(self.vendor.tasks)
        answer = self.admin(front, "POST", f"/sessions/{self.session_id}/notify",
                            json={"bsn": bsn, "workflow_task": False, "period_days": 30})
        assert answer.status_code == 200, answer.text
        assert answer.json()["delivery"].get("status") == 201, answer.json()["delivery"]
        self.vendor.wait_for_task(timeout=10, count=len(before) + 1)
        [task_id] = set(self.vendor.tasks) - before
        task = self.vendor.tasks[task_id]
        [base] = task_inputs(task, "authorization-base")
        return str(answer.json()["notification_id"]), task, str(base["valueString"])

    def flush(self) -> None:
        for front in self.fronts:
            flushed = self.http.get(f"{front}{FLUSHED}", timeout=60)
            assert flushed.status_code == 200 and flushed.json().get("flushed") is True, flushed.text

    def exchanges(self, front: int) -> list[dict[str, Any]]:
        """The session's exchanges as the evidence API behind `front` shows them (every page)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.admin(front, "GET", f"/sessions/{self.session_id}/exchanges",
                              params={"limit": 1000, **({"after": after} if after else {})})
            assert page.status_code == 200, page.text
            found += page.json()["exchanges"]
            after = page.json()["next"]
            if not after:
                return found


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # a file, not a pipe: a chatty process must never block on a full pipe
        return subprocess.Popen([sys.executable, "-m", "speeltuin.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "SPEELTUIN_ADMIN_KEY": ADMIN_KEY}, cwd=log.parent,
                                start_new_session=True)


_LOOPBACK = requests.Session()
_LOOPBACK.trust_env = False  # no proxy from the environment for loopback probes


class _StartFailed(Exception):
    """A process did not come up (most likely its free port was taken meanwhile by another test's process)."""


def _wait_for(process: subprocess.Popen[bytes], probe: str, log: Path) -> None:
    """Until `probe` answers 200 while the process still runs: a bare TCP check could be answered by whatever else
    took the port between free_port() and the bind."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise _StartFailed(f"{process.args[3]} ended with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if _LOOPBACK.get(probe, headers={"X-Admin-Key": ADMIN_KEY}, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise _StartFailed(f"{probe} did not answer within 60 s: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def _start_stack(work: Path, database_url: str, vendor_url: str,
                 processes: list[subprocess.Popen[bytes]]) -> tuple[list[int], list[int]]:
    """Simulator and proxy A, simulator and proxy B (appended to `processes` as they start): (fronts, backs)."""
    sims, fronts, backs = [free_port(), free_port()], [free_port(), free_port()], [free_port(), free_port()]
    public_url = f"http://127.0.0.1:{fronts[0]}"
    # B under gunicorn: the session's state must live in the store, not in any one process. Both simulators start
    # at once, then both proxies: the module's time is mostly these starts.
    serving = []
    for name, sim, extra in (("a", sims[0], []), ("b", sims[1], ["--workers", "2", "--threads", "4"])):
        log = work / f"serve-{name}.log"
        processes.append(_start(["serve", "--host", "127.0.0.1", "--port", str(sim), "--db", database_url,
                                 "--public-url", public_url, "--name", f"sim-{name}", *extra], log))
        serving.append((processes[-1], f"http://127.0.0.1:{sim}/api/sessions", log))
    for process, probe, log in serving:
        _wait_for(process, probe, log)
    proxying = []
    for name, sim, front, back in (("a", sims[0], fronts[0], backs[0]), ("b", sims[1], fronts[1], backs[1])):
        log = work / f"proxy-{name}.log"
        processes.append(_start(["proxy", "--simulator", f"http://127.0.0.1:{sim}", "--vendor", vendor_url,
                                 "--front-port", str(front), "--back-port", str(back), "--db", database_url,
                                 "--public-url", public_url, "--confdir", str(work / f"mitmproxy-{name}")], log))
        proxying.append((processes[-1], f"http://127.0.0.1:{front}{FLUSHED}", log))
    for process, probe, log in proxying:
        _wait_for(process, probe, log)
    return fronts, backs


def _stop(processes: list[subprocess.Popen[bytes]], marker: str) -> list[str]:
    """SIGTERM each process group and wait; what still runs after that (naming the test's database, or a
    descendant) is killed and returned, so the caller can fail on it."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            pass
    survivors = processes_naming(marker)
    described = [Path(f"/proc/{pid}/cmdline").read_text(errors="replace").replace("\0", " ")[:200]
                 for pid in survivors if Path(f"/proc/{pid}/cmdline").exists()]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return described


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("scale-out")
    for database_url in postgres_database():  # skips (outside CI) when no PostgreSQL answers
        marker = database_url.rsplit("/", 1)[1]  # every process we start names it on its command line
        survivors: list[str] = []
        yield from _deploy(work, database_url, marker, survivors)
        assert survivors == [], f"processes survived SIGTERM: {survivors}"


def _deploy(work: Path, database_url: str, marker: str, survivors: list[str]) -> Iterator[Deployment]:
    vendor = VendorNode().start()
    vendor_url = vendor.base_url
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for attempt in range(3):  # other tests pick free ports at the same time: a lost race is retried
            try:
                fronts, backs = _start_stack(work, database_url, vendor_url, processes)
                break
            except _StartFailed:
                survivors += _stop(processes, marker)
                processes.clear()
                if attempt == 2:
                    raise
        public_url = f"http://127.0.0.1:{fronts[0]}"  # what both simulators announce
        # The vendor is known by the address of proxy A's back port (README: "give your system's URLs with the back
        # port's address"), so the simulators' calls to it are recorded; its AS-R then wants that token URL as aud.
        vendor.base_url = f"http://127.0.0.1:{backs[0]}"
        http = requests.Session()
        http.trust_env = False  # loopback only, whatever proxy the environment names
        created = http.post(f"{public_url}/api/sessions", headers={"X-Admin-Key": ADMIN_KEY}, timeout=30, json={
            "name": "scale-out", "vendor_role": "receiver", "vendor_ura": vendor.ura, "vendor_jwks": vendor.jwks,
            "vendor_client_id": vendor.client_id, "vendor_token_url": vendor.token_url,
            "vendor_notification_base": vendor.notification_base})
        assert created.status_code == 201, created.text
        deployment = Deployment(public_url, (public_url, f"http://127.0.0.1:{fronts[1]}"), database_url, vendor,
                                created.json(), http)
        # The vendor's AS-R trusts the simulators' key, read from front B's jwks_url: one key for both simulators.
        jwks_url = deployment.at(1, deployment.session["endpoints"]["jwks_url"])
        vendor.configure_sender(jwks_url, deployment.session["config"]["own_client_id"])
        deployment.sent.append(("GET", urlsplit(jwks_url).path))
        yield deployment
    finally:
        survivors += _stop(processes, marker)
        vendor.stop()


def _bsns(answer: requests.Response) -> set[str]:
    """The BSNs named anywhere in an answer (a Patient's identifier, a reference's, a query echoed in a link)."""
    return {bsn for bsn in (PATIENT_1, PATIENT_2) if bsn in answer.text}


# --------------------------------------------------------------------------------------------------------- tests
def test_both_fronts_serve_the_session_and_sign_with_one_key(deployment: Deployment) -> None:
    shown = [deployment.admin(front, "GET", f"/sessions/{deployment.session_id}") for front in (0, 1)]
    assert [s.status_code for s in shown] == [200, 200], [s.text for s in shown]
    assert shown[0].json()["endpoints"] == shown[1].json()["endpoints"]  # one public address, whoever answers
    keys = [deployment.call("GET", deployment.at(front, deployment.session["endpoints"]["jwks_url"])).json()
            for front in (0, 1)]
    assert keys[0] == keys[1] and keys[0]["keys"], keys
    # Notified by each simulator in turn, the vendor's AS-R verified both with the keys it read once.
    for front in (0, 1):
        deployment.notify(front, PATIENT_1)
    assert deployment.vendor.problems == [], deployment.vendor.problems


def test_an_assertion_used_at_one_front_is_refused_at_the_other(deployment: Deployment) -> None:
    _, _, base = deployment.notify(0, PATIENT_1)
    for first, then in ((0, 1), (1, 0)):
        form = deployment.pull_form(base)
        used = deployment.token(first, form)
        assert used.status_code == 200, used.text
        replayed = deployment.token(then, form)  # the very same assertions, same jtis
        assert replayed.status_code == 401, replayed.text
        assert replayed.json()["error"] == "invalid_client" and "jti" in replayed.json()["error_description"], \
            replayed.text
        assert replayed.headers.get("Cache-Control") == "no-store"


def test_a_cancellation_through_one_front_refuses_the_pull_at_the_other_at_once(deployment: Deployment) -> None:
    notification, task, base = deployment.notify(1, PATIENT_1)
    token = deployment.pull_token(1, base)
    assert deployment.fhir(1, "Condition", token).status_code == 200

    cancelled = deployment.admin(0, "POST", f"/sessions/{deployment.session_id}/notifications/{notification}/cancel",
                                 json={})
    assert cancelled.status_code == 200, cancelled.text
    assert deployment.vendor.tasks[task["id"]]["status"] == "cancelled"  # the vendor got the conditional update

    after = deployment.fhir(1, "Condition", token)  # no wait: the next call at B already knows
    assert after.status_code in (401, 403), (after.status_code, after.text[:300])
    assert after.json()["resourceType"] == "OperationOutcome" and PATIENT_1 not in after.text
    refused = deployment.token(1, deployment.pull_form(base))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    assert deployment.fhir(0, "Condition", token).status_code in (401, 403)  # nor at A


def test_a_pull_token_is_bound_to_its_notification_at_the_other_front(deployment: Deployment) -> None:
    _, _, base_1 = deployment.notify(0, PATIENT_1)
    _, _, base_2 = deployment.notify(1, PATIENT_2)
    token_1, token_2 = deployment.pull_token(0, base_1), deployment.pull_token(1, base_2)

    own = deployment.fhir(1, "Patient", token_1)  # token got at A works at B, for its own patient
    assert own.status_code == 200 and _bsns(own) == {PATIENT_1}, own.text[:300]
    other = deployment.fhir(0, "Patient", token_2)
    assert other.status_code == 200 and _bsns(other) == {PATIENT_2}, other.text[:300]
    [patient_2] = [e["resource"]["id"] for e in other.json()["entry"] if e["resource"]["resourceType"] == "Patient"]
    documents_2 = deployment.fhir(0, "DocumentReference?status=current", token_2).json()
    letter_2 = documents_2["entry"][0]["resource"]["content"][0]["attachment"]["url"]

    # With patient 1's token, at B: nothing of patient 2, however it is asked for (SPEC §5.4).
    for relative, accept in ((f"Patient/{patient_2}", FHIR_JSON),
                             (f"Patient?identifier={BSN_SYSTEM}|{PATIENT_2}", FHIR_JSON),
                             (f"Condition?patient.identifier={BSN_SYSTEM}|{PATIENT_2}", FHIR_JSON),
                             (f"Condition?patient=Patient/{patient_2}", FHIR_JSON),
                             (letter_2.split("/fhir/", 1)[-1], "application/pdf")):  # relative or absolute
        answer = deployment.fhir(1, relative, token_1, accept=accept)
        if answer.status_code != 200:  # refused: a 4xx OperationOutcome (it may echo the id asked for)
            assert 400 <= answer.status_code < 500, (relative, answer.status_code, answer.text[:300])
            assert answer.json()["resourceType"] == "OperationOutcome", (relative, answer.text[:300])
            continue
        assert accept == FHIR_JSON, f"patient 2's referral letter was served to patient 1's token: {relative}"
        # a search narrowed to the token's patient: no entry of patient 2 (the self link may echo the query)
        leaked = [e["resource"] for e in answer.json().get("entry", []) if PATIENT_2 in json.dumps(e["resource"])
                  or patient_2 in json.dumps(e["resource"])]
        assert not leaked, (relative, leaked)


def _token_requests_since(deployment: Deployment, since: float) -> list[dict[str, Any]]:
    """The vendor's token requests recorded since `since`, in the order they were made (the test makes them one
    after the other), whichever proxy recorded them."""
    deployment.flush()
    found = [e for e in deployment.exchanges(0) if e["tag"] == "token-request" and e["direction"] == "to-simulator"
             and e["started_at"] >= since]
    return sorted(found, key=lambda e: e["started_at"])


def _rules(exchange: dict[str, Any]) -> set[str]:
    return {f["rule"] for f in exchange["findings"] if f["severity"] == "error"}


def test_a_replay_at_the_same_front_is_on_the_record_as_a_replay(deployment: Deployment) -> None:
    """The control for the next test: one proxy that sees both uses records the replay with JWT-024."""
    _, _, base = deployment.notify(0, PATIENT_1)
    since = time.time()
    form = deployment.pull_form(base)
    assert [deployment.token(0, form).status_code for _ in range(2)] == [200, 401]
    first, replay = _token_requests_since(deployment, since)
    assert [first["status"], replay["status"]] == [200, 401]
    assert "JWT-024" not in _rules(first) and "JWT-024" in _rules(replay), (first["findings"], replay["findings"])


def test_a_replay_at_the_other_front_is_on_the_record_as_a_replay(deployment: Deployment) -> None:
    _, _, base = deployment.notify(0, PATIENT_1)
    since = time.time()
    form = deployment.pull_form(base)
    assert [deployment.token(0, form).status_code, deployment.token(1, form).status_code] == [200, 401]
    first, replay = _token_requests_since(deployment, since)
    assert [first["status"], replay["status"]] == [200, 401]
    assert "JWT-024" in _rules(replay), replay["findings"]


def test_both_fronts_judge_the_aud_against_the_public_address(deployment: Deployment) -> None:
    _, _, base = deployment.notify(1, PATIENT_1)
    since = time.time()
    for front in (0, 1):
        assert deployment.token(front, deployment.pull_form(base)).status_code == 200
    at_a, at_b = _token_requests_since(deployment, since)
    assert [at_a["status"], at_b["status"]] == [200, 200]
    assert "JWT-013" not in _rules(at_a), at_a["findings"]  # holds: front A is the public address
    assert "JWT-013" not in _rules(at_b), at_b["findings"]


def test_every_exchange_is_recorded_once_and_both_fronts_show_them_all(deployment: Deployment) -> None:
    deployment.flush()
    seen = [deployment.exchanges(front) for front in (0, 1)]
    assert [e["id"] for e in seen[0]] == [e["id"] for e in seen[1]]  # one store: the same evidence at both fronts
    exchanges = seen[0]
    assert len({e["id"] for e in exchanges}) == len(exchanges)

    def request_of(exchange: dict[str, Any]) -> tuple[str, str]:
        parts = urlsplit(exchange["url"])
        return exchange["method"], parts.path + (f"?{parts.query}" if parts.query else "")

    to_simulator = Counter(request_of(e) for e in exchanges if e["direction"] == "to-simulator")
    assert to_simulator == Counter(deployment.sent), (to_simulator - Counter(deployment.sent),
                                                      Counter(deployment.sent) - to_simulator)
    # The simulators' calls to the vendor (token requests, Task creates, cancellations), all through back port A.
    vendor = deployment.vendor
    to_vendor = Counter(e["tag"] for e in exchanges if e["direction"] == "to-vendor")
    assert to_vendor == Counter({"token-request": len(vendor.token_requests), "notification": len(vendor.tasks),
                                 "cancellation": len(vendor.cancelled)}), to_vendor
    assert len(exchanges) == len(deployment.sent) + sum(to_vendor.values())

    # The session's report at either front counts every one of them.
    for front in (0, 1):
        report = deployment.admin(front, "GET", f"/sessions/{deployment.session_id}/report.json")
        assert report.status_code == 200, report.text[:300]
        [scenario] = report.json()["scenarios"]  # one scenario for the session's traffic (README)
        assert sorted(e["id"] for e in scenario["exchanges"]) == sorted(e["id"] for e in exchanges)
