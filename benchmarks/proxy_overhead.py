"""What the proxy adds (issue 11): round trips and throughput direct, through bare mitmdump and through the addon.

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/proxy_overhead.py [--requests N] [--concurrency N] [--seconds S] [--database-url URL]
                                                  [--rev REV]
Starts real processes on 127.0.0.1: the simulator (`speeltuin serve`), a bare mitmdump in reverse mode (the same
command as `speeltuin proxy` runs, without the addon) and mitmdump with the addon exactly as proxy.launcher builds it.
A receiving vendor's session is made the ordinary way (admin API, the vendor's JWKS), one sent notification gives
the authorization base, and 50 AlcoholUse Observations loaded for the patient make BgZ query 9 a 50-entry searchset.
Then, interleaved round-robin over the three paths (so machine noise hits all alike):
  - the median and p95 round trip of that search (bearer token) and of a token request (two freshly signed ES256
    assertions, a fresh jti each, valid for the addon's aud: every validator runs fully);
  - the search's throughput at --concurrency clients, in 1 s windows taking turns, --seconds per path.
Targets (issue 11): addon/bare round trip <= 1.25 for both, throughput addon/bare >= 0.9. Every process started is
stopped again, also on Ctrl-C, SIGTERM or an error. Default store: a temporary SQLite file shared by simulator and
proxy (as scenarios/stack.py starts them); --database-url an empty PostgreSQL database instead. --rev REV runs the
simulator and both proxies from `git archive REV` (e.g. HEAD: a baseline while proxy/ is being changed), not from the
working tree. --profile-addon FILE runs the addon's mitmdump under cProfile and prints where its time went (that run's
addon figures are then slower than real: cProfile weighs heavily on call-heavy pure-Python code).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, Iterator

import requests

from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer
from speeltuin.records import Notification, NotificationOrigin, ProxyPorts
from speeltuin.store import Store
from testdata.bgz_content import patient_resources
from testdata.patients import PATIENTS
from validators.spec import BGZ_QUERIES, encode_query

ROOT = Path(__file__).resolve().parents[1]
SESSION = "bench-1"
VENDOR_URA, VENDOR_CLIENT_ID = defaults.REFERENCE_VENDOR_URA, "bench-vendor"
ENTRIES = 50
QUERY = next(q for q in BGZ_QUERIES if q.number == 9)  # Observation?code=...|228273003 (zib-AlcoholUse)
PATHS = ("direct", "bare", "addon")
LABELS = {"direct": "direct", "bare": "bare mitmdump", "addon": "mitmdump + addon"}
RTT_TARGET, THROUGHPUT_TARGET = 1.25, 0.9
WINDOW_S = 1.0  # throughput: each path's turn lasts this long


# --- processes ------------------------------------------------------------------------------------------------------
@dataclass
class Processes:
    """Every process this benchmark starts; stop() ends them (SIGTERM, then SIGKILL), each by its own pid."""

    workdir: Path
    cwd: Path
    running: list[tuple[str, subprocess.Popen, Path]] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log_path = self.workdir / f"{name}.log"
        log: IO[bytes] = open(log_path, "wb")
        # its own session: Ctrl-C reaches this script only, which then stops its children in order
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=env,
                                   start_new_session=True)
        log.close()
        self.running.append((name, process, log_path))
        return process

    def check_alive(self) -> None:
        for name, process, log_path in self.running:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}; its log ({log_path}):\n{tail}")

    def stop(self) -> None:
        for _name, process, _log in reversed(self.running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process, _log in reversed(self.running):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(processes: Processes, what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s; see the logs in {processes.workdir}")


def accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def without_addon(command: list[str]) -> list[str]:
    """The launcher's mitmdump command minus the addon script and its options: bare mitmdump, same listeners."""
    bare, i = [], 0
    while i < len(command):
        if command[i] in ("-s", "--scripts") or (command[i] == "--set" and command[i + 1].startswith("speeltuin_")):
            i += 2
            continue
        bare.append(command[i])
        i += 1
    return bare


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads) so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Code:
    """Where the processes under test run from: the working tree, or an exported revision."""

    root: Path
    env: dict[str, str]
    described: str


