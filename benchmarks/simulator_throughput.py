"""How many BgZ searches the simulator serves under gunicorn (issue 13), against an empty endpoint served the same way.

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/simulator_throughput.py [--workers N] [--threads T] [--seconds S] [--postgresql]
Starts `speeltuin serve --workers N` (gunicorn, as `speeltuin service` runs it) on 127.0.0.1 with a receiving
vendor's session, a pull token and 50 AlcoholUse Observations loaded for the patient (BgZ query 9: a 50-entry
searchset, as benchmarks/proxy_overhead.py has it). Then, at 1, 10 and 50 concurrent clients, in 1 s windows taking
turns: the search with its bearer token, and `GET /` (the node's description: no session, no database), the empty
endpoint. Prints requests/s, p50 and p95 for both, the search's rate as a share of the empty one's at 10 clients
(target: at least 35 %), and the simulator's CPU time per request of each (Linux): on a machine shared with other work
the rates move with its load, the CPU time per request hardly. Default store: a temporary SQLite file; --postgresql a
throw-away database on the PostgreSQL server at $SPEELTUIN_BENCH_POSTGRES (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped after.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests
from proxy_overhead import (
    QUERY,
    SESSION,
    VENDOR_CLIENT_ID,
    VENDOR_URA,
    Processes,
    _client,
    accepts_tcp,
    free_port,
    load_patient,
    p95,
    prepare_session,
    wait_until,
)

from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from validators.spec import encode_query

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 10, 50)
WINDOW_S = 1.0
SHARE_TARGET = 0.35  # the search's rate at 10 clients, as a share of the empty endpoint's


@contextmanager
def postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("SPEELTUIN_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"speeltuin_bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Load:
    """One kind of request (the search, or the empty endpoint), timed per call."""

    def __init__(self, name: str, url: str, headers: dict[str, str]) -> None:
        self.name, self.url, self.headers = name, url, headers

    def call(self, client: requests.Session) -> float:
        started = time.perf_counter()
        answer = client.get(self.url, headers=self.headers, timeout=60)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"{self.name}: {answer.status_code} {answer.text[:200]}")
        return elapsed


def process_tree_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) the process and its descendants have used (Linux /proc; None elsewhere). Unlike
    the rates it hardly depends on what else the machine runs: the cost of a request on a shared machine."""
    total, todo = 0.0, [pid]
    try:
        while todo:
            current = todo.pop()
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    except (OSError, ValueError, IndexError):
        return None
    return total


def measure(loads: list[Load], concurrency: int, seconds: float, server_pid: int | None = None
            ) -> dict[str, tuple[float, list[float], float | None]]:
    """Per load: requests/s, the round trips (s) and the server's CPU seconds per request (None: unknown), each load
    in turn for WINDOW_S until each had `seconds`."""
    clients = {load.name: [_client() for _ in range(concurrency)] for load in loads}
    for load in loads:  # connections and caches warm before the clock runs
        for client in clients[load.name]:
            load.call(client)
    done = {load.name: 0.0 for load in loads}
    cpu: dict[str, float | None] = {load.name: 0.0 for load in loads}
    times: dict[str, list[float]] = {load.name: [] for load in loads}
    for n in range(max(1, round(seconds / WINDOW_S))):
        for load in loads[n % len(loads):] + loads[:n % len(loads)]:
            before = process_tree_cpu(server_pid) if server_pid else None
            took, elapsed = _window(load, clients[load.name])
            after = process_tree_cpu(server_pid) if server_pid else None
            times[load.name] += took
            done[load.name] += elapsed
            used = cpu[load.name]
            cpu[load.name] = None if used is None or before is None or after is None else used + after - before
    return {name: (len(times[name]) / done[name], times[name],
                   None if cpu[name] is None or not times[name] else cpu[name] / len(times[name])) for name in times}


