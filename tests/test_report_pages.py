"""A big session's report (issue 10): counted in SQL over the whole session, the HTML one in pages of
REPORT_PAGE_SIZE exchanges with the summary on each, the JSON one streamed a batch at a time. In the kernel on a
real store (SQLite and PostgreSQL), then through the real app: the evidence API and the web UI."""
from __future__ import annotations

import json
import re
import time
from typing import Iterable, Iterator

import pytest
import requests
from sqlalchemy import inspect, text

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange, Role, Session, SessionConfig
from speeltuin.reports import html, json_report
from speeltuin.results import Excuses, ScenarioResult, error_findings
from speeltuin.session_report import (
    MAX_EVIDENCE_LINES,
    REPORT_PAGE_SIZE,
    BadParameter,
    parse_page,
    report_page,
    session_exchanges,
    session_report,
)
from speeltuin.store import Store
from tests.conftest import LiveNode, start_live_node
from tests.db import database_url
from validators.findings import Finding

SESSION, EXCHANGES = "big", 450  # three pages: 200, 200 and 50
CONFIG = SessionConfig(vendor_ura="90000202", vendor_client_id="vendor-big", own_ura="90000101", own_client_id="sim")
FINDINGS = [Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code"),
            Finding("BUNDLE-010", "warning", "no text", "Bundle.entry[1]"),
            Finding("SEARCH-004", "info", "no _count", "url"),
            Finding("TOKEN-007", "error", "assertion lives too long", "exp")]
SUPPRESSED = "TOKEN-007"
USER, PASSWORD = "casemanager", "a long enough password"