def code_under_test(workdir: Path, rev: str | None) -> Code:
    if rev is None:
        return Code(ROOT, {}, f"the working tree ({git_state()})")
    try:
        commit = _git("rev-parse", "--short", f"{rev}^{{commit}}").strip()
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"--rev {rev}: cannot export it with git archive ({exc}); give a commit, branch or tag")
    root = workdir / f"code-{commit}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    # first on the path: the exported packages shadow the editable install (a finder at the end of sys.meta_path)
    pythonpath = os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return Code(root, {"PYTHONPATH": pythonpath}, f"git archive of {rev} ({commit})")


# The command `speeltuin proxy` would run, built by the launcher of the code under test (in its own process, so the
# launcher comes from that code, not from the working tree this script was started in).
_LAUNCH = """import json, sys
from pathlib import Path
from proxy.launcher import ProxyPlan, mitmdump_command
from speeltuin.records import ProxyPorts
a = json.loads(sys.argv[1])
plan = ProxyPlan(simulator_url=a["simulator"], vendor_url=a["vendor"], ports=ProxyPorts(a["front"], a["back"]),
                 database_url=a["db"], confdir=Path(a["confdir"]))
print(json.dumps(mitmdump_command(plan)))
"""


def launcher_command(code: Code, env: dict[str, str], **plan: object) -> list[str]:
    made = subprocess.run([sys.executable, "-c", _LAUNCH, json.dumps(plan)], cwd=code.root, env=env,
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"proxy.launcher.mitmdump_command failed:\n{made.stderr[-2000:]}")
    return json.loads(made.stdout)


@dataclass
class Bench:
    urls: dict[str, str]  # path -> base URL a vendor calls
    pids: dict[str, int]  # simulator, bare, addon
    token_url: str  # the aud every assertion names: the token endpoint as the simulator publishes it
    authorization_base: str
    signer: Signer
    addon_command: list[str]
    bare_command: list[str]


@contextmanager
def started(workdir: Path, database_url: str, code: Code, profile: Path | None) -> Iterator[Bench]:
    processes = Processes(workdir, code.root)
    try:
        yield _start(processes, workdir, database_url, code, profile)
    finally:
        processes.stop()


def _start(processes: Processes, workdir: Path, database_url: str, code: Code, profile: Path | None) -> Bench:
    sim_port, bare_port, bare_back = free_port(), free_port(), free_port()
    ports = ProxyPorts(free_port(), free_port())
    sim_url, nowhere = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{free_port()}"  # no vendor listens there
    admin_key = secrets.token_urlsafe(24)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **code.env, **{defaults.INSTANCE_ENV: str(workdir / "instance"),
                                                               defaults.ADMIN_KEY_ENV: admin_key})
    # The simulator publishes the addon's front listener, as scenarios/stack.py has it: the aud vendors sign for.
    processes.start("simulator", [sys.executable, "-m", "speeltuin.cli", "serve", "--host", "127.0.0.1",
                                  "--port", str(sim_port), "--db", database_url, "--public-url", ports.front_url,
                                  "--ura", defaults.OWN_URA, "--name", "benchmark"], env)
    addon_command = launcher_command(code, env, simulator=sim_url, vendor=nowhere, front=ports.front_port,
                                     back=ports.back_port, db=database_url, confdir=str(workdir / "mitmproxy-addon"))
    bare_command = without_addon(launcher_command(code, env, simulator=sim_url, vendor=nowhere, front=bare_port,
                                                  back=bare_back, db=database_url,
                                                  confdir=str(workdir / "mitmproxy-bare")))
    if profile is not None:  # the same mitmdump under cProfile: its figures are then slower than real
        addon_command = [sys.executable, "-m", "cProfile", "-o", str(profile), *addon_command]
    processes.start("mitmdump-addon", addon_command, env)
    processes.start("mitmdump-bare", bare_command, env)
    wait_until(processes, "the simulator", lambda: accepts_tcp(sim_port))
    for port in (ports.front_port, bare_port):
        wait_until(processes, f"mitmdump on {port}", lambda port=port: accepts_tcp(port))
    signer, base = prepare_session(sim_url, admin_key, database_url, nowhere)
    urls = {"direct": sim_url, "bare": f"http://127.0.0.1:{bare_port}", "addon": ports.front_url}
    pids = {name.removeprefix("mitmdump-"): p.pid for name, p, _ in processes.running}
    return Bench(urls, pids, f"{ports.front_url}/s/{SESSION}/token", base, signer, addon_command, bare_command)


