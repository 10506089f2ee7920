"""The web UI in a real browser (Debian's Chromium through Playwright, offline) against the real simulator app on a
loopback port: case managers and vendors sign in, see sessions, endpoints, exchanges (live, filtered, one by one)
and reports; a vendor sees only its own session; forms need their CSRF token; every main page is screenshot at
1280x800 and 390x844 into test-artifacts/screenshots/ and checked with axe (no critical or serious violations)."""
from __future__ import annotations


import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange
from tests.conftest import LiveNode, complete_session, start_live_node
from tests.web import browser
from tests.web.browser import check_page, needs_chromium
from validators.findings import Finding

USER, PASSWORD = "casemanager", "a long enough password"
GENERIC_FAILURE = "Sign-in failed: these credentials are not valid."
ERROR = Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code.coding[0]")
WARNING = Finding("BUNDLE-010", "warning", "CodeableConcept without display or text", "Bundle.entry[1].resource.code")

pytestmark = needs_chromium

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@dataclass
class UI:
    node: LiveNode
    keys: dict[str, str]  # session id -> its access key
    exchanges: dict[str, int] = field(default_factory=dict)  # name -> exchange id

    @property
    def url(self) -> str:
        return f"{self.node.url}/ui"

    def record(self, name: str, session_id: str, tag: str, *findings: Finding, method: str = "GET",
               path: str = "fhir/Condition") -> int:
        """An exchange as the proxy records it (already redacted), with its findings."""
        self.exchanges[name] = self.node.runtime.store.add_exchange(Exchange(
            source="proxy", tag=tag, direction="to-simulator", method=method,  # type: ignore[arg-type]
            url=f"{self.node.url}/s/{session_id}/{path}", status=200,
            request_headers={"Accept": "application/fhir+json", "Authorization": "Bearer [redacted]"},
            request_body="", response_headers={"Content-Type": "application/fhir+json"},
            response_body=json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}),
            started_at=time.time(), duration_ms=12.5, session_id=session_id, findings=list(findings)))
        return self.exchanges[name]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    """One real simulator for the module: a case manager's account, sessions ui-a (receiver) and ui-b (sender) made
    through the admin API (their access keys kept), and exchanges with findings recorded in the store."""
    db = sqlite_url(tmp_path_factory.mktemp("web-ui") / "sim.sqlite")
    node, server = start_live_node(db, ura="90000101", client_id="sim", name="sim")
    node.runtime.store.add_user(USER, PASSWORD)
    keys = {}
    for session_id, name, role in (("ui-a", "Acme GtK (test)", "receiver"), ("ui-b", "Bravo EPD", "sender")):
        created = node.api("POST", "/sessions", json=complete_session(role, id=session_id, name=name,
                                                                      vendor_ura="90000202"))
        assert created.status_code == 201, created.text  # the JSON API takes no CSRF token
        keys[session_id] = created.json()["access_key"]
    state = UI(node, keys)
    state.record("token", "ui-a", "token-request", method="POST", path="token")
    state.record("search-error", "ui-a", "search", ERROR, WARNING)
    state.record("read-warning", "ui-a", "read", WARNING, path="fhir/Patient/p1")
    state.record("other", "ui-b", "notification", ERROR, method="POST", path="notify/Task")
    yield state
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    node.runtime.store.close()


def sign_in_as_manager(page: Any, ui: UI, *, there_already: bool = False) -> None:
    browser.sign_in_as_manager(page, ui.url, USER, PASSWORD, there_already=there_already)


def sign_in_as_vendor(page: Any, ui: UI, key: str) -> Any:
    return browser.sign_in_as_vendor(page, ui.url, key)


