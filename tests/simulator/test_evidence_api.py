"""The evidence API over real HTTP: a session's exchanges and report, opened by the admin key or by the session's
own access key (only its own session), filters and pages checked, the key shown once and kept as a hash."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator
from xml.etree import ElementTree as ET

import pytest
import requests
from sqlalchemy import text

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange
from speeltuin.store import hash_token
from tests.conftest import LiveNode, complete_session, start_live_node
from validators.findings import Finding
from validators.rules.structure import check_structure

ERROR = Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code")
WARNING = Finding("BUNDLE-010", "warning", "no text", "Bundle.entry[1]")
REPORTS = ("html", "json", "junit.xml", "testreport.json")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """One real simulator for the module, with a SQLite store, sessions 'ev-a' and 'ev-b' and their exchanges."""
    db = sqlite_url(tmp_path_factory.mktemp("evidence") / "sim.sqlite")
    live, server = start_live_node(db, ura="90000101", client_id="sim", name="sim")
    live.keys = {}  # type: ignore[attr-defined]
    for session_id, role in (("ev-a", "receiver"), ("ev-b", "sender")):
        created = live.api("POST", "/sessions", json=complete_session(role, id=session_id, name=f"Vendor {session_id}",
                                                                      vendor_ura="90000202"))
        assert created.status_code == 201, created.text
        live.keys[session_id] = created.json()["access_key"]  # type: ignore[attr-defined]
    yield live
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    live.runtime.store.close()


@pytest.fixture(scope="module")
def recorded(node: LiveNode) -> dict[str, int]:
    """Exchanges of ev-a (and one of ev-b) recorded the way the proxy records them; their ids by name."""
    store = node.runtime.store

    def add(name: str, session_id: str, tag: str, started_at: float, *findings: Finding) -> tuple[str, int]:
        return name, store.add_exchange(Exchange(
            source="proxy", tag=tag, direction="to-simulator", method="GET",  # type: ignore[arg-type]
            url=f"{node.url}/s/{session_id}/fhir/{name}", status=200, request_headers={}, request_body="",
            response_headers={}, response_body="{}", started_at=started_at, session_id=session_id,
            findings=list(findings)))

    return dict([add("token", "ev-a", "token-request", 1000.0),
                 add("search-error", "ev-a", "search", 2000.0, ERROR, WARNING),
                 add("read-warning", "ev-a", "read", 3000.0, WARNING),
                 add("search-plain", "ev-a", "search", 4000.0),
                 add("other-session", "ev-b", "search", 2500.0, ERROR)])


def get(node: LiveNode, path: str, headers: dict[str, str] | None = None, **params: object) -> requests.Response:
    return requests.get(f"{node.url}/api{path}", headers=headers or {}, params=params,  # type: ignore[arg-type]
                        timeout=30)


def key_of(node: LiveNode, session_id: str) -> dict[str, str]:
    return {"X-Session-Key": node.keys[session_id]}  # type: ignore[attr-defined]


def admin(node: LiveNode) -> dict[str, str]:
    return {"X-Admin-Key": node.config.admin_key}


def test_the_admin_key_sees_every_session(node: LiveNode, recorded: dict[str, int]) -> None:
    a = get(node, "/sessions/ev-a/exchanges", admin(node))
    b = get(node, "/sessions/ev-b/exchanges", admin(node))
    assert a.status_code == b.status_code == 200
    assert [ex["id"] for ex in a.json()["exchanges"]] == [recorded[n] for n in
                                                          ("token", "search-error", "read-warning", "search-plain")]
    assert [ex["id"] for ex in b.json()["exchanges"]] == [recorded["other-session"]]
    for session_id in ("ev-a", "ev-b"):
        report = get(node, f"/sessions/{session_id}/report.json", admin(node))
        assert report.status_code == 200 and report.json()["scenarios"][0]["session_id"] == session_id
    missing = get(node, "/sessions/nope/exchanges", admin(node))
    assert missing.status_code == 404 and missing.json() == {"error": "no session 'nope'"}


def test_a_session_key_reads_its_own_exchanges(node: LiveNode, recorded: dict[str, int]) -> None:
    answer = get(node, "/sessions/ev-a/exchanges", key_of(node, "ev-a"))
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["next"] is None and len(body["exchanges"]) == 4
    shown = body["exchanges"][1]
    assert (shown["id"], shown["tag"], shown["direction"], shown["session_id"]) == (
        recorded["search-error"], "search", "to-simulator", "ev-a")
    assert shown["findings"] == [{**ERROR.to_dict(), "suppressed": None}, {**WARNING.to_dict(), "suppressed": None}]


def test_a_session_key_reads_its_own_report_in_every_format(node: LiveNode, recorded: dict[str, int]) -> None:
    answers = {kind: get(node, f"/sessions/ev-a/report.{kind}", key_of(node, "ev-a")) for kind in REPORTS}
    assert {kind: a.status_code for kind, a in answers.items()} == dict.fromkeys(REPORTS, 200)
    assert {kind: a.headers["Content-Type"].split(";")[0] for kind, a in answers.items()} == {
        "html": "text/html", "json": "application/json", "junit.xml": "application/xml",
        "testreport.json": "application/fhir+json"}
    html = answers["html"].text
    assert "ev-a" in html and "Coding without system" in html and "other-session" not in html
    report = answers["json"].json()
    assert report["status"] == "failed" and report["counts"]["error"] == 1
    assert [s["session_id"] for s in report["scenarios"]] == ["ev-a"]
    suite = ET.fromstring(answers["junit.xml"].content)
    assert suite.tag == "testsuites" and suite.get("failures") == "1"
    assert suite.find("testsuite").get("name").startswith("session-ev-a ")
    testreport = answers["testreport.json"].json()
    assert check_structure(testreport) == []
    assert testreport["resourceType"] == "TestReport" and testreport["result"] == "fail"
    unknown = get(node, "/sessions/ev-a/report.pdf", key_of(node, "ev-a"))
    assert unknown.status_code == 404 and "report.junit.xml" in unknown.json()["error"]


def test_the_report_of_a_clean_session_passes(node: LiveNode, recorded: dict[str, int]) -> None:
    node.api("PUT", "/sessions/ev-b/suppressions/BUNDLE-009", json={"reason": "agreed local code system"})
    try:
        testreport = get(node, "/sessions/ev-b/report.testreport.json", key_of(node, "ev-b")).json()
        assert testreport["result"] == "pass" and check_structure(testreport) == []
        html = get(node, "/sessions/ev-b/report.html", key_of(node, "ev-b")).text
        assert "agreed local code system" in html
        shown = get(node, "/sessions/ev-b/exchanges", key_of(node, "ev-b")).json()["exchanges"][0]
        assert shown["findings"][0]["suppressed"] == "agreed local code system"
    finally:
        node.api("DELETE", "/sessions/ev-b/suppressions/BUNDLE-009")


def test_a_session_key_does_not_open_another_session(node: LiveNode, recorded: dict[str, int]) -> None:
    for path in ["/sessions/ev-b/exchanges", *(f"/sessions/ev-b/report.{kind}" for kind in REPORTS),
                 "/sessions/nope/exchanges"]:
        answer = get(node, path, key_of(node, "ev-a"))
        assert answer.status_code == 403 and "another session" in answer.json()["error"], path
    # nor the admin API, which says what the session key does open
    for path in ("/sessions/ev-a", "/sessions"):
        refused = get(node, path, key_of(node, "ev-a"))
        assert refused.status_code == 401 and "needs the admin key (X-Admin-Key)" in refused.json()["error"]
        assert "/exchanges" in refused.json()["error"]


def test_no_key_or_a_wrong_key_is_401(node: LiveNode, recorded: dict[str, int]) -> None:
    for headers in ({}, {"X-Session-Key": "wrong"}, {"X-Session-Key": ""}, {"X-Admin-Key": "wrong"},
                    {"X-Session-Key": node.keys["ev-a"] + "x"}):  # type: ignore[attr-defined]
        for path in ("/sessions/ev-a/exchanges", "/sessions/ev-a/report.json"):
            answer = get(node, path, headers)
            assert answer.status_code == 401, (headers, path)
            assert "X-Session-Key" in answer.json()["error"]


def test_filters(node: LiveNode, recorded: dict[str, int]) -> None:
    def ids(**params: object) -> list[int]:
        answer = get(node, "/sessions/ev-a/exchanges", key_of(node, "ev-a"), **params)
        assert answer.status_code == 200, answer.text
        return [ex["id"] for ex in answer.json()["exchanges"]]

    assert ids(tag="token-request") == [recorded["token"]]
    assert ids(tag="search") == [recorded["search-error"], recorded["search-plain"]]
    assert ids(severity="error") == [recorded["search-error"]]
    assert ids(severity="warning") == [recorded["search-error"], recorded["read-warning"]]
    assert ids(severity="info") == []
    assert ids(since=2500) == [recorded["read-warning"], recorded["search-plain"]]
    assert ids(since=2500, tag="search") == [recorded["search-plain"]]


def test_pages_walk_every_exchange_once(node: LiveNode, recorded: dict[str, int]) -> None:
    seen: list[int] = []
    after = None
    for _ in range(10):
        params = {"limit": 1} | ({"after": after} if after is not None else {})
        body = get(node, "/sessions/ev-a/exchanges", key_of(node, "ev-a"), **params).json()
        assert len(body["exchanges"]) == 1
        seen += [ex["id"] for ex in body["exchanges"]]
        after = body["next"]
        if after is None:
            break
    assert seen == [recorded[n] for n in ("token", "search-error", "read-warning", "search-plain")]
    pages = get(node, "/sessions/ev-a/exchanges", key_of(node, "ev-a"), limit=3).json()
    assert len(pages["exchanges"]) == 3 and pages["next"] == recorded["read-warning"]


@pytest.mark.parametrize("param,value", [("limit", "0"), ("limit", "1001"), ("limit", "many"), ("severity", "fatal"),
                                         ("since", "yesterday"), ("since", "inf"), ("tag", "gossip"), ("after", "x"),
                                         ("after", "1" * 30)])
def test_bad_parameters_are_400_naming_the_parameter(node: LiveNode, param: str, value: str) -> None:
    answer = get(node, "/sessions/ev-a/exchanges", key_of(node, "ev-a"), **{param: value})
    assert answer.status_code == 400 and answer.json()["error"].startswith(f"{param}: "), answer.text


def test_the_access_key_is_shown_once_and_kept_only_as_a_hash(node: LiveNode) -> None:
    created = node.api("POST", "/sessions", json=complete_session("sender", id="ev-c", vendor_ura="90000202"))
    assert created.status_code == 201, created.text
    key = created.json()["access_key"]
    assert len(key) >= 43 and "X-Session-Key" in created.json()["access_key_note"]
    assert get(node, "/sessions/ev-c/exchanges", {"X-Session-Key": key}).status_code == 200
    for path in ("/sessions/ev-c", "/sessions"):
        shown = node.api("GET", path)
        assert shown.status_code == 200 and key not in shown.text and "access_key" not in shown.text
    store = node.runtime.store
    with store.engine.connect() as c:
        rows = c.execute(text("SELECT session_id, key_hash FROM session_keys")).all()
    assert ("ev-c", hash_token(key)) in rows and key not in json.dumps([list(r) for r in rows])
    database = store.url[len("sqlite:///"):]
    stored = b"".join(p.read_bytes() for p in Path(database).parent.iterdir())  # the file and its WAL
    assert key.encode() not in stored and hash_token(key).encode() in stored
