"""Big sessions stay usable (issue 10): the web UI's pages and the HTML report of one session of 50,000 exchanges.

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/big_session.py [--exchanges N] [--tries N] [--database-url URL]
Fills one session with N exchanges (FHIR searches and reads with ~5 kB answers, token requests, notifications;
findings on about a third, one rule suppressed) through Store.add_exchanges, starts the real Flask app on a loopback
port, signs in as a case manager through the sign-in form (with its CSRF token) and times each page of the web UI
(the median of --tries), the HTML report's first and last page (time and size) and the process's peak memory growth
while it serves the report. Default store: a temporary SQLite file; --database-url an empty PostgreSQL database
(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/big). Target: every page under 1 s.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import re
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import requests
from sqlalchemy import text
from werkzeug.serving import make_server

from simulator.app import create_app
from simulator.runtime import SimulatorConfig
from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange, Role, Session, SessionConfig
from speeltuin.store import Store
from validators.findings import Finding

SESSION = "big-1"
USER, PASSWORD = "benchmark", "a long enough password"
BATCH = 1000  # exchanges per transaction while filling
# (tag, method, path, share): what a receiving vendor's traffic looks like
TRAFFIC = [("search", "GET", "fhir/Condition?patient=Patient/p1", 0.45), ("read", "GET", "fhir/Patient/p1", 0.25),
           ("token-request", "POST", "token", 0.15), ("binary", "GET", "fhir/Binary/b1", 0.07),
           ("notification", "POST", "notify/Task", 0.05), ("capability", "GET", "fhir/metadata", 0.03)]
FINDINGS = [Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code.coding[0]"),
            Finding("BUNDLE-010", "warning", "CodeableConcept without text", "Bundle.entry[1].resource.code"),
            Finding("SEARCH-004", "info", "no _count given: the server's page size applies", "url")]
TOKEN_FINDING = Finding("TOKEN-007", "error", "assertion lifetime longer than 5 minutes", "exp")
SUPPRESSED = TOKEN_FINDING.rule


def bundle(n: int) -> str:
    """A searchset of ten Conditions: about 5 kB of JSON."""
    entries = [{"fullUrl": f"http://sim.test/fhir/Condition/c{n}-{i}", "resource": {
        "resourceType": "Condition", "id": f"c{n}-{i}", "clinicalStatus": "active", "verificationStatus": "confirmed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": str(38341003 + i),
                             "display": "Hypertensive disorder, systemic arterial"}]},
        "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2019-05-01"}} for i in range(10)]
    return json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 10, "entry": entries})


def traffic(count: int, base: str) -> Iterator[Exchange]:
    rng = random.Random(10)
    kinds = rng.choices(TRAFFIC, weights=[share for *_, share in TRAFFIC], k=count)
    started = time.time() - count
    for n, (tag, method, path, _share) in enumerate(kinds):
        finding = TOKEN_FINDING if tag == "token-request" else FINDINGS[n % len(FINDINGS)]
        found = [finding] if n % 3 == 0 else []  # a third of them have a finding
        yield Exchange(
            source="proxy", tag=tag, direction="to-simulator", method=method,  # type: ignore[arg-type]
            url=f"{base}/s/{SESSION}/{path}", status=200,
            request_headers={"Accept": "application/fhir+json", "Authorization": "Bearer [redacted]",
                             "User-Agent": "vendor-epd/4.2"},
            request_body="grant_type=client_credentials&client_assertion=[redacted]" if method == "POST" else "",
            response_headers={"Content-Type": "application/fhir+json", "Content-Length": "5000"},
            response_body=bundle(n), started_at=started + n, duration_ms=rng.uniform(5, 80), session_id=SESSION,
            findings=found)


def fill(store: Store, count: int) -> list[int]:
    store.create_session(Session(SESSION, "Busy vendor", Role.RECEIVER,
                                 SessionConfig(vendor_ura="90000202", vendor_client_id="vendor-big", own_ura="90000101",
                                               own_client_id="sim"), time.time()))
    store.set_suppression(SESSION, SUPPRESSED, "clock skew agreed with the vendor")
    store.add_user(USER, PASSWORD)
    ids: list[int] = []
    batch: list[Exchange] = []
    for ex in traffic(count, "http://127.0.0.1:8080"):
        batch.append(ex)
        if len(batch) == BATCH:
            ids += store.add_exchanges(batch)
            batch = []
    ids += store.add_exchanges(batch)
    return ids


def sign_in(ui: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{ui}/sign-in", timeout=30).text
    token = re.search(r'name="manager-csrf_token" type="hidden" value="([^"]+)"', form)
    assert token, "no CSRF token on the sign-in page"
    answer = browser.post(f"{ui}/sign-in/case-manager", timeout=30, data={
        "manager-username": USER, "manager-password": PASSWORD, "manager-csrf_token": token.group(1)})
    assert answer.ok and answer.url.rstrip("/") == ui, f"sign-in failed: {answer.status_code}"
    return browser


def timed(browser: requests.Session, url: str, tries: int) -> tuple[float, int, int]:
    """The median time of `tries` GETs, the status and the size of the answer."""
    times, size, status = [], 0, 0
    for _ in range(tries):
        started = time.perf_counter()
        with browser.get(url, timeout=600, stream=True) as answer:  # streamed: the client keeps no big answer
            status, size = answer.status_code, sum(len(chunk) for chunk in answer.iter_content(1 << 16))
        times.append(time.perf_counter() - started)
    return statistics.median(times), status, size


def peak_rss_mb() -> float:
    """The process's peak resident memory since the last reset_peak (Linux), else since it started."""
    status = Path("/proc/self/status")
    if status.exists():
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read_text()).group(1)) / 1024  # type: ignore[union-attr]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> float:
    """Start measuring the peak afresh (Linux: filling the store has raised it); the memory in use now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=50_000)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--no-vacuum", action="store_true",
                        help="PostgreSQL: time the pages right after the fill, before the VACUUM ANALYZE that "
                             "autovacuum would soon do (the planner then has no statistics)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or sqlite_url(Path(tmp) / "big.sqlite")
        started = time.perf_counter()
        store = Store(url)
        ids = fill(store, args.exchanges)
        vacuumed = store.engine.dialect.name == "postgresql" and not args.no_vacuum
        if vacuumed:
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE"))
        store.close()
        print(f"{args.exchanges} exchanges in session {SESSION} ({url.split(':', 1)[0]}), filled in "
              f"{time.perf_counter() - started:.1f} s{' (then VACUUM ANALYZE)' if vacuumed else ''}")
        run(url, ids, args.tries)


def run(url: str, ids: list[int], tries: int) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    app = create_app(SimulatorConfig(database_url=url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ui = f"http://127.0.0.1:{server.port}/ui"
    browser = sign_in(ui)
    print(f"{'page':45} {'median s':>9} {'status':>6} {'bytes':>10}")
    time_pages(browser, ui, ids, tries)
    time_reports(browser, f"{ui}/sessions/{SESSION}", tries)
    server.shutdown()
    app.extensions["speeltuin"].store.close()


def show(name: str, figures: tuple[float, int, int]) -> None:
    seconds, status, size = figures
    print(f"{name:45} {seconds:9.3f} {status:6} {size:10,}")


def time_pages(browser: requests.Session, ui: str, ids: list[int], tries: int) -> None:
    session = f"{ui}/sessions/{SESSION}"
    pages = [("dashboard", f"{ui}/"), ("session, first page", session),
             ("session, page deep in the list", f"{session}?after={ids[-200]}"),
             ("session, tag filter (notification)", f"{session}?tag=notification"),
             ("session, severity filter (error)", f"{session}?severity=error"),
             ("session, severity filter deep (info)", f"{session}?severity=info&after={ids[-500]}"),
             ("live fragment (nothing new)", f"{session}/live?after={ids[-1]}&room=50"),
             ("live fragment (20 new)", f"{session}/live?after={ids[-21]}&room=50"),
             ("one exchange", f"{session}/exchanges/{ids[len(ids) // 2]}")]
    for name, address in pages:
        show(name, timed(browser, address, tries))


def time_reports(browser: requests.Session, session: str, tries: int) -> None:
    """The HTML report's first and last page, then the downloads; the peak memory each needed."""
    before = reset_peak()
    show("HTML report, first page", timed(browser, f"{session}/report.html", tries))
    shown = re.search(r"page 1 of (\d+)", browser.get(f"{session}/report.html", timeout=600).text)
    last_page = int(shown.group(1)) if shown else 1
    show(f"HTML report, last page ({last_page})", timed(browser, f"{session}/report.html?page={last_page}", tries))
    html_growth, before = peak_rss_mb() - before, reset_peak()
    for kind in ("json", "junit.xml", "testreport.json"):
        show(f"report.{kind} (download)", timed(browser, f"{session}/report.{kind}", 1))
    print(f"peak memory growth: {html_growth:.0f} MB serving the HTML report's pages, {peak_rss_mb() - before:.0f} MB "
          f"serving the downloads (resident before: {before:.0f} MB)")


if __name__ == "__main__":
    main()