def prepare_session(sim_url: str, admin_key: str, database_url: str, vendor_url: str) -> tuple[Signer, str]:
    """A receiving vendor's session (made the ordinary way: admin API, the vendor's JWKS) and a notification the
    simulator sent in it; the vendor's signer and that notification's authorization base (what a pull token needs)."""
    signer = Signer.load_or_create(Store("sqlite://"))  # the vendor's key, kept in memory
    created = _client().post(f"{sim_url}/api/sessions", headers={"X-Admin-Key": admin_key}, timeout=30, json={
        "id": SESSION, "name": "benchmark", "vendor_role": "receiver", "vendor_ura": VENDOR_URA,
        "vendor_jwks": signer.jwks(), "vendor_client_id": VENDOR_CLIENT_ID,
        "vendor_token_url": f"{vendor_url}/token", "vendor_notification_base": f"{vendor_url}/notify"})
    if created.status_code != 201:
        raise RuntimeError(f"creating the session: {created.status_code} {created.text[:300]}")
    base = str(uuid.uuid4())
    store = Store(database_url)
    try:
        store.add_notification(Notification(
            id=f"n-{base}", session_id=SESSION, origin=NotificationOrigin.SENT, identifier=f"urn:uuid:{uuid.uuid4()}",
            group_identifier=f"urn:uuid:{uuid.uuid4()}", authorization_base=base, patient_bsn=PATIENTS[0].bsn,
            owner_ura=VENDOR_URA, period_end=time.time() + 24 * 3600, status="requested", task={}))
    finally:
        store.close()
    return signer, base


def load_patient(database_url: str) -> None:
    """The first test patient's content as loaded FHIR data, with exactly 50 AlcoholUse Observations."""
    patient = PATIENTS[0]
    resources = [r for r in patient_resources(patient, now=datetime.now(timezone.utc))
                 if not r["id"].startswith("alcoholgebruik-")]
    template = next(r for r in patient_resources(patient, now=datetime.now(timezone.utc))
                    if r["id"].startswith("alcoholgebruik-"))
    for n in range(ENTRIES):
        clone = {**template, "id": f"alcoholgebruik-{patient.bsn}-{n:02}",
                 "identifier": [{**template["identifier"][0], "value": f"alcoholgebruik-{patient.bsn}-{n:02}"}],
                 "effectivePeriod": {"start": f"{2000 + n // 12:04}-{n % 12 + 1:02}-01"}}
        resources.append(clone)
    store = Store(database_url)
    try:
        store.load_resources([(patient.bsn, r) for r in resources], replace=False)
    finally:
        store.close()


# --- requests -------------------------------------------------------------------------------------------------------
def _client() -> requests.Session:
    client = requests.Session()
    client.trust_env = False  # loopback only: no proxy from the environment
    return client