def test_a_case_manager_follows_a_session(tab: Any, ui: UI) -> None:
    tab.goto(f"{ui.url}/sign-in")
    check_page(tab, "sign-in")
    sign_in_as_manager(tab, ui)

    # the dashboard: both sessions, their ids, roles, URAs and counts
    assert tab.url == f"{ui.url}/"
    expect(tab.get_by_role("heading", level=1)).to_have_text("Validation sessions")
    rows = tab.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    bravo, acme = rows.nth(0), rows.nth(1)  # newest first
    expect(acme).to_contain_text("ui-a")
    expect(acme).to_contain_text("receiver")
    expect(acme).to_contain_text("90000202")
    # exchanges, error findings, latest run
    assert [c.strip() for c in acme.locator("td").all_inner_texts()[-3:]] == ["3", "1", "none yet"]
    expect(bravo).to_contain_text("ui-b")
    cookie = next(c for c in tab.context.cookies() if c["name"] == "speeltuin_ui")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == (True, "Lax", "/ui", False)
    check_page(tab, "dashboard")

    # the session page: endpoints to configure and the exchanges
    tab.get_by_role("link", name="Acme GtK (test)").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Session Acme GtK (test)")
    expect(tab.get_by_label("Token endpoint (the aud of your assertions)")).to_have_value(f"{ui.node.url}/s/ui-a/token")
    expect(tab.get_by_label("FHIR base to pull from")).to_have_value(f"{ui.node.url}/s/ui-a/fhir")
    expect(tab.get_by_label("Your client id (iss and sub of your client assertions)")).to_have_value("vendor-ui-a")
    exchange_rows = tab.locator("#exchange-rows tr.exchange")
    expect(exchange_rows).to_have_count(3)
    expect(tab.locator(f"#exchange-{ui.exchanges['search-error']}")).to_contain_text("1 error")
    check_page(tab, "session")

    # a new exchange appears without a reload (htmx polls every 2 s)
    tab.evaluate("window.notReloaded = true")
    new_id = ui.record("live", "ui-a", "read", WARNING, path="fhir/Patient/p2")
    expect(tab.locator(f"#exchange-{new_id}")).to_be_visible(timeout=8_000)
    expect(exchange_rows).to_have_count(4)
    expect(tab.locator("#session-counts")).to_contain_text("4 exchanges recorded")
    assert tab.evaluate("window.notReloaded") is True

    # filtered by severity (a GET form): only the exchange with an error finding
    tab.get_by_label("With findings of severity").select_option("error")
    with tab.expect_navigation():
        tab.get_by_role("button", name="Filter").click()
    assert "severity=error" in tab.url
    expect(exchange_rows).to_have_count(1)
    expect(exchange_rows.first).to_have_id(f"exchange-{ui.exchanges['search-error']}")
    tab.get_by_label("Kind").select_option("read")
    tab.get_by_role("button", name="Filter").click()
    expect(tab.get_by_role("status")).to_contain_text("No exchanges match these filters")

    # one exchange: its headers, bodies and findings
    tab.goto(f"{ui.url}/sessions/ui-a")
    tab.get_by_role("link", name=f"#{ui.exchanges['search-error']}").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text(f"Exchange #{ui.exchanges['search-error']}: search")
    findings = tab.locator("#findings tbody tr")
    expect(findings).to_have_count(2)
    expect(findings.nth(0)).to_contain_text("BUNDLE-009")
    expect(findings.nth(0)).to_contain_text("error")
    expect(findings.nth(0)).to_contain_text("Coding without system")
    expect(findings.nth(0)).to_contain_text("Bundle.entry[0].resource.code.coding[0]")
    expect(tab.locator("main")).to_contain_text("Authorization: Bearer [redacted]")
    expect(tab.locator("main")).to_contain_text('"resourceType": "Bundle"')
    check_page(tab, "exchange")

    # the JSON report through the UI's link (the browser sends its cookie, no key header)
    tab.get_by_role("link", name="Acme GtK (test)").click()
    with tab.expect_download() as download:
        tab.locator("#report-json").click()
    report = json.loads(Path(download.value.path()).read_text())
    assert download.value.suggested_filename == "speeltuin-ui-a-report.json"
    assert [s["session_id"] for s in report["scenarios"]] == ["ui-a"] and report["status"] == "failed"

    # sign out (a POST with the CSRF token): the pages are closed again
    tab.get_by_role("button", name="Sign out").click()
    expect(tab.get_by_role("status")).to_have_text("You are signed out.")
    tab.goto(f"{ui.url}/sessions/ui-a")
    assert tab.url.startswith(f"{ui.url}/sign-in?next=")


def test_a_vendor_sees_only_its_own_session(tab: Any, ui: UI) -> None:
    sign_in_as_vendor(tab, ui, ui.keys["ui-a"])
    assert tab.url == f"{ui.url}/sessions/ui-a"
    expect(tab.get_by_role("heading", level=1)).to_have_text("Session Acme GtK (test)")
    expect(tab.locator("header")).to_contain_text("vendor of Acme GtK (test)")
    tab.goto(f"{ui.url}/")
    assert tab.url == f"{ui.url}/sessions/ui-a"  # no list of sessions for a vendor
    for path in ("/sessions/ui-b", f"/sessions/ui-b/exchanges/{ui.exchanges['other']}", "/sessions/ui-b/report.json",
                 "/sessions/no-such-session"):
        answer = tab.goto(f"{ui.url}{path}")
        assert answer.status == 403, path
    expect(tab.get_by_role("heading", level=1)).to_have_text("Not your session")
    expect(tab.get_by_role("link", name="Go to your own session")).to_have_attribute("href", "/ui/sessions/ui-a")
    check_page(tab, "forbidden")
    other_exchange = tab.goto(f"{ui.url}/sessions/ui-a/exchanges/{ui.exchanges['other']}")
    assert other_exchange.status == 404  # an exchange of another session is not found in one's own


