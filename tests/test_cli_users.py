"""`speeltuin users add/list/remove` over real subprocesses: case managers' accounts for the web UI, kept as argon2
hashes only; mistakes are one line with exit status 2."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange, Role, Session, SessionConfig
from speeltuin.store import AccountError, Store
from tests.db import database_url
from validators.findings import Finding

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


def speeltuin(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, timeout=60)


def stored_hashes(db: str) -> dict[str, str]:
    engine = create_engine(db)
    with engine.connect() as c:
        rows = dict(c.execute(text("SELECT username, password_hash FROM users")).all())
    engine.dispose()
    return rows


def test_add_list_and_remove_a_case_manager(tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    added = speeltuin("users", "add", "alice", "--db", db, "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "alice" in added.stdout and PASSWORD not in added.stdout + added.stderr
    assert speeltuin("users", "add", "bob.smith@example.org", "--db", db, "--password-stdin",
                     stdin="another long password\r\n").returncode == 0

    hashes = stored_hashes(db)
    assert set(hashes) == {"alice", "bob.smith@example.org"}
    assert all(h.startswith("$argon2") for h in hashes.values())
    assert PASSWORD not in hashes["alice"] and hashes["alice"] != hashes["bob.smith@example.org"]
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the database and its WAL
    assert PASSWORD.encode() not in stored

    store = Store(db)  # the store checks the password (what the web UI's sign-in uses)
    assert store.verify_user("alice", PASSWORD)
    assert store.verify_user("bob.smith@example.org", "another long password")  # the line ending is not in it
    assert not store.verify_user("alice", PASSWORD + " ") and not store.verify_user("alice", "")
    assert not store.verify_user("nobody", PASSWORD)
    store.close()

    listed = speeltuin("users", "list", "--db", db)
    assert listed.returncode == 0
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["alice", "bob.smith@example.org"]
    as_json = json.loads(speeltuin("users", "list", "--db", db, "--format", "json").stdout)
    assert [u["username"] for u in as_json] == ["alice", "bob.smith@example.org"]
    assert all(set(u) == {"username", "created_at"} for u in as_json)  # never the hash

    removed = speeltuin("users", "remove", "alice", "--db", db)
    assert removed.returncode == 0 and "alice" in removed.stdout
    assert set(stored_hashes(db)) == {"bob.smith@example.org"}


def test_mistakes_are_one_line_with_exit_status_2(tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    assert speeltuin("users", "add", "alice", "--db", db, "--password-stdin", stdin=PASSWORD).returncode == 0
    cases = [
        (["add", "bob", "--password-stdin"], "\n", "the password is empty"),
        (["add", "bob", "--password-stdin"], "short-pass1\n", "at least 12 characters"),
        (["add", "bad name", "--password-stdin"], PASSWORD, "the username must be"),
        (["add", "alice", "--password-stdin"], "a different long password", "a user 'alice' exists already"),
        (["remove", "nobody"], None, "no user 'nobody'"),
    ]
    for args, stdin, complaint in cases:
        result = speeltuin("users", *args, "--db", db, stdin=stdin)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("speeltuin: ") and complaint in lines[0], result.stderr
    assert set(stored_hashes(db)) == {"alice"}  # nothing changed by a mistake


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


def test_what_the_web_ui_keeps_in_the_store(url: str) -> None:
    """Accounts, the cookie signing key (made once, kept across a restart) and the sessions' activity, on SQLite
    and PostgreSQL."""
    store = Store(url)
    store.add_user("alice", PASSWORD)
    with pytest.raises(AccountError, match="exists already"):
        store.add_user("alice", "another long password")
    with pytest.raises(AccountError, match="at least 12"):
        store.add_user("bob", "short")
    assert store.verify_user("alice", PASSWORD) and not store.verify_user("alice", "wrong password!")
    assert store.get_user("alice")["username"] == "alice" and store.get_user("bob") is None
    secret = store.instance_secret("web-ui-cookie-key")
    assert len(secret) >= 60 and store.instance_secret("other") != secret

    config = SessionConfig(vendor_ura="90000202", vendor_client_id="v", own_ura="90000101", own_client_id="sim")
    for session_id in ("s-1", "s-2", "s-3"):
        store.create_session(Session(session_id, session_id, Role.RECEIVER, config, time.time()))
    for session_id, started_at, findings in (
            ("s-1", 100.0, [Finding("A-1", "error", "m", "l"), Finding("A-2", "error", "m", "l")]),
            ("s-1", 300.0, [Finding("A-1", "error", "m", "l"), Finding("W-1", "warning", "m", "l")]),
            ("s-2", 200.0, [])):
        store.add_exchange(Exchange(source="proxy", tag="search", direction="to-simulator",  # type: ignore[arg-type]
                                    method="GET", url="http://x/", status=200, request_headers={}, request_body="",
                                    response_headers={}, response_body="", started_at=started_at,
                                    session_id=session_id, findings=findings))
    store.set_suppression("s-1", "A-2", "agreed")  # not counted
    assert store.session_activity() == {"s-1": {"exchanges": 2, "errors": 2, "last": 300.0},
                                        "s-2": {"exchanges": 1, "errors": 0, "last": 200.0}}
    assert store.session_activity(["s-2", "s-3"]) == {"s-2": {"exchanges": 1, "errors": 0, "last": 200.0}}
    assert store.remove_user("alice") and not store.remove_user("alice")
    store.close()

    again = Store(url)
    assert again.instance_secret("web-ui-cookie-key") == secret
    assert again.list_users() == []
    again.close()