def _window(load: Load, clients: list[requests.Session]) -> tuple[list[float], float]:
    took: list[list[float]] = [[] for _ in clients]
    failures: list[str] = []
    start = threading.Barrier(len(clients) + 1)
    stop_at = [0.0]

    def work(i: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                took[i].append(load.call(clients[i]))
            except (requests.RequestException, RuntimeError) as exc:
                failures.append(str(exc))
                return

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + WINDOW_S
    start.wait()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} failed calls, e.g. {failures[0]}")
    return [t for per_client in took for t in per_client], time.perf_counter() - began


def run(url: str, workdir: Path, workers: int, threads: int, seconds: float) -> None:
    load_patient(url)
    port, admin_key = free_port(), secrets.token_urlsafe(24)
    sim_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{defaults.INSTANCE_ENV: str(workdir / "instance"),
                                                   defaults.ADMIN_KEY_ENV: admin_key})
    processes = Processes(workdir, ROOT)
    try:
        simulator = processes.start("simulator", [
            sys.executable, "-m", "speeltuin.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", url,
            "--public-url", sim_url, "--workers", str(workers), "--threads", str(threads), "--name", "benchmark"], env)
        wait_until(processes, "the simulator", lambda: accepts_tcp(port))
        signer, base = prepare_session(sim_url, admin_key, url, f"http://127.0.0.1:{free_port()}")
        token_url = f"{sim_url}/s/{SESSION}/token"
        answer = _client().post(token_url, timeout=30, data=signer.token_request_form(
            VENDOR_CLIENT_ID, VENDOR_URA, token_url, base))
        if answer.status_code != 200:
            raise RuntimeError(f"no pull token: {answer.status_code} {answer.text[:300]}")
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}", "Accept": "application/fhir+json"}
        search = Load("search", f"{sim_url}/s/{SESSION}/fhir/{encode_query(QUERY.query)}", bearer)
        entries = len(_client().get(search.url, headers=bearer, timeout=30).json().get("entry", []))
        empty = Load("empty", f"{sim_url}/", {})
        print(f"simulator under gunicorn: {workers} worker(s) x {threads} threads, {os.cpu_count()} CPU(s), store "
              f"{url.split(':', 1)[0]}; search: GET /s/{SESSION}/fhir/{encode_query(QUERY.query)} ({entries} "
              f"entries); empty: GET /")
        print(f"{'clients':>8} {'search/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'empty/s':>10} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'search/empty':>13} {'server CPU ms per search / empty':>34}")
        shares = {}
        for level in LEVELS:
            figures = measure([search, empty], level, seconds, simulator.pid)
            (s_rate, s_times, s_cpu), (e_rate, e_times, e_cpu) = figures["search"], figures["empty"]
            shares[level] = s_rate / e_rate
            cpu = f"{s_cpu * 1000:.2f} / {e_cpu * 1000:.2f}" if s_cpu is not None and e_cpu is not None else "?"
            print(f"{level:>8} {s_rate:>10,.0f} {statistics.median(s_times) * 1000:>8.1f} "
                  f"{p95(s_times) * 1000:>8.1f} {e_rate:>10,.0f} {statistics.median(e_times) * 1000:>8.1f} "
                  f"{p95(e_times) * 1000:>8.1f} {shares[level]:>12.0%} {cpu:>34}", flush=True)
        print(f"at 10 clients the search reaches {shares[10]:.0%} of the empty endpoint's rate (target: at least "
              f"{SHARE_TARGET:.0%}): {'ok' if shares[10] >= SHARE_TARGET else 'MISSED'}")
    finally:
        processes.stop()


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per load and level")
    parser.add_argument("--postgresql", action="store_true", help="a throw-away PostgreSQL database, not SQLite")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.postgresql:
                with postgres_database() as url:
                    run(url, Path(tmp), args.workers, args.threads, args.seconds)
            else:
                run(sqlite_url(Path(tmp) / "bench.sqlite"), Path(tmp), args.workers, args.threads, args.seconds)
        except KeyboardInterrupt:
            sys.exit("interrupted: every process started has been stopped")


if __name__ == "__main__":
    main()
