"""`speeltuin export-har` (issue 11): a session's exchanges as a HAR 1.2 file. A real store (SQLite and PostgreSQL)
with a token request, a FHIR search, a binary PDF and a failed exchange; the real command in a subprocess; the file
checked against the HAR 1.2 structure, for secrets and findings, and read back by mitmproxy's own HAR reader."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from mitmproxy.io import FlowReader

from speeltuin.cli import main
from speeltuin.defaults import sqlite_url
from speeltuin.har import Redaction, har_pieces, redacted_headers
from speeltuin.records import Exchange, FlowDirection, Role, Session, SessionConfig, Tag, body_from_bytes
from speeltuin.store import Store
from tests.db import database_url
from validators.findings import Finding

ROOT = Path(__file__).resolve().parents[1]
SESSION = "har-1"
CONFIG = SessionConfig(vendor_ura="90000202", vendor_client_id="vendor-har", own_ura="90000101", own_client_id="sim")
STARTED = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
# Secrets an older record (or a header the proxy does not know) may still hold whole; none may reach the file.
BEARER = "T" * 43
ADMIN_KEY, SESSION_KEY = "A" * 40, "S" * 43
COOKIE, SET_COOKIE = "cookievalue-0123456789", "setcookie-0123456789"
SECRETS = (BEARER, ADMIN_KEY, SESSION_KEY, COOKIE, SET_COOKIE)
ASSERTION = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ2ZW5kb3IifQ.[signature redacted]"  # as the proxy stored it
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"  # not UTF-8: kept as bytes
TOO_LONG = Finding("TOKEN-007", "error", "assertion lives too long", "exp")
NO_COUNT = Finding("SEARCH-004", "info", "no _count", "url")


def exchanges(session_id: str = SESSION) -> list[Exchange]:
    base = f"http://127.0.0.1:8080/s/{session_id}"
    return [
        Exchange(source="proxy", tag=Tag.TOKEN_REQUEST, direction=FlowDirection.TO_SIMULATOR, method="POST",
                 url=f"{base}/token", status=200,
                 request_headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"sid={COOKIE}"},
                 request_body="grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
                              f"client-assertion-type%3Ajwt-bearer&client_assertion={ASSERTION}",
                 response_headers={"Content-Type": "application/json", "Content-Length": "88",
                                   "Set-Cookie": f"ui={SET_COOKIE}; Path=/; HttpOnly; Secure, "
                                                 "lang=nl; Expires=Wed, 21 Oct 2026 07:28:00 GMT"},
                 response_body='{"access_token": "abcdef…[redacted]", "token_type": "Bearer", "expires_in": 300}',
                 started_at=STARTED, duration_ms=12.5, session_id=session_id, findings=[TOO_LONG]),
        Exchange(source="proxy", tag=Tag.SEARCH, direction=FlowDirection.TO_SIMULATOR, method="GET",
                 url=f"{base}/fhir/Condition?patient=Patient/p-1&_include=Condition:subject&_count=",
                 status=200, request_headers={"Authorization": f"Bearer {BEARER}", "X-Admin-Key": ADMIN_KEY,
                                              "X-Session-Key": SESSION_KEY, "Accept": "application/fhir+json"},
                 request_body="", response_headers={"Content-Type": "application/fhir+json; charset=utf-8"},
                 response_body='{\n  "resourceType": "Bundle",\n  "type": "searchset"\n}',
                 started_at=STARTED + 1, duration_ms=40.0, session_id=session_id, findings=[NO_COUNT]),
        Exchange(source="proxy", tag=Tag.BINARY, direction=FlowDirection.TO_VENDOR, method="GET",
                 url=f"{base}/fhir/Binary/letter-1", status=200,
                 request_headers={"Authorization": "Bearer abcdef…[redacted]", "Accept": "application/pdf"},
                 request_body="", response_headers={"Content-Type": "application/pdf"},
                 response_body=body_from_bytes(PDF), started_at=STARTED + 2, duration_ms=8.0,
                 session_id=session_id),
        Exchange(source="proxy", tag=Tag.NOTIFICATION, direction=FlowDirection.TO_VENDOR, method="POST",
                 url="https://vendor.test/fhir/Task", status=None,
                 request_headers={"Content-Type": "application/fhir+json"}, request_body='{"resourceType": "Task"}',
                 response_headers={}, response_body="", started_at=STARTED + 3,
                 error="Server connection to ('vendor.test', 443) failed: Connection refused", session_id=session_id),
    ]


def speeltuin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True, timeout=60)


def make_session(store: Store, session_id: str = SESSION) -> None:
    store.create_session(Session(session_id, "Vendor HAR", Role.RECEIVER, CONFIG, time.time()))
    store.set_suppression(session_id, TOO_LONG.rule, "clock skew agreed")
    store.add_exchanges(exchanges(session_id))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for url in database_url(request.param, tmp_path_factory.mktemp("har-store")):
        store = Store(url)
        make_session(store)
        store.close()
        yield url


@pytest.fixture(scope="module")
def exported(db: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("har") / "session.har"
    done = speeltuin("export-har", "--db", db, "--session", SESSION, str(out))
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode().strip() == f"HAR of session {SESSION} (4 exchanges) written to {out}"
    return out


# --- a structural check of HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) ---------------------------
# Per object: its fields, each with its type and whether it is required. Custom fields start with "_".
NUMBER = (int, float)
SPEC: dict[str, dict[str, tuple[Any, bool]]] = {
    "log": {"version": (str, True), "creator": ("creator", True), "browser": ("creator", False),
            "pages": (list, False), "entries": (["entry"], True)},
    "creator": {"name": (str, True), "version": (str, True)},
    "entry": {"pageref": (str, False), "startedDateTime": ("datetime", True), "time": (NUMBER, True),
              "request": ("request", True), "response": ("response", True), "cache": ("cache", True),
              "timings": ("timings", True), "serverIPAddress": (str, False), "connection": (str, False)},
    "request": {"method": (str, True), "url": ("url", True), "httpVersion": (str, True),
                "cookies": (["cookie"], True), "headers": (["pair"], True), "queryString": (["pair"], True),
                "postData": ("postData", False), "headersSize": ("size", True), "bodySize": ("size", True)},
    "response": {"status": (int, True), "statusText": (str, True), "httpVersion": (str, True),
                 "cookies": (["cookie"], True), "headers": (["pair"], True), "content": ("content", True),
                 "redirectURL": (str, True), "headersSize": ("size", True), "bodySize": ("size", True)},
    "cookie": {"name": (str, True), "value": (str, True), "path": (str, False), "domain": (str, False),
               "expires": ("datetime", False), "httpOnly": (bool, False), "secure": (bool, False)},
    "pair": {"name": (str, True), "value": (str, True)},
    "postData": {"mimeType": (str, True), "params": (["param"], False), "text": (str, False)},
    "param": {"name": (str, True), "value": (str, False), "fileName": (str, False), "contentType": (str, False)},
    "content": {"size": (int, True), "compression": (NUMBER, False), "mimeType": (str, True), "text": (str, False),
                "encoding": (str, False)},
    "cache": {"beforeRequest": (dict, False), "afterRequest": (dict, False)},
    "timings": {"blocked": ("optional-ms", False), "dns": ("optional-ms", False), "connect": ("optional-ms", False),
                "send": ("ms", True), "wait": ("ms", True), "receive": ("ms", True), "ssl": ("optional-ms", False)},
}


def har_problems(document: Any) -> list[str]:
    """What in `document` is not HAR 1.2: missing or mistyped fields, unknown fields not marked custom, times that
    do not add up; each as `path: problem`."""
    problems: list[str] = []

    def check(value: Any, kind: Any, path: str) -> None:
        if isinstance(kind, list):
            if not isinstance(value, list):
                problems.append(f"{path}: not an array")
            else:
                for n, item in enumerate(value):
                    check(item, kind[0], f"{path}[{n}]")
        elif kind in SPEC:
            check_object(value, kind, path)
        elif kind == "datetime":
            try:
                if datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None:
                    problems.append(f"{path}: no time zone in {value!r}")
            except (AttributeError, ValueError):
                problems.append(f"{path}: not an ISO 8601 date and time: {value!r}")
        elif kind == "url":
            if not isinstance(value, str) or not urlsplit(value).scheme or not urlsplit(value).netloc:
                problems.append(f"{path}: not an absolute URL: {value!r}")
        elif kind in ("size", "ms", "optional-ms"):
            lowest = 0 if kind == "ms" else -1
            if isinstance(value, bool) or not isinstance(value, NUMBER) or value < lowest:
                problems.append(f"{path}: not a number of at least {lowest}: {value!r}")
        elif isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            problems.append(f"{path}: not {kind}: {value!r}")

    def check_object(value: Any, kind: str, path: str) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: not an object")
            return
        fields = SPEC[kind]
        for name, (field_kind, required) in fields.items():
            if name in value:
                check(value[name], field_kind, f"{path}.{name}")
            elif required:
                problems.append(f"{path}: no {name}")
        for name in value:
            if name not in fields and name != "comment" and not name.startswith("_"):
                problems.append(f"{path}: {name} is no HAR 1.2 field (custom ones start with _)")
        if "comment" in value and not isinstance(value["comment"], str):
            problems.append(f"{path}.comment: not a string")
        if kind == "entry" and isinstance(value.get("timings"), dict):
            spent = sum(t for t in value["timings"].values() if isinstance(t, NUMBER) and t >= 0)
            if abs(spent - value.get("time", -1)) > 1e-6:
                problems.append(f"{path}.time: {value.get('time')!r} is not the sum of its timings, {spent}")

    if not isinstance(document, dict) or set(document) != {"log"}:
        return ["the document is not an object with one field, log"]
    check_object(document["log"], "log", "log")
    if document["log"].get("version") != "1.2":
        problems.append(f"log.version: {document['log'].get('version')!r}, not '1.2'")
    return problems


def test_the_checker_finds_what_is_not_har(exported: Path) -> None:
    """The structural check itself can fail: each mistake it is there for is found."""
    def broken(change: Any) -> list[str]:
        document = json.loads(exported.read_text(encoding="utf-8"))
        change(document["log"]["entries"][0])
        return har_problems(document)

    assert har_problems({"entries": []}) == ["the document is not an object with one field, log"]
    assert broken(lambda e: e.pop("cache")) == ["log.entries[0]: no cache"]
    assert broken(lambda e: e["timings"].update(send=-1)) == [
        "log.entries[0].timings.send: not a number of at least 0: -1"]
    assert broken(lambda e: e["timings"].update(wait=3)) == [
        "log.entries[0].time: 12.5 is not the sum of its timings, 3"]
    assert broken(lambda e: e.update(startedDateTime="2023-11-14T22:13:20")) == [
        "log.entries[0].startedDateTime: no time zone in '2023-11-14T22:13:20'"]
    assert broken(lambda e: e["request"].update(speeltuin={})) == [
        "log.entries[0].request: speeltuin is no HAR 1.2 field (custom ones start with _)"]
    assert broken(lambda e: e["request"]["headers"].append({"name": "X"})) == [
        "log.entries[0].request.headers[2]: no value"]
    assert broken(lambda e: e["response"].update(status="200")) == [
        "log.entries[0].response.status: not <class 'int'>: '200'"]


def test_the_file_is_har_1_2(exported: Path) -> None:
    text = exported.read_text(encoding="utf-8")
    document = json.loads(text)
    assert har_problems(document) == []
    log = document["log"]
    assert log["creator"]["name"] == "speeltuin" and log["creator"]["version"] == "0.1.0"
    assert log["_speeltuin"] == {"session": SESSION, "name": "Vendor HAR", "vendor_role": "receiver"}
    assert [(e["request"]["method"], e["request"]["url"]) for e in log["entries"]] == [
        (ex.method, ex.url) for ex in exchanges()]
    assert text == json.dumps(document, indent=2, ensure_ascii=False) + "\n"  # written whole, as it was streamed


def test_the_mapping_of_each_exchange(exported: Path) -> None:
    token, search, pdf, failed = json.loads(exported.read_text(encoding="utf-8"))["log"]["entries"]
    assert token["startedDateTime"] == "2023-11-14T22:13:20.250+00:00"
    assert datetime.fromisoformat(search["startedDateTime"]) == datetime.fromtimestamp(STARTED + 1, timezone.utc)
    assert (token["time"], token["timings"]["send"], token["timings"]["wait"], token["timings"]["receive"],
            token["timings"]["connect"]) == (12.5, 0, 12.5, 0, -1)
    posted = token["request"]["postData"]
    assert posted["mimeType"] == "application/x-www-form-urlencoded"
    assert posted["text"] == exchanges()[0].request_body
    assert posted["params"] == [
        {"name": "grant_type", "value": "client_credentials"},
        {"name": "client_assertion_type", "value": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        {"name": "client_assertion", "value": ASSERTION}]
    assert token["request"]["cookies"] == [{"name": "sid", "value": "cookie…[redacted]"}]
    assert token["response"]["cookies"] == [
        {"name": "ui", "value": "setcoo…[redacted]", "path": "/", "httpOnly": True, "secure": True},
        {"name": "lang", "value": "[redacted]", "expires": "2026-10-21T07:28:00+00:00"}]
    assert (token["response"]["status"], token["response"]["statusText"], token["response"]["bodySize"],
            token["response"]["content"]["size"]) == (200, "OK", 88, 88)
    assert json.loads(token["response"]["content"]["text"])["token_type"] == "Bearer"
    assert (token["request"]["headersSize"], token["request"]["bodySize"], token["request"]["httpVersion"]) == (
        -1, -1, "")

    assert search["request"]["queryString"] == [
        {"name": "patient", "value": "Patient/p-1"}, {"name": "_include", "value": "Condition:subject"},
        {"name": "_count", "value": ""}]
    assert "postData" not in search["request"] and search["request"]["bodySize"] == 0
    assert search["response"]["content"] == {
        "size": 53, "mimeType": "application/fhir+json; charset=utf-8", "text": exchanges()[1].response_body}
    assert search["response"]["bodySize"] == -1  # no Content-Length recorded: the size on the wire is unknown

    assert pdf["response"]["content"] == {"size": len(PDF), "mimeType": "application/pdf",
                                          "text": base64.b64encode(PDF).decode(), "encoding": "base64"}
    assert pdf["response"]["bodySize"] == len(PDF)

    assert failed["response"]["status"] == 0 and failed["response"]["statusText"] == ""
    assert failed["response"]["_error"] == exchanges()[3].error
    assert (failed["response"]["bodySize"], failed["time"], failed["timings"]["wait"]) == (-1, 0, 0)
    assert failed["response"]["content"] == {"size": 0, "mimeType": ""}  # no answer: no content
    assert failed["request"]["postData"] == {"mimeType": "application/fhir+json", "text": '{"resourceType": "Task"}'}
    assert all("_error" not in e["response"] for e in (token, search, pdf))


def test_the_findings_travel_in_a_custom_field(exported: Path) -> None:
    token, search, pdf, failed = json.loads(exported.read_text(encoding="utf-8"))["log"]["entries"]
    assert {key: token["_speeltuin"][key] for key in ("source", "tag", "direction")} == {
        "source": "proxy", "tag": "token-request", "direction": "to-simulator"}
    assert token["_speeltuin"]["findings"] == [{"rule": "TOKEN-007", "severity": "error",
                                                "message": "assertion lives too long", "location": "exp",
                                                "suppressed": "clock skew agreed"}]
    assert search["_speeltuin"]["findings"] == [{**NO_COUNT.to_dict(), "suppressed": None}]
    assert (pdf["_speeltuin"]["tag"], pdf["_speeltuin"]["direction"], pdf["_speeltuin"]["findings"]) == (
        "binary", "to-vendor", [])
    assert failed["_speeltuin"]["tag"] == "notification"


def test_no_secret_leaves_in_the_file(exported: Path) -> None:
    text = exported.read_text(encoding="utf-8")
    assert [secret for secret in SECRETS if secret in text] == []
    headers = {h["name"]: h["value"] for h in json.loads(text)["log"]["entries"][1]["request"]["headers"]}
    assert headers == {"Authorization": "Bearer TTTTTT…[redacted]", "X-Admin-Key": "AAAAAA…[redacted]",
                       "X-Session-Key": "SSSSSS…[redacted]", "Accept": "application/fhir+json"}
    pdf_headers = json.loads(text)["log"]["entries"][2]["request"]["headers"]
    assert pdf_headers[0] == {"name": "Authorization", "value": "Bearer abcdef…[redacted]"}  # not shortened twice


def test_mitmproxy_reads_it_back(exported: Path) -> None:
    with exported.open("rb") as file:
        flows = list(FlowReader(file).stream())
    assert [(f.request.method, f.request.url, f.response.status_code) for f in flows] == [
        (ex.method, ex.url, ex.status or 0) for ex in exchanges()]
    token = flows[0]
    assert token.request.urlencoded_form["client_assertion"] == ASSERTION
    assert token.request.timestamp_start == pytest.approx(STARTED)
    assert token.response.timestamp_end == pytest.approx(STARTED + 0.0125)
    assert json.loads(token.response.get_text())["expires_in"] == 300
    assert flows[1].request.headers["Authorization"] == "Bearer TTTTTT…[redacted]"
    assert flows[2].response.content == PDF and flows[3].error is None and flows[3].response.content == b""


def test_dash_writes_it_to_stdout(db: str, exported: Path) -> None:
    done = speeltuin("export-har", "--db", db, "--session", SESSION, "-")
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == exported.read_bytes()


def test_mistakes_are_one_line_and_overwrite_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Through the command's main function (the same code as the subprocess, quicker), on a store of its own."""
    db = sqlite_url(tmp_path / "s.sqlite")
    store = Store(db)
    make_session(store)
    store.close()
    folder = tmp_path / "out"
    folder.mkdir()

    def fails(*args: str, complaint: str) -> None:
        assert main(["export-har", "--db", db, *args]) == 2
        assert capsys.readouterr() == ("", f"speeltuin: {complaint}\n")

    out = folder / "session.har"
    fails("--session", "nope", str(out), complaint="no session 'nope'")
    assert not out.exists()
    out.write_text("keep me", encoding="utf-8")
    fails("--session", SESSION, str(out), complaint=f"{out} exists already; add --force to overwrite it")
    assert out.read_text(encoding="utf-8") == "keep me"
    fails("--session", SESSION, str(folder),
          complaint=f"{folder} is a folder; give the path of the file to write, e.g. {folder / 'session.har'}")
    fails("--session", SESSION, str(folder / "no" / "x.har"),
          complaint=f"cannot write {folder / 'no' / 'x.har'}: no folder {folder / 'no'}")
    assert main(["export-har", "--db", db, "--session", SESSION, "--force", str(out)]) == 0
    assert capsys.readouterr().out == f"HAR of session {SESSION} (4 exchanges) written to {out}\n"
    assert len(json.loads(out.read_text(encoding="utf-8"))["log"]["entries"]) == 4
    assert [p.name for p in folder.iterdir()] == ["session.har"]  # no partial file left next to it