class Calls:
    """The two calls a receiving vendor makes, on any of the three paths."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self._token, self._token_at = "", 0.0
        self._lock = threading.Lock()

    def form(self) -> dict[str, str]:
        """A valid jwt-bearer token request: both assertions signed now, each with a fresh jti."""
        return self.bench.signer.token_request_form(VENDOR_CLIENT_ID, VENDOR_URA, self.bench.token_url,
                                                    self.bench.authorization_base)

    def token(self, client: requests.Session, path: str, form: dict[str, str]) -> requests.Response:
        return client.post(f"{self.bench.urls[path]}/s/{SESSION}/token", data=form, timeout=30)

    def search(self, client: requests.Session, path: str) -> requests.Response:
        return client.get(f"{self.bench.urls[path]}/s/{SESSION}/fhir/{encode_query(QUERY.query)}", timeout=30,
                          headers={"Authorization": f"Bearer {self.access_token()}", "Accept": "application/fhir+json"})

    def access_token(self) -> str:
        """A pull token, fetched directly and renewed well before its 5 minutes are up."""
        with self._lock:
            if time.monotonic() - self._token_at > 120:
                answer = self.token(_client(), "direct", self.form())
                if answer.status_code != 200:
                    raise RuntimeError(f"no pull token: {answer.status_code} {answer.text[:300]}")
                self._token, self._token_at = answer.json()["access_token"], time.monotonic()
            return self._token


def expect_ok(answer: requests.Response, what: str) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"{what}: {answer.status_code} {answer.text[:300]}")


def check_paths(calls: Calls, clients: dict[str, requests.Session], warm_up: int) -> None:
    """Every path answers a 50-entry searchset and grants tokens; the first calls (connections, caches) not timed."""
    for path in PATHS:
        for _ in range(warm_up):
            expect_ok(calls.token(clients[path], path, calls.form()), f"token request ({path})")
            answer = calls.search(clients[path], path)
            expect_ok(answer, f"search ({path})")
        bundle = answer.json()
        if bundle.get("type") != "searchset" or len(bundle.get("entry", [])) != ENTRIES:
            raise RuntimeError(f"search ({path}): expected a searchset of {ENTRIES} entries, got "
                               f"{bundle.get('type')} with {len(bundle.get('entry', []))}")


def round_trips(calls: Calls, clients: dict[str, requests.Session], count: int) -> dict[tuple[str, str], list[float]]:
    """Round-robin: each round times one search and one token request on every path, the order turning each round."""
    times: dict[tuple[str, str], list[float]] = {(kind, path): [] for kind in ("search", "token") for path in PATHS}
    for n in range(count):
        order = PATHS[n % 3:] + PATHS[:n % 3]
        for kind in ("search", "token") if n % 2 == 0 else ("token", "search"):
            for path in order:
                form = calls.form() if kind == "token" else None  # signed before the clock starts
                calls.access_token()
                started = time.perf_counter()
                answer = calls.token(clients[path], path, form) if form else calls.search(clients[path], path)
                elapsed = time.perf_counter() - started
                expect_ok(answer, f"{kind} ({path})")
                times[(kind, path)].append(elapsed * 1000)
    return times


def throughput(calls: Calls, concurrency: int, seconds: float) -> tuple[dict[str, float], dict[str, float | None]]:
    """Searches per second at `concurrency` clients, each path in turn for WINDOW_S until each had `seconds`;
    and the CPU each process spent per search in this phase (ms)."""
    clients = {path: [_client() for _ in range(concurrency)] for path in PATHS}
    for path in PATHS:  # open every client's connection before the clock runs
        for client in clients[path]:
            expect_ok(calls.search(client, path), f"search ({path})")
    done = {path: 0 for path in PATHS}
    spent = {path: 0.0 for path in PATHS}
    failures: list[str] = []
    cpu_before = {name: cpu_seconds(pid) for name, pid in calls.bench.pids.items()}
    client_cpu, wall = time.process_time(), time.perf_counter()
    windows = max(1, round(seconds / WINDOW_S))
    for n in range(windows):
        for path in PATHS[n % 3:] + PATHS[:n % 3]:
            count, elapsed = _window(calls, path, clients[path], failures)
            done[path] += count
            spent[path] += elapsed
    client_share = (time.process_time() - client_cpu) / (time.perf_counter() - wall)
    if failures:
        raise RuntimeError(f"{len(failures)} failed searches in the throughput phase, e.g. {failures[0]}")
    rates = {path: done[path] / spent[path] for path in PATHS}
    cpu: dict[str, float | None] = {}
    for name, pid in calls.bench.pids.items():
        before, after = cpu_before[name], cpu_seconds(pid)
        served = sum(done.values()) if name == "simulator" else done[name]
        cpu[name] = (after - before) * 1000 / served if before is not None and after is not None else None
    cpu["client"] = client_share
    return rates, cpu


def _window(calls: Calls, path: str, clients: list[requests.Session], failures: list[str]) -> tuple[int, float]:
    counts = [0] * len(clients)
    start = threading.Barrier(len(clients) + 1)
    stop_at = [0.0]

    def work(i: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                answer = calls.search(clients[i], path)
            except requests.RequestException as exc:
                failures.append(f"{path}: {exc}")
                return
            if answer.status_code != 200:
                failures.append(f"{path}: {answer.status_code} {answer.text[:200]}")
                return
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    calls.access_token()  # renewed here if due, not inside the window
    began = time.perf_counter()
    stop_at[0] = began + WINDOW_S
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - began  # to the end of the last search


# --- figures --------------------------------------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_round_trips(times: dict[tuple[str, str], list[float]], count: int) -> None:
    print(f"\nround trip, ms ({count} of each per path, interleaved)")
    head = "".join(f"{LABELS[p]:>22}" for p in PATHS)
    print(f"{'':26}{head}{'addon/bare':>22}")
    print(f"{'':26}" + f"{'median':>12}{'p95':>10}" * 4)
    for kind, name in (("search", f"BgZ search ({ENTRIES} entries)"), ("token", "token request")):
        cells = "".join(f"{statistics.median(times[(kind, p)]):12.2f}{p95(times[(kind, p)]):10.2f}" for p in PATHS)
        ratio = statistics.median(times[(kind, "addon")]) / statistics.median(times[(kind, "bare")])
        ratio95 = p95(times[(kind, "addon")]) / p95(times[(kind, "bare")])
        print(f"{name:26}{cells}{ratio:12.2f}{ratio95:10.2f}   median ratio target <= {RTT_TARGET}: "
              f"{verdict(ratio <= RTT_TARGET)}")


def print_throughput(rates: dict[str, float], cpu: dict[str, float | None], concurrency: int, seconds: float) -> None:
    print(f"\nthroughput of the search, requests/s ({concurrency} concurrent clients, {seconds:g} s per path in "
          f"{WINDOW_S:g} s turns)")
    print(f"{'':26}" + "".join(f"{LABELS[p]:>18}" for p in PATHS) + f"{'addon/bare':>12}")
    ratio = rates["addon"] / rates["bare"]
    print(f"{'searches/s':26}" + "".join(f"{rates[p]:18.1f}" for p in PATHS) + f"{ratio:12.2f}   target >= "
          f"{THROUGHPUT_TARGET}: {verdict(ratio >= THROUGHPUT_TARGET)}")
    if all(cpu.get(name) is not None for name in ("simulator", "bare", "addon")):
        print(f"CPU per search in that phase: simulator {cpu['simulator']:.2f} ms, bare mitmdump {cpu['bare']:.2f} ms, "
              f"mitmdump + addon {cpu['addon']:.2f} ms; the benchmark's clients used {cpu['client']:.0%} of one CPU")


def print_recorded(database_url: str) -> None:
    """What the addon recorded: proof that it classified and judged every flow it saw."""
    store = Store(database_url)
    try:
        exchanges = store.list_exchanges([SESSION])
    finally:
        store.close()
    by_tag: dict[str, int] = {}
    rules: dict[str, int] = {}
    for exchange in exchanges:
        by_tag[exchange.tag] = by_tag.get(exchange.tag, 0) + 1
        for finding in exchange.findings:
            key = f"{finding.rule} ({finding.severity})"
            rules[key] = rules.get(key, 0) + 1
    print(f"\nthe addon recorded {len(exchanges)} exchanges of the session ("
          + ", ".join(f"{tag} {n}" for tag, n in sorted(by_tag.items())) + "); findings: "
          + (", ".join(f"{rule} x{n}" for rule, n in sorted(rules.items())) or "none"))


def print_profile(path: Path, code: Code) -> None:
    """The addon's hooks and the project's functions they spent most in, from the cProfile stats of its mitmdump."""
    import pstats

    ours = str(code.root / "proxy" / "addon.py")
    stats = pstats.Stats(str(path))
    print(f"\ncProfile of the addon's mitmdump ({path}; times inflated by the profiler):")
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (file, _line, name), (_cc, calls, _tt, cumulative, _callers) in entries:
        if file == ours and name in ("request", "response", "error"):
            print(f"  addon {name} hook: {calls} calls, {cumulative * 1000 / max(calls, 1):.2f} ms each")
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("cumulative").print_stats(
        rf"^{re.escape(str(code.root))}/|json/(__init__|encoder|decoder)\.py", 20)
    print("\n".join("  " + line.replace(f"{code.root}/", "") for line in out.getvalue().splitlines()
                    if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced"))))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def git_state() -> str:
    """The commit, and whether proxy/ differs from it (a refactor in progress)."""
    try:
        commit = _git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in _git("status", "--porcelain", "--", "proxy").splitlines() if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        return "no git"
    return f"{commit}" + (f", local changes in {', '.join(changed)}" if changed else ", proxy/ unchanged")


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed round trips of each kind per path")
    parser.add_argument("--concurrency", type=int, default=10, help="clients in the throughput phase")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput phase: seconds per path")
    parser.add_argument("--warm-up", type=int, default=10, help="untimed calls of each kind per path first")
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--profile-addon", type=Path, metavar="FILE",
                        help="run the addon's mitmdump under cProfile, write its stats to FILE and print where the "
                             "addon's time went (the addon's figures are then slower than real)")
    parser.add_argument("--rev", help="run simulator and proxies from this git revision (git archive), e.g. HEAD")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the processes started are stopped
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (a background job)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.database_url or sqlite_url(workdir / "bench.sqlite")
        load_patient(url)
        code = code_under_test(workdir, args.rev)
        import mitmproxy.version

        print(f"proxy overhead: {os.cpu_count()} CPU(s), store {url.split(':', 1)[0]}, mitmproxy "
              f"{mitmproxy.version.VERSION}; simulator and proxies run from {code.described}")
        print(f"search: GET /s/{SESSION}/fhir/{encode_query(QUERY.query)} (BgZ query {QUERY.number}), "
              f"{ENTRIES} entries; token request: jwt-bearer, two ES256 assertions with fresh jti each")
        try:
            with started(workdir, url, code, args.profile_addon) as bench:
                print(f"with the addon: {' '.join(bench.addon_command)}")
                print(f"bare: {' '.join(bench.bare_command)}")
                calls = Calls(bench)
                clients = {path: _client() for path in PATHS}
                check_paths(calls, clients, max(1, args.warm_up))
                times = round_trips(calls, clients, args.requests)
                print_round_trips(times, args.requests)
                rates, cpu = throughput(calls, args.concurrency, args.seconds)
                print_throughput(rates, cpu, args.concurrency, args.seconds)
            print_recorded(url)
            if args.profile_addon:
                print_profile(args.profile_addon, code)
        except KeyboardInterrupt:
            sys.exit("interrupted: every process started has been stopped")


if __name__ == "__main__":
    main()
