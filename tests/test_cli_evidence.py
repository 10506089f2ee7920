"""`speeltuin report` and `speeltuin exchanges` over a real subprocess against a store file (no server)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange
from speeltuin.store import Store
from tests.conftest import complete_session_options
from validators.findings import Finding
from validators.rules.structure import check_structure

ROOT = Path(__file__).resolve().parents[1]
ERROR = Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code")


def speeltuin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with session 'cli-ev' made by `session create`, and two exchanges (one with an error finding)."""
    url = sqlite_url(tmp_path_factory.mktemp("cli-evidence") / "s.sqlite")
    created = speeltuin("session", "create", "--db", url, "--id", "cli-ev", "--name", "Vendor Z",
                        *complete_session_options("receiver"), "--vendor-ura", "12345678")
    assert created.returncode == 0, created.stderr
    store = Store(url)
    for path, started_at, findings in (("Patient", 1000.0, []), ("Condition", 2000.0, [ERROR])):
        store.add_exchange(Exchange(
            source="proxy", tag="search", direction="to-simulator", method="GET",  # type: ignore[arg-type]
            url=f"http://sim.test/s/cli-ev/fhir/{path}", status=200, request_headers={}, request_body="",
            response_headers={}, response_body="{}", started_at=started_at, session_id="cli-ev", findings=findings))
    store.close()
    return url


def test_session_create_prints_the_access_key_once(tmp_path) -> None:
    url = sqlite_url(tmp_path / "s.sqlite")
    text = speeltuin("session", "create", "--db", url, "--id", "k-1", "--name", "n",
                     *complete_session_options("sender"), "--vendor-ura", "12345678")
    assert text.returncode == 0, text.stderr
    [key_line] = [line for line in text.stdout.splitlines() if line.strip().startswith("access_key: ")]
    key = key_line.split(": ", 1)[1]
    assert len(key) >= 43 and "Keep this access key" in text.stdout
    as_json = speeltuin("session", "create", "--db", url, "--id", "k-2", "--name", "n",
                        *complete_session_options("sender"), "--vendor-ura", "12345678", "--format", "json")
    view = json.loads(as_json.stdout)
    assert len(view["access_key"]) >= 43 and view["access_key"] != key and "Keep" in view["access_key_note"]
    shown = speeltuin("session", "show", "k-1", "--db", url)
    assert shown.returncode == 0 and key not in shown.stdout and "access_key" not in shown.stdout
    store = Store(url)
    assert store.session_key_opens("k-1", key) and store.session_of_key(view["access_key"]) == "k-2"
    store.close()


def test_exchanges_as_text(db: str) -> None:
    listed = speeltuin("exchanges", "--db", db, "--session", "cli-ev")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    first = lines[0].split("\t")
    assert first[1:] == ["1970-01-01 00:16:40.000Z", "to-simulator", "search",
                         "GET http://sim.test/s/cli-ev/fhir/Patient", "200", "0 errors, 0 warnings, 0 infos"]
    assert lines[1].endswith("1 error, 0 warnings, 0 infos")
    assert lines[2] == "    error BUNDLE-009: Coding without system at Bundle.entry[0].resource.code"
    paged = speeltuin("exchanges", "--db", db, "--session", "cli-ev", "--limit", "1")
    assert paged.stdout.splitlines()[-1] == f"more: add --after {first[0]}"


def test_exchanges_as_json_with_filters(db: str) -> None:
    def page(*extra: str) -> dict:
        done = speeltuin("exchanges", "--db", db, "--session", "cli-ev", "--format", "json", *extra)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    everything = page()
    assert [ex["url"].rsplit("/", 1)[1] for ex in everything["exchanges"]] == ["Patient", "Condition"]
    assert everything["next"] is None
    assert [ex["url"].rsplit("/", 1)[1] for ex in page("--severity", "error")["exchanges"]] == ["Condition"]
    assert [ex["url"].rsplit("/", 1)[1] for ex in page("--since", "1500")["exchanges"]] == ["Condition"]
    assert page("--tag", "read")["exchanges"] == []
    first = page("--limit", "1")
    assert len(first["exchanges"]) == 1 and first["next"] == first["exchanges"][0]["id"]
    assert page("--after", str(first["next"]))["exchanges"][0]["findings"][0]["rule"] == "BUNDLE-009"


@pytest.mark.parametrize("fmt", ["json", "html", "junit", "testreport"])
def test_report_to_a_file(db: str, tmp_path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    done = speeltuin("report", "--db", db, "--session", "cli-ev", "--format", fmt, "--out", str(out))
    assert done.returncode == 1, done.stderr  # the session has an error finding: the report fails
    assert done.stdout.strip() == f"failed: {fmt} report of session cli-ev written to {out}"
    written = out.read_text(encoding="utf-8")
    if fmt == "json":
        assert json.loads(written)["scenarios"][0]["session_id"] == "cli-ev"
    elif fmt == "html":
        assert "cli-ev" in written and "Coding without system" in written
    elif fmt == "junit":
        assert ET.fromstring(written.encode()).get("failures") == "1"
    else:
        resource = json.loads(written)
        assert resource["result"] == "fail" and check_structure(resource) == []


def test_report_to_stdout(db: str) -> None:
    done = speeltuin("report", "--db", db, "--session", "cli-ev", "--format", "testreport")
    assert done.returncode == 1 and json.loads(done.stdout)["resourceType"] == "TestReport"


@pytest.mark.parametrize("command", [
    ["report", "--session", "nope"],
    ["report", "--session", "nope", "--format", "junit", "--out", "/tmp/never-written.xml"],
    ["exchanges", "--session", "nope"],
])
def test_an_unknown_session_is_one_line(db: str, command: list[str]) -> None:
    done = speeltuin(*command, "--db", db)
    assert (done.returncode, done.stderr.strip(), done.stdout) == (2, "speeltuin: no session 'nope'", "")


def test_a_bad_filter_is_one_line(db: str) -> None:
    done = speeltuin("exchanges", "--db", db, "--session", "cli-ev", "--severity", "fatal")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "speeltuin: --severity must be one of error, warning, info, got 'fatal'"


def test_a_big_session_s_html_report_is_written_as_linked_pages(tmp_path) -> None:
    from tests.test_report_pages import EXCHANGES, SESSION, fill

    url = sqlite_url(tmp_path / "big.sqlite")
    store = Store(url)
    fill(store)
    store.close()
    out = tmp_path / "out" / "big.html"
    out.parent.mkdir()
    done = speeltuin("report", "--db", url, "--session", SESSION, "--out", str(out))
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == (f"failed: html report of session {SESSION} written to {out} and 2 more page(s) "
                                   "next to it, big-2.html to big-3.html")
    assert sorted(p.name for p in out.parent.iterdir()) == ["big-2.html", "big-3.html", "big.html"]
    middle = (out.parent / "big-2.html").read_text(encoding="utf-8")
    assert 'href="big.html" rel="first"' in middle and 'href="big-3.html" rel="last"' in middle
    assert "page 2 of 3</strong>" in middle and f"of {EXCHANGES})" in middle
    printed = speeltuin("report", "--db", url, "--session", SESSION)
    assert (printed.returncode, printed.stdout) == (2, "")
    assert printed.stderr.strip() == (f"speeltuin: the HTML report of session {SESSION} has 3 pages of 200 exchanges: "
                                      "write them to files with --out FILE")
    streamed = speeltuin("report", "--db", url, "--session", SESSION, "--format", "json")
    assert len(json.loads(streamed.stdout)["scenarios"][0]["exchanges"]) == EXCHANGES
