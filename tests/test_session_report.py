"""A session's evidence in the kernel: its report (one scenario, one step), the TestReport writer, the filtered
and paged exchange query, and the session access key kept as a hash. Real store (SQLite and PostgreSQL)."""
from __future__ import annotations

import json
import time
from typing import Iterator
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import text

from speeltuin.records import Exchange, Role, Session, SessionConfig
from speeltuin.reports import WRITERS, write_reports
from speeltuin.reports.testreport import to_resource
from speeltuin.session_report import (
    NO_ERRORS_STEP,
    BadParameter,
    ExchangeQuery,
    UnknownSession,
    query_exchanges,
    session_report,
)
from speeltuin.store import Store, hash_token
from tests.db import database_url
from validators.findings import Finding
from validators.rules.structure import check_structure

CONFIG = SessionConfig(vendor_ura="90000202", vendor_client_id="vendor-s-1", own_ura="90000101", own_client_id="sim",
                       vendor_fhir_base="http://vendor.test/fhir")
ERROR = Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code")
WARNING = Finding("BUNDLE-010", "warning", "no text", "Bundle.entry[1]")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    for url in database_url(request.param, tmp_path):
        opened = Store(url)
        opened.create_session(Session("s-1", "Vendor X", Role.RECEIVER, CONFIG, time.time() - 60))
        opened.create_session(Session("s-2", "Vendor Y", Role.SENDER, CONFIG, time.time() - 60))
        yield opened
        opened.close()


def _add(store: Store, session_id: str, *findings: Finding, tag: str = "search", started_at: float | None = None,
         url: str = "http://sim.test/s/x/fhir/Condition") -> int:
    return store.add_exchange(Exchange(
        source="proxy", tag=tag, direction="to-simulator", method="GET", url=url, status=200,  # type: ignore[arg-type]
        request_headers={"Accept": "application/fhir+json"}, request_body="", response_headers={},
        response_body="{}", started_at=time.time() if started_at is None else started_at, session_id=session_id,
        findings=list(findings)))


def test_a_session_without_error_findings_passes(store: Store) -> None:
    _add(store, "s-1", WARNING)
    _add(store, "s-1", ERROR)
    store.set_suppression("s-1", "BUNDLE-009", "local code system agreed")
    _add(store, "s-2", ERROR)  # another session's error does not count here
    run = session_report(store, "s-1")
    [scenario] = run.scenarios
    assert (run.status, scenario.id, scenario.session_id, scenario.vendor_role) == ("passed", "session-s-1", "s-1",
                                                                                   "receiver")
    assert "Vendor X" in scenario.title and len(scenario.exchanges) == 2
    [step] = scenario.steps
    assert (step.title, step.status) == (NO_ERRORS_STEP, "passed")
    assert step.detail == "2 exchanges recorded, no error findings (1 rule(s) suppressed for this session)"
    assert run.counts() == {"error": 0, "warning": 1, "info": 0, "suppressed": 1, "expected": 0}
    assert run.environment["vendor fhir base"] == "http://vendor.test/fhir"


def test_a_session_with_an_error_finding_fails_with_the_evidence(store: Store, tmp_path) -> None:
    _add(store, "s-1", ERROR, url="http://sim.test/s/s-1/fhir/Condition")
    run = session_report(store, "s-1")
    [step] = run.scenarios[0].steps
    assert (run.status, step.status) == ("failed", "failed")
    assert step.detail == ("1 error finding(s) in 1 exchanges:\n"
                           "GET http://sim.test/s/s-1/fhir/Condition → BUNDLE-009: Coding without system")
    written = write_reports(run, tmp_path, tuple(WRITERS))
    assert "Coding without system" in written["html"].read_text() and "s-1" in written["html"].read_text()
    assert json.loads(written["json"].read_text())["counts"]["error"] == 1
    assert ET.parse(written["junit"]).getroot().get("failures") == "1"
    assert written["testreport"].name == "testreport.json"
    assert json.loads(written["testreport"].read_text())["result"] == "fail"


def test_no_traffic_yet_is_said_so(store: Store) -> None:
    [step] = session_report(store, "s-1").scenarios[0].steps
    assert (step.status, step.detail) == ("passed", "no exchanges recorded yet, so no error findings")


def test_an_unknown_session_has_no_report(store: Store) -> None:
    with pytest.raises(UnknownSession, match="no session 'nope'"):
        session_report(store, "nope")
    with pytest.raises(UnknownSession):
        query_exchanges(store, "nope", ExchangeQuery())


@pytest.mark.parametrize("failing", [False, True])
def test_the_testreport_is_a_valid_stu3_testreport(store: Store, failing: bool) -> None:
    _add(store, "s-1", ERROR if failing else WARNING)
    resource = to_resource(session_report(store, "s-1"))
    assert check_structure(resource) == []
    assert resource["resourceType"] == "TestReport" and resource["status"] == "completed"
    assert resource["result"] == ("fail" if failing else "pass") and resource["score"] == (0 if failing else 100)
    assert resource["tester"] == "speeltuin" and resource["issued"].endswith("+00:00")
    assert [p["type"] for p in resource["participant"]] == ["test-engine", "server"]
    [test] = resource["test"]
    assert test["name"] == "session-s-1"
    [action] = test["action"]
    assert action["operation"]["result"] == ("fail" if failing else "pass")
    assert ("BUNDLE-009" in action["operation"]["message"]) is failing


