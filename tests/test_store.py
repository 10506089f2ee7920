"""The store keeps what was recorded across a restart and refuses replays, on SQLite and PostgreSQL."""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange, Notification, NotificationOrigin, Role, Session, SessionConfig
from speeltuin.store import PullMade, Store
from tests.db import database_url
from validators.findings import Finding

CONFIG = SessionConfig(vendor_ura="90000202", vendor_client_id="vendor-s-1", own_ura="90000101", own_client_id="sim")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    yield from database_url(request.param, tmp_path)


def test_everything_survives_a_restart(url: str) -> None:
    store = Store(url)
    store.create_session(Session("s-1", "one", Role.RECEIVER, CONFIG, time.time()))
    store.add_notification(Notification(
        id="n-1", session_id="s-1", origin=NotificationOrigin.SENT, identifier="urn:uuid:1", group_identifier="urn:uuid:2",
        authorization_base="b", patient_bsn="999993653", owner_ura="90000202", period_end=time.time() + 60,
        status="requested", task={"resourceType": "Task"}))
    store.add_token("secret-token", session_id="s-1", kind="pull", subject_ura="90000202",
                    expires_at=time.time() + 60, notification_id="n-1")
    store.add_exchange(Exchange(source="proxy", tag="search", direction="to-simulator", method="GET",
                                url="http://x/s/s-1/fhir/Condition", status=200, request_headers={},
                                request_body="", response_headers={}, response_body="{}", started_at=time.time(),
                                session_id="s-1", findings=[Finding("X-1", "warning", "m", "loc")],
                                notification_id="n-1"))
    store.set_suppression("s-1", "BUNDLE-010", "local code system agreed")
    store.close()

    again = Store(url)
    assert again.list_suppressions("s-1") == {"BUNDLE-010": "local code system agreed"}
    assert again.get_session("s-1").config == CONFIG
    assert again.find_notification("s-1", NotificationOrigin.SENT, authorization_base="b").task == {"resourceType": "Task"}
    assert again.get_token("secret-token")["notification_id"] == "n-1"
    assert again.get_token("other") is None
    [exchange] = again.list_exchanges(["s-1"])
    assert exchange.findings == [Finding("X-1", "warning", "m", "loc")]
    assert exchange.notification_id == "n-1"  # the pull's token was of this notification
    assert again.pulls_by_notification("s-1") == {"n-1": [PullMade("search", "GET", "http://x/s/s-1/fhir/Condition",
                                                                   200, exchange.started_at)]}
    assert again.delete_session("s-1") and again.list_exchanges(["s-1"]) == []
    assert again.pulls_by_notification("s-1") == {}
    again.close()


def test_token_is_stored_only_as_hash(tmp_path) -> None:
    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    store.create_session(Session("s-1", "one", Role.RECEIVER, CONFIG, time.time()))
    store.add_token("plain-secret-value", session_id="s-1", kind="pull", subject_ura="1", expires_at=1.0)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # database and its WAL
    assert b"plain-secret-value" not in stored
    assert store.get_token("plain-secret-value") is not None


def test_jti_replay_detected_per_session_for_values_of_any_length(url: str) -> None:
    store = Store(url)
    for session_id in ("s-1", "s-2"):
        store.create_session(Session(session_id, session_id, Role.RECEIVER, CONFIG, time.time()))
    long_jti, long_issuer = "j" * 5000, "client-" + "x" * 300
    assert store.use_jti("s-1", "client-a", "j1", time.time() + 60)
    assert not store.use_jti("s-1", "client-a", "j1", time.time() + 60)  # a replay in that session
    assert store.use_jti("s-1", "client-b", "j1", time.time() + 60)  # another issuer
    assert store.use_jti("s-2", "client-a", "j1", time.time() + 60)  # another session: its own jtis
    assert store.use_jti("s-1", long_issuer, long_jti, time.time() + 60)
    assert not store.use_jti("s-1", long_issuer, long_jti, time.time() + 60)
    assert store.use_jti("s-1", "client-a", "j1" + "x", time.time() + 60)
    store.close()