def fill(store: Store, session_id: str = SESSION, count: int = EXCHANGES) -> list[int]:
    """The session (made here) with `count` exchanges, one in three with a finding (one in fifteen with two), rule
    SUPPRESSED suppressed; their ids."""
    store.create_session(Session(session_id, "Busy vendor", Role.RECEIVER, CONFIG, time.time() - 60))
    store.set_suppression(session_id, SUPPRESSED, "clock skew agreed")
    return store.add_exchanges([Exchange(
        source="proxy", tag="search", direction="to-simulator", method="GET",  # type: ignore[arg-type]
        url=f"http://sim.test/s/{session_id}/fhir/Condition?n={n}", status=200, request_headers={"Accept": "x"},
        request_body="", response_headers={}, response_body=f'{{"n": {n}}}', started_at=1000.0 + n,
        session_id=session_id, findings=[FINDINGS[n // 3 % 4]] * (0 if n % 3 else 1) + [FINDINGS[1]] * (n % 15 == 0))
        for n in range(count)])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    """One store for the module (the tests that add to it add sessions of their own)."""
    for url in database_url(request.param, tmp_path_factory.mktemp("store")):
        opened = Store(url)
        opened.ids = fill(opened)  # type: ignore[attr-defined]
        yield opened
        opened.close()


def test_the_summary_is_counted_in_sql_as_from_every_exchange(store: Store) -> None:
    everything = store.list_exchanges([SESSION])
    excuses = Excuses(store.list_suppressions(SESSION))
    loaded = ScenarioResult("s", "t", "d", "receiver", exchanges=everything, excuses=excuses)
    run = session_report(store, SESSION)
    assert run.counts() == run.scenarios[0].counts() == loaded.counts()
    assert run.counts() == {"error": 38, "warning": 68, "info": 37, "suppressed": 37, "expected": 0}
    bad = error_findings(everything, excuses)
    [step] = run.scenarios[0].steps
    assert (run.status, step.status) == ("failed", "failed")
    assert step.detail == (f"{len(bad)} error finding(s) in {EXCHANGES} exchanges:\n"
                           + "\n".join(bad[:MAX_EVIDENCE_LINES]) + f"\n… and {len(bad) - MAX_EVIDENCE_LINES} more")


def test_a_session_with_only_suppressed_errors_passes(store: Store) -> None:
    fill(store, "quiet", 12)  # errors on exchanges 0 and 9 (BUNDLE-009 and TOKEN-007)
    store.set_suppression("quiet", "BUNDLE-009", "local code system agreed")
    run = session_report(store, "quiet")
    assert run.status == "passed" and run.counts()["suppressed"] == 2 and run.counts()["error"] == 0
    assert run.scenarios[0].steps[0].detail == "12 exchanges recorded, no error findings (2 rule(s) suppressed " \
                                               "for this session)"


def test_the_pages_hold_every_exchange_once_in_recorded_order(store: Store) -> None:
    pages = [report_page(store, SESSION, number) for number in (1, 2, 3)]
    assert [(p.number, p.count, p.offset, p.total) for p in pages] == [(n, 3, (n - 1) * REPORT_PAGE_SIZE, EXCHANGES)
                                                                       for n in (1, 2, 3)]
    held = [[ex.id for ex in p.run.scenarios[0].exchanges] for p in pages]
    assert [len(ids) for ids in held] == [200, 200, 50]
    assert sum(held, []) == store.ids  # type: ignore[attr-defined]
    assert pages[2].run.scenarios[0].exchanges[35].findings == [FINDINGS[1], FINDINGS[1]]  # exchange 435
    assert all(p.run.counts() == pages[0].run.counts() for p in pages)  # the summary of the whole session on each
    assert session_report(store, SESSION, page_size=0).scenarios[0].exchanges == []


@pytest.mark.parametrize("number", [0, 4, -1])
def test_a_page_the_report_does_not_have_is_refused(store: Store, number: int) -> None:
    with pytest.raises(BadParameter) as refused:
        report_page(store, SESSION, number)
    assert refused.value.name == "page" and str(refused.value) == f"must be a whole number from 1 to 3, got '{number}'"


def test_a_page_parameter_is_a_whole_number() -> None:
    assert (parse_page(None), parse_page("3")) == (1, 3)
    for value in ("0", "x", "", "1.5"):
        with pytest.raises(BadParameter, match=re.escape(f"got {value!r}")):
            parse_page(value)


def test_the_html_pages_link_to_each_other_and_number_the_exchanges(store: Store) -> None:
    first, middle, last = (report_page(store, SESSION, number) for number in (1, 2, 3))
    shown = {page.number: html.render(page.run, page) for page in (first, middle, last)}
    assert pager_links(shown[1]) == {"next": "?page=2", "last": "?page=3"}
    assert pager_links(shown[2]) == {"first": "?page=1", "prev": "?page=1", "next": "?page=3", "last": "?page=3"}
    assert pager_links(shown[3]) == {"first": "?page=1", "prev": "?page=2"}
    assert "page 2 of 3</strong>" in shown[2] and "(exchanges 201–400 of 450)" in shown[2]
    assert "<title>speeltuin report – session Busy vendor (big) – page 3 of 3</title>" in shown[3]
    assert re.findall(r'<tr class="exchange">\s*<td>(\d+)</td>', shown[3]) == [str(n) for n in range(401, 451)]
    for page in shown.values():  # the summary of the whole session on every page
        assert '<span class="badge error">38 errors</span>' in page and "37 suppressed" in page
        assert "… and 18 more" in page and "clock skew agreed" in page
    assert "Condition?n=449" in shown[3] and "Condition?n=449" not in shown[1]
    by_file = html.render(middle.run, middle, lambda n: f"report-{n}.html")
    assert pager_links(by_file)["next"] == "report-3.html"


def test_a_one_page_report_has_no_pager(store: Store) -> None:
    fill(store, "small", 3)
    page = report_page(store, "small")
    shown = html.render(page.run, page)
    assert 'class="pager"' not in shown and pager_links(shown) == {} and shown.count('<tr class="exchange">') == 3
    assert shown == html.render(page.run)  # as a report without pages (a scenario run's) looks


def test_the_streamed_json_is_the_document_of_the_whole_session(store: Store) -> None:
    summary = session_report(store, SESSION, page_size=0)
    whole = session_report(store, SESSION, page_size=EXCHANGES)  # one page with every exchange
    summary.finished_at = whole.finished_at
    streamed = "".join(json_report.stream(summary, session_exchanges(store, SESSION, batch=64)))
    assert streamed == json_report.render(whole)
    assert len(json.loads(streamed)["scenarios"][0]["exchanges"]) == EXCHANGES
    empty = session_report(store, SESSION, page_size=0)
    assert json.loads("".join(json_report.stream(empty, [])))["scenarios"][0]["exchanges"] == []


def test_the_json_stream_reads_the_exchanges_as_it_goes(store: Store) -> None:
    taken: list[int] = []

    def counted(exchanges: Iterable[Exchange]) -> Iterator[Exchange]:
        for ex in exchanges:
            taken.append(ex.id or 0)
            yield ex

    pieces = json_report.stream(session_report(store, SESSION, page_size=0),
                                counted(session_exchanges(store, SESSION, batch=50)))
    next(pieces), next(pieces), next(pieces)  # the head and two exchanges
    assert len(taken) == 2


def test_an_older_store_gets_the_new_index(store: Store) -> None:
    with store.engine.begin() as c:
        c.execute(text("DROP INDEX ix_exchanges_session_recorded"))
    assert "ix_exchanges_session_recorded" not in indexes(store)
    again = Store(store.url)
    assert "ix_exchanges_session_recorded" in indexes(again)
    again.close()


def indexes(store: Store) -> set[str]:
    return {index["name"] for index in inspect(store.engine).get_indexes("exchanges")}


def pager_links(page: str) -> dict[str, str]:
    """The pager's links (the same at the top and the bottom) by their rel."""
    found = re.findall(r'<a href="([^"]+)" rel="(\w+)">', page)
    assert len(found) % 2 == 0 and found[:len(found) // 2] == found[len(found) // 2:]
    return {rel: href for href, rel in found[:len(found) // 2]}


# --- through the real app ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    live, server = start_live_node(sqlite_url(tmp_path_factory.mktemp("pages") / "sim.sqlite"), ura="90000101",
                                   client_id="sim", name="sim")
    live.runtime.store.add_user(USER, PASSWORD)
    fill(live.runtime.store)
    yield live
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    live.runtime.store.close()


@pytest.fixture(scope="module")
def manager(node: LiveNode) -> requests.Session:
    """A case manager signed in through the sign-in form."""
    browser = requests.Session()
    form = browser.get(f"{node.url}/ui/sign-in", timeout=10).text
    token = re.search(r'name="manager-csrf_token" type="hidden" value="([^"]+)"', form).group(1)  # type: ignore
    signed_in = browser.post(f"{node.url}/ui/sign-in/case-manager", timeout=10, data={
        "manager-username": USER, "manager-password": PASSWORD, "manager-csrf_token": token})
    assert signed_in.url == f"{node.url}/ui/", signed_in.text
    return browser


def api(node: LiveNode, path: str, **params: object) -> requests.Response:
    return requests.get(f"{node.url}/api/sessions/{SESSION}/{path}", params=params, timeout=30,  # type: ignore
                        headers={"X-Admin-Key": node.config.admin_key})


def test_the_api_serves_the_html_report_a_page_at_a_time(node: LiveNode) -> None:
    first, last = api(node, "report.html"), api(node, "report.html", page=3)
    assert first.status_code == last.status_code == 200 and last.headers["Content-Type"].startswith("text/html")
    assert "page 1 of 3</strong>" in first.text and "page 3 of 3</strong>" in last.text
    assert pager_links(last.text) == {"first": "?page=1", "prev": "?page=2"}
    assert "Condition?n=449" in last.text and "Condition?n=449" not in first.text
    for bad, allowed in (("4", "from 1 to 3"), ("0", "of at least 1"), ("two", "of at least 1")):
        refused = api(node, "report.html", page=bad)
        assert refused.status_code == 400
        assert refused.json() == {"error": f"page: must be a whole number {allowed}, got {bad!r}"}


def test_the_api_streams_the_json_report_of_the_whole_session(node: LiveNode) -> None:
    answer = api(node, "report.json")
    assert answer.status_code == 200 and answer.headers.get("Transfer-Encoding") == "chunked"
    report = answer.json()
    assert len(report["scenarios"][0]["exchanges"]) == EXCHANGES and report["counts"]["suppressed"] == 37
    assert report["counts"] == report["scenarios"][0]["counts"] and report["status"] == "failed"


def test_the_web_ui_serves_the_report_pages(node: LiveNode, manager: requests.Session) -> None:
    page = manager.get(f"{node.url}/ui/sessions/{SESSION}/report.html", params={"page": 2}, timeout=30)
    assert page.status_code == 200 and "page 2 of 3</strong>" in page.text
    assert page.headers["Content-Disposition"] == f'inline; filename="speeltuin-{SESSION}-report.html"'
    assert pager_links(page.text)["next"] == "?page=3"
    refused = manager.get(f"{node.url}/ui/sessions/{SESSION}/report.html", params={"page": 9}, timeout=30)
    assert refused.status_code == 400 and refused.headers["Content-Type"].startswith("text/html")
    assert "page: must be a whole number from 1 to 3, got &#39;9&#39;" in refused.text and "<h1" in refused.text
    download = manager.get(f"{node.url}/ui/sessions/{SESSION}/report.json", timeout=30)
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert len(download.json()["scenarios"][0]["exchanges"]) == EXCHANGES