def test_exchanges_come_in_pages_of_50(tab: Any, ui: UI) -> None:
    """A page shows 50 exchanges (the store's cursor pages them); the last page takes new ones live until it is full,
    then the next page goes on."""
    assert ui.node.api("POST", "/sessions", json=complete_session("receiver", id="ui-c", name="Busy vendor",
                                                                  vendor_ura="90000202")).status_code == 201
    first = [ui.record(f"busy-{n}", "ui-c", "search") for n in range(49)]
    sign_in_as_manager(tab, ui)
    tab.goto(f"{ui.url}/sessions/ui-c")
    rows = tab.locator("#exchange-rows tr.exchange")
    expect(rows).to_have_count(49)
    expect(tab.get_by_role("link", name="Next page")).to_have_count(0)
    fiftieth, fifty_first = ui.record("busy-49", "ui-c", "read"), ui.record("busy-50", "ui-c", "read")
    expect(rows).to_have_count(50, timeout=8_000)  # the page is full: the 51st is on the next page
    expect(rows.last).to_have_id(f"exchange-{fiftieth}")
    tab.get_by_role("link", name="Next page").click()
    assert f"after={fiftieth}" in tab.url
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"exchange-{fifty_first}")
    tab.get_by_role("link", name="First page").click()
    expect(rows.first).to_have_id(f"exchange-{first[0]}")
    expect(rows).to_have_count(50)


def test_wrong_credentials_get_one_generic_answer(tab: Any, ui: UI) -> None:
    answers = []
    for username, password in ((USER, "not the password"), ("nobody", PASSWORD)):
        tab.goto(f"{ui.url}/sign-in")
        tab.get_by_label("Username").fill(username)
        tab.get_by_label("Password").fill(password)
        with tab.expect_navigation() as navigation:
            tab.get_by_role("button", name="Sign in as case manager").click()
        answers.append((navigation.value.status, tab.locator("#sign-in-error").inner_text()))
    for key in ("not-a-key", ui.keys["ui-a"] + "x"):
        answer = sign_in_as_vendor(tab, ui, key)
        answers.append((answer.status, tab.locator("#sign-in-error").inner_text()))
    assert answers == [(401, GENERIC_FAILURE)] * 4
    tab.goto(f"{ui.url}/")
    assert tab.url.startswith(f"{ui.url}/sign-in")  # still signed out


def test_signing_in_returns_to_the_page_asked_for(tab: Any, ui: UI) -> None:
    tab.goto(f"{ui.url}/sessions/ui-b")
    assert tab.url == f"{ui.url}/sign-in?next=/ui/sessions/ui-b"
    sign_in_as_manager(tab, ui, there_already=True)
    assert tab.url == f"{ui.url}/sessions/ui-b"
    tab.goto(f"{ui.url}/sign-in?next=https://elsewhere.example/")
    assert tab.url == f"{ui.url}/"  # signed in already; and never sent to another site