def test_opaque_task_values_of_any_length_are_kept(url: str) -> None:
    store = Store(url)
    store.create_session(Session("s-1", "one", Role.RECEIVER, CONFIG, time.time()))
    base, identifier = "b" * 1000, "urn:uuid:" + "1" * 400
    store.add_notification(Notification(
        id="n-1", session_id="s-1", origin=NotificationOrigin.RECEIVED, identifier=identifier,
        group_identifier=identifier, authorization_base=base, patient_bsn="999993653", owner_ura="90000202",
        period_end=time.time() + 60, status="requested", task={"resourceType": "Task"}))
    found = store.find_notification("s-1", NotificationOrigin.RECEIVED, authorization_base=base)
    assert found is not None and found.identifier == identifier
    store.close()


def test_an_older_postgresql_store_gets_its_opaque_columns_widened(tmp_path) -> None:
    from sqlalchemy import create_engine, text

    for url in database_url("postgresql", tmp_path):
        engine = create_engine(url)
        with engine.begin() as c:  # the table as stores made before had it
            c.execute(text("CREATE TABLE sessions (id VARCHAR(64) PRIMARY KEY, name VARCHAR(200) NOT NULL, "
                           "vendor_role VARCHAR(16) NOT NULL, config TEXT NOT NULL, created_at FLOAT NOT NULL)"))
            c.execute(text("CREATE TABLE notifications (id VARCHAR(64) PRIMARY KEY, session_id VARCHAR(64) NOT NULL "
                           "REFERENCES sessions(id) ON DELETE CASCADE, direction VARCHAR(8) NOT NULL, identifier "
                           "VARCHAR(200) NOT NULL, group_identifier VARCHAR(200) NOT NULL, authorization_base "
                           "VARCHAR(200) NOT NULL, patient_bsn VARCHAR(16) NOT NULL, owner_ura VARCHAR(16) NOT NULL, "
                           "period_end FLOAT NOT NULL, status VARCHAR(16) NOT NULL, task TEXT NOT NULL, workflow_task "
                           "TEXT, delivery TEXT, pull_status VARCHAR(16), pull_summary TEXT, created_at FLOAT NOT NULL)"))
        engine.dispose()
        store = Store(url)
        store.create_session(Session("s-1", "one", Role.RECEIVER, CONFIG, time.time()))
        store.add_notification(Notification(
            id="n-1", session_id="s-1", origin=NotificationOrigin.RECEIVED, identifier="urn:uuid:1",
            group_identifier="urn:uuid:2", authorization_base="b" * 1000, patient_bsn="999993653",
            owner_ura="90000202", period_end=time.time() + 60, status="requested", task={"resourceType": "Task"}))
        assert store.find_notification("s-1", NotificationOrigin.RECEIVED, authorization_base="b" * 1000) is not None
        store.close()


def test_run_steps_and_the_run_queue_on_both_backends(url: str) -> None:
    """The stored waiting state and the API's run queue, on SQLite and PostgreSQL, across a restart."""
    store = Store(url)
    store.create_session(Session("q-1", "Q", Role.RECEIVER, SessionConfig("12345678", "v", "90000101", "s"), 1.0))
    store.queue_run("run-a", "q-1", ["RCV-01"], title="asked")
    store.queue_run("run-b", "q-1", [], title="asked again")
    store.record_step("run-a", "RCV-01", "notify", status="pending", title="Notify", position=0)
    store.record_step("run-a", "RCV-01", "notify", status="waiting", waiting_for="the pull", wait_until=9.5,
                      instruction="pull now")
    store.close()
    store = Store(url)
    [step] = store.run_steps("run-a")
    assert (step["status"], step["waiting_for"], step["wait_until"], step["instruction"]) == (
        "waiting", "the pull", 9.5, "pull now")
    assert store.get_run("run-a")["status"] == "queued" and store.queued_session("run-a") == "q-1"  # type: ignore
    first, second, none = store.take_queued_run(), store.take_queued_run(), store.take_queued_run()
    assert (first["run_id"], first["scenario_ids"]) == ("run-a", ["RCV-01"])  # type: ignore[index]
    assert (second["run_id"], second["scenario_ids"]) == ("run-b", []) and none is None  # type: ignore[index]
    store.close()