def test_the_testreport_maps_every_step_status(store: Store) -> None:
    run = session_report(store, "s-1")
    run.scenarios[0].steps[0].status = "skipped"
    resource = to_resource(run)
    assert resource["test"][0]["action"][0]["operation"]["result"] == "skip"
    assert check_structure(resource) == []
    broken = {key: value for key, value in resource.items() if key != "testScript"}
    assert check_structure(broken) != []  # the checker does notice a missing required element


def test_exchange_query_filters_and_pages_in_the_store(store: Store) -> None:
    old = _add(store, "s-1", tag="token-request", started_at=1000.0)
    with_error = _add(store, "s-1", ERROR, WARNING, started_at=2000.0)
    with_warning = _add(store, "s-1", WARNING, tag="read", started_at=3000.0)
    _add(store, "s-2", ERROR, started_at=2500.0)

    def ids(**filters: object) -> list[int | None]:
        page, _next = store.query_exchanges("s-1", **filters)  # type: ignore[arg-type]
        return [ex.id for ex in page]

    assert ids() == [old, with_error, with_warning]
    assert ids(tag="token-request") == [old]
    assert ids(severity="error") == [with_error]
    assert ids(severity="warning") == [with_error, with_warning]
    assert ids(severity="info") == []
    assert ids(since=1500.0) == [with_error, with_warning]
    assert ids(tag="read", severity="warning", since=2500.0) == [with_warning]
    page, cursor = store.query_exchanges("s-1", limit=2)
    assert [ex.id for ex in page] == [old, with_error] and cursor == with_error
    assert page[1].findings == [ERROR, WARNING]
    rest, end = store.query_exchanges("s-1", limit=2, after=cursor)
    assert [ex.id for ex in rest] == [with_warning] and end is None


def test_exchange_query_parameters_are_checked() -> None:
    assert ExchangeQuery.parse() == ExchangeQuery(limit=100)
    assert ExchangeQuery.parse(tag="search", severity="error", since="12.5", after="3", limit="1000") == \
        ExchangeQuery("search", "error", 12.5, 3, 1000)
    for name, value in (("tag", "bogus"), ("severity", "fatal"), ("since", "yesterday"), ("since", "nan"),
                        ("limit", "0"), ("limit", "1001"), ("limit", "ten"), ("after", "-1"), ("after", "x"),
                        ("after", str(10**30))):
        with pytest.raises(BadParameter) as caught:
            ExchangeQuery.parse(**{name: value})
        assert caught.value.name == name and repr(value) in str(caught.value)


def test_the_session_key_is_kept_as_a_hash_and_opens_one_session(store: Store) -> None:
    key = store.new_session_key("s-1")
    assert len(key) >= 43 and key != store.new_session_key("s-2")
    assert store.session_key_opens("s-1", key) and not store.session_key_opens("s-2", key)
    assert not store.session_key_opens("s-1", key + "x") and store.session_of_key(key) == "s-1"
    with store.engine.connect() as c:
        rows = c.execute(text("SELECT session_id, key_hash FROM session_keys ORDER BY session_id")).all()
    assert rows[0] == ("s-1", hash_token(key)) and key not in str(rows)
    again = store.new_session_key("s-1")  # a new key replaces the old one
    assert store.session_key_opens("s-1", again) and not store.session_key_opens("s-1", key)
    assert store.delete_session("s-1") and store.session_of_key(again) is None


def test_the_report_says_what_was_pulled_of_each_notification_the_simulator_sent(store: Store) -> None:
    from speeltuin.records import Notification, NotificationOrigin

    task = {"resourceType": "Task", "input": [
        {"type": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskParameter", "code": "search-resource"}]},
         "valueString": query} for query in ("Condition", "Flag")]}
    for n in range(2):
        store.add_notification(Notification(
            id=f"n-{n}", session_id="s-1", origin=NotificationOrigin.SENT, identifier=f"urn:uuid:{n}",
            group_identifier="urn:uuid:g", authorization_base=f"b-{n}", patient_bsn="999993653",
            owner_ura="90000202", period_end=time.time() + 60, status="requested", task=task,
            created_at=time.time() + n))
    store.add_exchange(Exchange(
        source="proxy", tag="search", direction="to-simulator", method="GET",  # type: ignore[arg-type]
        url="http://sim.test/s/s-1/fhir/Condition", status=200, request_headers={}, request_body="",
        response_headers={}, response_body="{}", started_at=time.time(), session_id="s-1", notification_id="n-1"))
    environment = session_report(store, "s-1").environment
    assert environment["pull of notification urn:uuid:0 (BSN 999993653, requested)"] == "not pulled yet"
    assert environment["pull of notification urn:uuid:1 (BSN 999993653, requested)"] == \
        "1 of 2 offered pulled, 0 documents"
    assert not any(key.startswith("pull") for key in session_report(store, "s-2").environment)  # sent none


def test_the_report_sums_up_the_pulls_of_the_newest_sent_notifications(store: Store) -> None:
    from speeltuin.records import Notification, NotificationOrigin
    from speeltuin.session_report import MAX_PULL_LINES

    for n in range(MAX_PULL_LINES + 1):
        store.add_notification(Notification(
            id=f"n-{n}", session_id="s-1", origin=NotificationOrigin.SENT, identifier=f"urn:uuid:{n}",
            group_identifier="urn:uuid:g", authorization_base=f"b-{n}", patient_bsn="999993653",
            owner_ura="90000202", period_end=time.time() + 60, status="requested", task={}, created_at=1000.0 + n))
    lines = {k: v for k, v in session_report(store, "s-1").environment.items() if k.startswith("pull")}
    assert len(lines) == MAX_PULL_LINES + 1 and lines["pulls of older notifications"] == "1 more, not listed here"
    assert not any("urn:uuid:0 " in key for key in lines)  # the oldest is left out