def test_the_sign_in_form_works_with_the_keyboard(tab: Any, ui: UI) -> None:
    tab.goto(f"{ui.url}/sign-in")
    tab.keyboard.press("Tab")
    focused = tab.evaluate("() => [document.activeElement.className,"
                           " document.activeElement.getBoundingClientRect().top,"
                           " getComputedStyle(document.activeElement).outlineStyle]")
    assert focused[0] == "skip-link" and focused[1] >= 0 and focused[2] != "none"  # shown, with a focus ring
    order = []
    for _ in range(10):
        tab.keyboard.press("Tab")
        order.append(tab.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        if order[-1] == "manager-username":
            break
    assert order[-1] == "manager-username", order
    assert tab.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    tab.keyboard.type(USER)
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.id") == "manager-password"
    tab.keyboard.type(PASSWORD)
    with tab.expect_navigation():
        tab.keyboard.press("Enter")
    assert tab.url == f"{ui.url}/"
    expect(tab.get_by_role("heading", level=1)).to_have_text("Validation sessions")


def test_a_form_without_its_csrf_token_is_refused(tab: Any, ui: UI) -> None:
    # no token at all (and no cookie): refused before the credentials are looked at
    refused = requests.post(f"{ui.url}/sign-in/case-manager", timeout=10,
                            data={"manager-username": USER, "manager-password": PASSWORD})
    assert refused.status_code == 400 and "Form refused" in refused.text and "Set-Cookie" not in refused.headers
    # signed in, but a sign-out posted without the token of the page: refused, still signed in
    sign_in_as_manager(tab, ui)
    answer = tab.context.request.post(f"{ui.url}/sign-out", form={"x": "1"}, max_redirects=0)
    assert answer.status == 400
    # a token of another cookie session does not count either
    stranger = requests.Session()
    token = re.search(r'name="manager-csrf_token" type="hidden" value="([^"]+)"',
                      stranger.get(f"{ui.url}/sign-in", timeout=10).text).group(1)
    answer = tab.context.request.post(f"{ui.url}/sign-out", form={"csrf_token": token}, max_redirects=0)
    assert answer.status == 400
    tab.goto(f"{ui.url}/")
    assert tab.url == f"{ui.url}/"
    # the JSON APIs and the vendor-facing endpoints take no CSRF token (they take keys and bearer tokens)
    assert ui.node.api("PUT", "/sessions/ui-b/suppressions/BUNDLE-009", json={"reason": "agreed"}).status_code == 200
    assert ui.node.api("DELETE", "/sessions/ui-b/suppressions/BUNDLE-009").status_code == 204
    token_answer = requests.post(f"{ui.node.url}/s/ui-a/token", data={"grant_type": "client_credentials"}, timeout=10)
    assert token_answer.status_code in (400, 401) and "error" in token_answer.json()  # OAuth's error, not CSRF's


def test_removing_the_account_or_replacing_the_key_signs_out(tab: Any, ui: UI) -> None:
    store = ui.node.runtime.store
    store.add_user("temporary", PASSWORD)
    tab.goto(f"{ui.url}/sign-in")
    tab.get_by_label("Username").fill("temporary")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in as case manager").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Validation sessions")
    store.remove_user("temporary")
    store.add_user("temporary", PASSWORD)  # the same name again is another account
    tab.goto(f"{ui.url}/")
    assert tab.url.startswith(f"{ui.url}/sign-in")

    created = ui.node.api("POST", "/sessions", json=complete_session("sender", id="ui-d", vendor_ura="90000202"))
    sign_in_as_vendor(tab, ui, created.json()["access_key"])
    assert tab.url == f"{ui.url}/sessions/ui-d"
    store.new_session_key("ui-d")  # the key was replaced: what was opened with the old one closes
    tab.wait_for_url(re.compile(r".*/ui/sign-in\?next=.*"), timeout=8_000)  # the live poll sends the page there
    assert tab.url == f"{ui.url}/sign-in?next=/ui/sessions/ui-d"  # to come back to the page, not the fragment


def test_the_cookie_key_survives_a_restart_and_static_files_are_local(ui: UI) -> None:
    from simulator.app import create_app
    from simulator.runtime import SimulatorConfig

    again = create_app(SimulatorConfig(database_url=ui.node.config.database_url))
    assert again.config["SECRET_KEY"] == ui.node.app.config["SECRET_KEY"]  # type: ignore[attr-defined]
    again.extensions["speeltuin"].store.close()
    for name, kind in (("htmx.min.js", "javascript"), ("pico.min.css", "text/css")):
        answer = requests.get(f"{ui.url}/static/{name}", timeout=10)
        assert answer.status_code == 200 and kind in answer.headers["Content-Type"]
    page = requests.get(f"{ui.url}/sign-in", timeout=10).text
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from another site: works offline
    over_https = ui.node.app.test_client().get("/ui/sign-in", base_url="https://127.0.0.1")  # type: ignore[attr-defined]
    assert "; Secure" in over_https.headers["Set-Cookie"] and "HttpOnly" in over_https.headers["Set-Cookie"]
    assert "Secure" not in requests.get(f"{ui.url}/sign-in", timeout=10).headers["Set-Cookie"]


def test_the_new_session_form_asks_for_the_vendor_keys_at_their_field(tab: Any, ui: UI) -> None:
    """Issue 13: a session without the vendor's keys is refused at creation; the form shows why at the keys field,
    and what was typed stays."""
    sign_in_as_manager(tab, ui)
    tab.goto(f"{ui.url}/sessions/new")
    tab.get_by_label("Name of the vendor's system").fill("Keyless GtK")
    tab.get_by_label("Session id").first.fill("ui-keyless")
    tab.get_by_label("Receiver: it is notified").first.check()
    tab.get_by_label("Vendor URA").fill("90000202")
    tab.get_by_label("Its token endpoint").fill("http://127.0.0.1:9/token")
    tab.get_by_label("Its notification base").fill("http://127.0.0.1:9/notify")
    with tab.expect_navigation() as refused:
        tab.get_by_role("button", name="Create the session", exact=True).click()
    assert refused.value.status == 400
    expect(tab.locator("#new-keys-error")).to_contain_text("vendor_jwks (or vendor_jwks_url) is needed")
    expect(tab.locator("#new-keys-error")).to_contain_text("(the vendor is the receiver)")
    expect(tab.get_by_label("Its token endpoint")).to_have_value("http://127.0.0.1:9/token")
    assert ui.node.api("GET", "/sessions/ui-keyless").status_code == 404