def test_the_published_catalogue_is_replaced_whole(tmp_path) -> None:
    from scenarios.catalogue import all_scenarios
    from scenarios.manager import publish_catalogue

    store = Store(sqlite_url(tmp_path / "s.sqlite"))
    store.publish_scenarios([{"id": "X-01", "vendor_role": "sender", "kind": "happy", "title": "t", "outcome": "o"}])
    publish_catalogue(store)
    published = store.published_scenarios()
    assert [s["id"] for s in published] == [cls.id for cls in all_scenarios()]
    assert [s["id"] for s in store.published_scenarios("sender")] == [cls.id for cls in all_scenarios()
                                                                     if cls.vendor_role == "sender"]
    assert all(s["title"] and s["outcome"] for s in published)
    store.close()


def test_unmatched_exchanges_are_paged_newest_or_oldest_first(url: str) -> None:
    store = Store(url)
    store.create_session(Session("s-1", "one", Role.RECEIVER, CONFIG, time.time()))

    def add(session_id: str | None) -> int:
        return store.add_exchange(Exchange(source="proxy", tag="search", direction="to-simulator", method="GET",
                                           url="http://x/s/nowhere/fhir/Condition", status=404, request_headers={},
                                           request_body="", response_headers={}, response_body="",
                                           started_at=time.time(), session_id=session_id))

    first, _, second, third = add(None), add("s-1"), add(None), add(None)
    page, cursor = store.query_exchanges(None, limit=2, newest_first=True)
    assert [ex.id for ex in page] == [third, second] and cursor == second
    rest, end = store.query_exchanges(None, limit=2, after=cursor, newest_first=True)
    assert [ex.id for ex in rest] == [first] and end is None
    oldest, _ = store.query_exchanges(None)
    assert [ex.id for ex in oldest] == [first, second, third]
    store.close()


def test_runs_are_listed_per_session_from_their_summaries(url: str) -> None:
    store = Store(url)
    try:
        store.queue_run("run-a", "s-1", ["RCV-01"], title="asked in s-1")
        result = {"id": "run-b", "title": "catalogue", "status": "failed", "counts": {"error": 3, "warning": 1},
                  "scenarios": [{"id": "RCV-01", "status": "passed"}, {"id": "RCV-02", "status": "failed"}]}
        store.save_run("run-b", time.time() + 1, time.time() + 2, result)
        store.record_step("run-b", "RCV-01", "notify", status="passed", title="t", position=0, session_id="s-1")
        store.record_step("run-b", "RCV-02", "notify", status="passed", title="t", position=0, session_id="s-2")
        store.save_run("run-c", time.time() - 5, time.time() - 4, {**result, "id": "run-c", "title": "older"})
        store.record_step("run-c", "RCV-01", "notify", status="passed", title="t", position=0, session_id="s-2")

        listed = store.session_runs("s-1")
        assert [r["run_id"] for r in listed] == ["run-b", "run-a"]  # newest first; asked for in it, or stepped in it
        assert {k: listed[0][k] for k in ("title", "status", "scenarios", "passed", "errors", "warnings")} == {
            "title": "catalogue", "status": "failed", "scenarios": 2, "passed": 1, "errors": 3, "warnings": 1}
        assert listed[1]["status"] == "queued" and listed[1]["finished_at"] is None
        assert {s: r["run_id"] for s, r in store.latest_runs().items()} == {"s-1": "run-b", "s-2": "run-b"}

        # a run saved before summaries were kept gets one, from its result, when it is first listed
        with store.engine.begin() as c:
            from speeltuin.store import run_summaries
            c.execute(run_summaries.delete())
        assert [r["title"] for r in store.session_runs("s-2")] == ["catalogue", "older"]
        assert store.session_runs("s-3") == []
    finally:
        store.close()


def _open_and_close(url: str) -> None:
    Store(url).close()


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The simulator, the proxy and the test manager start together on a new store: none fails because another
    one made a table between its check and its CREATE."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for round_ in range(3):
        url = sqlite_url(tmp_path / f"new-{round_}.sqlite")
        processes = [context.Process(target=_open_and_close, args=(url,)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [process.exitcode for process in processes] == [0, 0, 0, 0]