def test_a_big_session_is_read_in_pages_and_written_as_it_goes(tmp_path: Path) -> None:
    """More exchanges than one page of the store holds all arrive, in order; the document is written entry by entry,
    each made only when it is reached."""
    from tests.test_report_pages import EXCHANGES, SESSION as BIG, fill

    url = sqlite_url(tmp_path / "big.sqlite")
    store = Store(url)
    ids = fill(store)
    store.close()
    out = tmp_path / "big.har"
    done = speeltuin("export-har", "--db", url, "--session", BIG, str(out))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert har_problems(document) == []
    assert [e["_speeltuin"]["id"] for e in document["log"]["entries"]] == ids and len(ids) == EXCHANGES

    def two_then_stop() -> Iterator[Exchange]:
        yield from exchanges()[:2]
        raise AssertionError("read past what was written")

    pieces = har_pieces(two_then_stop(), version="0", redaction=REDACTION)
    assert next(pieces).endswith('"entries": [')
    assert '"POST"' in next(pieces) and '"GET"' in next(pieces)
    with pytest.raises(AssertionError, match="read past"):
        next(pieces)


def _shorten(value: str) -> str:
    return "<short>"


REDACTION = Redaction(headers=lambda headers: {k: _shorten(v) if k == "Authorization" else v
                                               for k, v in headers.items()})


def test_headers_are_redacted_with_the_rule_given() -> None:
    """The kernel applies the redaction it is handed (here the proxy's own) where a secret may remain: credential
    headers and every cookie's value (attributes kept); what was shortened before stays as it is."""
    from proxy.redaction import redact_headers

    proxy_rule = Redaction(headers=redact_headers)
    assert redacted_headers({"Authorization": "Bearer abcdefghijk", "Accept": "x"}, proxy_rule) == {
        "Authorization": "Bearer abcdef…[redacted]", "Accept": "x"}
    assert redacted_headers({"Authorization": "Bearer [redacted]"}, proxy_rule) == {
        "Authorization": "Bearer [redacted]"}
    assert redacted_headers({"Cookie": "a=1234567; b=2", "Set-Cookie": "d=4; Path=/; Expires=Wed, 21 Oct 2026 "
                                                                      "07:28:00 GMT, e=[redacted]; Secure"},
                            proxy_rule) == {
        "Cookie": "a=123456…[redacted]; b=[redacted]",
        "Set-Cookie": "d=[redacted]; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT, e=[redacted]; Secure"}


def test_an_older_record_s_form_is_encoded_again() -> None:
    """Older records keep a form decoded, one parameter a line: the HAR has it as it was sent."""
    older = exchanges()[0]
    older.request_body = f"grant_type=client_credentials\nscope=a b\nclient_assertion={ASSERTION}"
    posted = har_pieces([older], version="0", redaction=REDACTION)
    entry = json.loads("".join(posted))["log"]["entries"][0]
    assert entry["request"]["postData"]["text"] == (
        "grant_type=client_credentials&scope=a+b&client_assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ2ZW5kb3IifQ."
        "%5Bsignature+redacted%5D")
    assert entry["request"]["postData"]["params"][1] == {"name": "scope", "value": "a b"}


def test_an_older_record_s_binary_body_is_only_counted() -> None:
    """Before the proxy kept the bytes of a body that is not text, it noted only their number and type."""
    older = exchanges()[2]
    older.response_body = "[2048 bytes of application/pdf]"
    entry = json.loads("".join(har_pieces([older], version="0", redaction=REDACTION)))["log"]["entries"][0]
    assert entry["response"]["content"] == {"size": 2048, "mimeType": "application/pdf",
                                            "comment": "not recorded: 2048 bytes of application/pdf"}
    assert entry["response"]["bodySize"] == 2048
