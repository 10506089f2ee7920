"""Acting and running from the web UI, in a real browser against the whole stack: the simulator with its test manager
(`speeltuin serve --test-manager`), the reference vendor and the real proxy between them (scenarios.stack), and a
session pair per role (scenarios.pairing) so the reference vendor pulls by itself when notified.

Case managers and vendors notify the vendor's system from the session page (the outcome, the Task and the recorded
exchange shown inline), cancel, probe a sending vendor's servers, start runs and follow them live (a waiting step's
instruction and countdown) to their reports; a vendor opens only its own session's runs. The new pages are
screenshot at 1280x800 and 390x844 into test-artifacts/screenshots/ and checked with axe (check_page)."""
from __future__ import annotations


import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from scenarios.pairing import pair_sessions
from scenarios.stack import Stack, start_stack
from speeltuin.store import Store
from tests.web import browser
from tests.web.browser import check_page, needs_chromium, new_page

USER, PASSWORD = "casemanager", "a long enough password"
RECEIVING, SENDING = "act-rcv", "act-snd"  # the simulator's sessions: the vendor receives / sends
MADE = "made-in-ui"  # the session a case manager makes with the form
PATIENT = "999993653"

pytestmark = needs_chromium

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@dataclass
class Env:
    stack: Stack
    keys: dict[str, str]  # simulator session id -> its access key
    runs: dict[str, str]  # what the tests started -> run id

    @property
    def ui(self) -> str:
        return f"{self.stack.simulator.url}/ui"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("ui-actions")
    with start_stack(folder, simulator_options=("--test-manager", "--manager-timeout", "30")) as stack:
        assert stack.vendor is not None
        added = subprocess.run([sys.executable, "-m", "speeltuin.cli", "users", "add", "--password-stdin", "--db",
                                stack.simulator.database_url, USER], input=PASSWORD + "\n", text=True,
                               capture_output=True, timeout=60)
        assert added.returncode == 0, added.stderr
        pair_sessions(stack.simulator, stack.vendor, vendor_role="receiver", sim_id=RECEIVING, ven_id="ven-rcv",
                      name="Acme receiving GtK")
        pair_sessions(stack.simulator, stack.vendor, vendor_role="sender", sim_id=SENDING, ven_id="ven-snd",
                      name="Bravo sending EPD")
        store = Store(stack.simulator.database_url)  # the creation answers' keys were not kept: new ones
        keys = {session_id: store.new_session_key(session_id) for session_id in (RECEIVING, SENDING)}
        store.close()
        yield Env(stack, keys, {})


def sign_in_as_manager(page: Any, env: Env) -> None:
    browser.sign_in_as_manager(page, env.ui, USER, PASSWORD)


def sign_in_as_vendor(page: Any, env: Env, session_id: str) -> None:
    browser.sign_in_as_vendor(page, env.ui, env.keys[session_id])
    assert page.url == f"{env.ui}/sessions/{session_id}"


def send_notification(page: Any, *, patient: str | None = PATIENT, bsn: str = "", workflow_task: bool = False) -> Any:
    if patient is not None:
        page.get_by_label("Test patient").select_option(patient)
    page.get_by_label("Or type a BSN").fill(bsn)
    page.get_by_label(re.compile("With a Workflow Task")).set_checked(workflow_task)
    page.get_by_role("button", name="Send the notification").click()
    return page.locator("#act-result")


def test_a_case_manager_notifies_the_vendor_and_cancels(tab: Any, env: Env) -> None:
    sign_in_as_manager(tab, env)
    tab.goto(f"{env.ui}/sessions/{RECEIVING}")
    expect(tab.get_by_role("heading", name="Send a notification to my system")).to_be_visible()
    expect(tab.locator("#sent-notifications")).to_have_count(0)

    # a BSN that is no BSN: a message at the field, nothing sent
    send_notification(tab, patient="", bsn="12345")
    bsn_field = tab.get_by_label("Or type a BSN")
    expect(bsn_field).to_have_attribute("aria-invalid", "true")
    expect(tab.locator("#notify-bsn-error")).to_contain_text("A BSN is 9 digits")
    expect(bsn_field).to_be_focused()  # the field to correct has the focus (set after the swap: waited for)
    # one failing the 11-check would be sent as typed, but the simulator has no patient with it
    send_notification(tab, patient="", bsn="999999245")
    expect(tab.locator("#notify-bsn-error")).to_contain_text("fails the 11-check")
    expect(tab.locator("#notify-bsn-error")).to_contain_text("no test patient with BSN 999999245")

    # the vendor's answer, the Task, and the exchange the proxy recorded (live in the table too)
    tab.evaluate("window.notReloaded = true")
    outcome = send_notification(tab, patient=PATIENT)
    expect(outcome.locator("#act-status")).to_contain_text("201", timeout=20_000)
    expect(outcome).to_contain_text(f"notification for patient {PATIENT}")
    expect(outcome.locator("#act-location")).to_contain_text("/Task/")
    expect(outcome.locator("#act-task-id")).not_to_be_empty()
    exchange_link = outcome.locator("#act-exchange a", has_text=re.compile(r"Exchange #\d+"))
    expect(exchange_link).to_be_visible(timeout=12_000)
    number = exchange_link.inner_text().split("#")[1]
    expect(tab.locator(f"#exchange-{number}")).to_contain_text("notification", timeout=8_000)
    expect(tab.locator(f"#exchange-{number}")).to_contain_text("to-vendor")
    assert tab.evaluate("window.notReloaded") is True  # htmx: no page load
    expect(tab.locator("#act-result")).to_be_focused()  # the outcome has the focus
    rows = tab.locator("#sent-notifications tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("201")

    # the reference vendor pulls by itself: once the proxy has recorded it, the row says what it pulled of the offer
    pull = rows.first.locator("td.pull-evidence")
    for _ in range(60):
        tab.reload()
        if re.search(r"(\d+) of \1 offered pulled, 1 document", pull.inner_text()):
            break
        tab.wait_for_timeout(500)
    expect(pull).to_contain_text(re.compile(r"(\d+) of \1 offered pulled, 1 document"))
    expect(pull.locator("details")).to_have_count(0)  # nothing missing, nothing searched unoffered
    check_page(tab, "act-notified")

    # cancel it: a conditional update the vendor accepts; the notification is cancelled, no button any more
    rows.first.get_by_role("button", name=re.compile("Cancel it")).click()
    expect(outcome).to_contain_text(f"cancellation for patient {PATIENT}", timeout=20_000)
    expect(outcome.locator("#act-status")).to_contain_text("200")
    expect(rows.first).to_contain_text("cancelled")
    expect(rows.first.get_by_role("button")).to_have_count(0)
    expect(outcome.locator("#act-exchange a")).to_be_visible(timeout=12_000)


def test_acting_works_without_javascript(chromium: Any, env: Env) -> None:
    context, page, _problems = new_page(chromium, java_script_enabled=False)
    try:
        sign_in_as_manager(page, env)
        page.goto(f"{env.ui}/sessions/{RECEIVING}")
        with page.expect_navigation():
            send_notification(page, patient="999990639", workflow_task=True)
        assert page.url == f"{env.ui}/sessions/{RECEIVING}/notify"  # the whole page, with the outcome
        outcome = page.locator("#act-result")
        expect(outcome.locator("#act-status")).to_contain_text("201")
        expect(outcome).to_contain_text("Workflow Task")
        expect(outcome.locator("#act-exchange")).to_contain_text(re.compile(r"Exchange #\d+|notification exchanges"))
    finally:
        context.close()


def test_a_run_is_followed_live_to_its_report(tab: Any, env: Env) -> None:
    sign_in_as_manager(tab, env)
    tab.goto(f"{env.ui}/sessions/{RECEIVING}")
    tab.get_by_role("link", name="Run scenarios in this session").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Run scenarios in session Acme receiving GtK")
    # the catalogue the test manager published: the receiver's scenarios only
    catalogue = tab.locator("table.catalogue")
    expect(catalogue.locator("tbody tr").first).to_contain_text("RCV-01")
    assert "SND-01" not in catalogue.inner_text() and "RCV-15" in catalogue.inner_text()
    check_page(tab, "runs-form")

    # an id of the other role is refused at the field
    tab.get_by_label("Scenario ids").fill("SND-01")
    with tab.expect_navigation() as refused:
        tab.get_by_role("button", name="Start the run").click()
    assert refused.value.status == 400
    expect(tab.locator("#run-scenarios-error")).to_contain_text("your system is the receiver")

    # an id of the right form that the test manager does not know: the run ends at once, saying which it knows
    tab.get_by_label("Scenario ids").fill("RCV-99")
    tab.get_by_role("button", name="Start the run").click()
    tab.wait_for_url(re.compile(r".*/ui/runs/run-[0-9a-f]+$"))
    expect(tab.locator("#run-error")).to_contain_text("no scenario RCV-99; known: RCV-01", timeout=20_000)
    expect(tab.locator("#run-reports")).to_have_count(0)

    tab.goto(f"{env.ui}/sessions/{RECEIVING}/runs")
    tab.get_by_label("Scenario ids").fill("rcv-01")
    tab.get_by_role("button", name="Start the run").click()
    tab.wait_for_url(re.compile(r".*/ui/runs/run-[0-9a-f]+$"))
    run_id = tab.url.rsplit("/", 1)[1]
    env.runs["receiving"] = run_id
    expect(tab.get_by_role("heading", level=1)).to_contain_text(run_id)
    expect(tab.locator("#run-link")).to_have_attribute("href", f"/ui/runs/{run_id}")
    expect(tab.locator("#scenario-RCV-01")).to_be_visible()
    tab.evaluate("window.notReloaded = true")
    expect(tab.locator("#run-status")).to_contain_text("passed", timeout=60_000)
    assert tab.evaluate("window.notReloaded") is True  # followed by htmx, not reloaded
    steps = tab.locator("#steps-RCV-01 tbody tr")
    expect(steps).to_have_count(5)
    for n in range(5):
        expect(steps.nth(n)).to_contain_text("passed")
    expect(tab.locator("#step-RCV-01-notify")).to_contain_text("vendor answered 201")
    expect(tab.locator("#scenario-RCV-01")).to_contain_text("accepts a notification and pulls")
    check_page(tab, "run-done")

    tab.locator("#run-report-html").click()
    tab.wait_for_url(f"{env.ui}/runs/{run_id}/report.html")
    expect(tab.locator("body")).to_contain_text(f"1 scenario(s) in session {RECEIVING} · run {run_id}")
    expect(tab.locator("body")).to_contain_text("passed Vendor as receiving node: accepts a notification and pulls")


def test_a_vendor_notifies_itself_and_sees_only_its_own_runs(tab: Any, env: Env) -> None:
    sign_in_as_vendor(tab, env, RECEIVING)
    outcome = send_notification(tab, patient="999993872", workflow_task=True)
    expect(outcome.locator("#act-status")).to_contain_text("201", timeout=20_000)
    expect(outcome).to_contain_text("Workflow Task")
    answer = tab.goto(f"{env.ui}/runs/{env.runs['receiving']}")
    assert answer.status == 200  # a run of its own session

    tab.context.clear_cookies()
    sign_in_as_vendor(tab, env, SENDING)
    for path in (f"/runs/{env.runs['receiving']}", f"/runs/{env.runs['receiving']}/report.json",
                 f"/runs/{env.runs['receiving']}/progress", "/runs/run-unknown", f"/sessions/{RECEIVING}/runs"):
        assert tab.goto(f"{env.ui}{path}").status == 403, path
    expect(tab.get_by_role("heading", level=1)).to_have_text("Not your session")


def test_a_sending_vendor_is_asked_to_act_then_probed(tab: Any, env: Env) -> None:
    assert env.stack.vendor is not None
    sign_in_as_vendor(tab, env, SENDING)
    expect(tab.locator("#probe-unavailable")).to_be_visible()  # nothing notified yet: nothing to probe

    # SND-01 waits for the vendor to notify: the instruction, and what it waits for with the time left
    tab.get_by_role("link", name="Run scenarios in this session").click()
    tab.get_by_label("Scenario ids").fill("SND-01")
    tab.get_by_role("button", name="Start the run").click()
    tab.wait_for_url(re.compile(r".*/ui/runs/run-[0-9a-f]+$"))
    turn = tab.locator(".your-turn").first
    expect(turn.locator(".instruction")).to_contain_text(
        f"In your system, send a notification (Notification Task) for patient {PATIENT}", timeout=20_000)
    expect(turn.locator(".instruction")).to_contain_text(f"/s/{SENDING}/notify/Task")
    countdown = turn.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"\d+ seconds? left"))
    first = int(countdown.inner_text().split()[0])
    tab.wait_for_timeout(2_100)
    assert int(countdown.inner_text().split()[0]) < first  # counts down in the browser
    check_page(tab, "run-waiting")

    # the vendor's system does it (here: the reference vendor, through its admin API); the run goes on
    notified = env.stack.vendor.api("POST", "/sessions/ven-snd/notify", json={"bsn": PATIENT})
    assert notified.status_code == 200 and notified.json()["delivery"]["status"] == 201, notified.text
    expect(tab.locator("#step-SND-01-vendor-notifies")).to_contain_text("passed", timeout=20_000)
    expect(tab.locator("#step-SND-01-await-pull")).to_contain_text("passed", timeout=30_000)
    expect(tab.locator("#scenario-SND-01 .badge")).to_have_text("passed", timeout=20_000)

    # now there is a notification to build on: probe the vendor's FHIR server
    tab.goto(f"{env.ui}/sessions/{SENDING}")
    expect(tab.locator("#received-notifications tbody tr")).to_have_count(1)
    tab.get_by_label("Which probe").select_option("no-token")
    tab.get_by_role("button", name="Run the probe").click()
    outcome = tab.locator("#act-result")
    expect(outcome.locator("#act-status")).to_contain_text("401", timeout=20_000)
    expect(outcome.locator("#act-status")).to_contain_text("as required")
    expect(outcome).to_contain_text("FHIR search without an access token")
    check_page(tab, "act-probed")


def test_a_case_manager_creates_a_session_and_runs_the_happy_flow_in_it(tab: Any, env: Env, tmp_path: Path) -> None:
    """The whole way a case manager takes a new vendor: the form (its field errors first), the access key shown once,
    the happy scenario ticked and run against the (reference) vendor, the exchanges appearing live on the session
    page, the report downloaded; then the session's vendor.toml, downloaded and uploaded again as a new session."""
    vendor = env.stack.vendor
    assert vendor is not None
    sim_base = f"{env.stack.simulator.public_url}/s/{MADE}"
    ven_base = f"{vendor.public_url}/s/ven-made"
    # the vendor's own system knows the simulator's endpoints of the session about to be made (as a vendor would)
    made = vendor.api("POST", "/sessions", json={
        "id": "ven-made", "vendor_role": "sender", "vendor_ura": env.stack.simulator.ura,
        "vendor_jwks": env.stack.simulator.jwks(), "vendor_client_id": env.stack.simulator.client_id,
        "own_client_id": vendor.client_id, "vendor_token_url": f"{sim_base}/token", "vendor_fhir_base": f"{sim_base}/fhir"})
    assert made.status_code == 201, made.text
    jwks_file = tmp_path / "acme-jwks.json"
    jwks_file.write_text(json.dumps(vendor.jwks()))

    sign_in_as_manager(tab, env)
    tab.get_by_role("link", name="New session").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("New validation session")
    check_page(tab, "new-session")

    # mistakes are shown at their fields, and what was typed stays
    tab.get_by_label("Name of the vendor's system").fill("Made in the browser")
    tab.get_by_label("Session id").first.fill(MADE)
    tab.get_by_label("Receiver: it is notified").first.check()
    tab.get_by_label("Vendor URA").fill("1234")
    tab.get_by_label("Vendor keys").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    with tab.expect_navigation() as refused:
        tab.get_by_role("button", name="Create the session", exact=True).click()
    assert refused.value.status == 400
    expect(tab.locator("#form-errors")).to_be_visible()
    expect(tab.locator("#new-vendor_ura-error")).to_have_text("A URA is 8 digits, e.g. 12345678.")
    expect(tab.locator("#new-keys-error")).to_contain_text("Not a JWKS (JSON) nor a PEM certificate")
    expect(tab.locator("#new-vendor_notification_base-error")).to_have_text(
        "Needed when the vendor's system is the receiver.")
    expect(tab.get_by_label("Name of the vendor's system")).to_have_value("Made in the browser")
    assert tab.get_by_label("Vendor URA").get_attribute("aria-invalid") == "true"
    check_page(tab, "new-session-errors")

    tab.get_by_label("Vendor URA").fill(vendor.ura)
    tab.get_by_label("Vendor client id").fill(vendor.client_id)
    tab.get_by_label("Vendor keys").set_input_files(str(jwks_file))
    tab.get_by_label("Its token endpoint").fill(f"{ven_base}/token")
    tab.get_by_label("Its notification base").fill(f"{ven_base}/notify")
    with tab.expect_navigation() as created:
        tab.get_by_role("button", name="Create the session", exact=True).click()
    assert created.value.status == 201
    expect(tab.locator("#created")).to_contain_text(MADE)
    access_key = tab.get_by_label(f"Access key of session {MADE}").input_value()
    assert len(access_key) >= 20
    expect(tab.locator("#created-endpoints")).to_contain_text(f"{sim_base}/fhir")
    check_page(tab, "session-created")

    # tick the happy flow of the receiving vendor and run it
    tab.get_by_role("link", name="Open the session").click()
    tab.get_by_role("link", name="Run scenarios in this session").click()
    expect(tab.locator("#no-runs")).to_be_visible()
    tab.get_by_label(re.compile("^Run RCV-01")).check()
    tab.get_by_role("button", name="Start the run").click()
    tab.wait_for_url(re.compile(r".*/ui/runs/run-[0-9a-f]+$"))
    run_id = tab.url.rsplit("/", 1)[1]

    # meanwhile the session page shows the exchanges as they come, without a reload
    tab.goto(f"{env.ui}/sessions/{MADE}")
    tab.evaluate("window.notReloaded = true")
    rows = tab.locator("#exchange-rows tr.exchange")
    expect(rows.filter(has_text="notification").first).to_be_visible(timeout=30_000)
    expect(rows.filter(has_text="search").first).to_be_visible(timeout=30_000)
    assert tab.evaluate("window.notReloaded") is True

    tab.goto(f"{env.ui}/runs/{run_id}")
    expect(tab.locator("#run-status")).to_contain_text("passed", timeout=60_000)
    tab.goto(f"{env.ui}/sessions/{MADE}/runs")
    expect(tab.locator(f"#run-row-{run_id}")).to_contain_text("passed")
    expect(tab.locator(f"#run-row-{run_id}")).to_contain_text("1 of 1")
    check_page(tab, "session-runs")
    tab.get_by_role("navigation", name="Site").get_by_role("link", name="Sessions").click()
    latest = tab.locator("#sessions tr", has_text="Made in the browser").locator(".latest-run")
    expect(latest).to_contain_text("passed 1 of 1 scenarios passed")
    expect(latest).to_have_attribute("href", f"/ui/runs/{run_id}")

    # the session's report, downloaded from its page
    tab.goto(f"{env.ui}/sessions/{MADE}")
    with tab.expect_download() as download:
        tab.locator("#report-json").click()
    report = json.loads(Path(download.value.path()).read_text())
    exchanges = report["scenarios"][0]["exchanges"]
    assert {"notification", "token-request", "search"} <= {ex["tag"] for ex in exchanges}

    # its vendor.toml and JWKS, as `speeltuin vendor check` reads them, and uploaded again as a new session
    from scenarios.vendor_config import load_vendor_config

    for link in ("#download-vendor-toml", "#download-vendor-jwks"):
        with tab.expect_download() as download:
            tab.locator(link).click()
        download.value.save_as(tmp_path / download.value.suggested_filename)
    config = load_vendor_config(tmp_path / "vendor.toml")
    assert (config.roles, config.ura, config.client_id, config.jwks) == (("receiver",), vendor.ura,
                                                                          vendor.client_id, vendor.jwks())
    assert (config.token_url, config.notification_base) == (f"{ven_base}/token", f"{ven_base}/notify")

    tab.goto(f"{env.ui}/sessions/new")
    tab.get_by_label("vendor.toml", exact=True).set_input_files(str(tmp_path / "vendor.toml"))
    tab.get_by_label("Session id").nth(1).fill(f"{MADE}-again")
    with tab.expect_navigation() as refused:
        tab.get_by_role("button", name="Create the session from the vendor.toml").click()
    assert refused.value.status == 400  # its [keys] names a file that was not chosen too
    expect(tab.locator("#toml-keys_file-error")).to_contain_text(f"names its keys in {MADE}-jwks.json")
    tab.get_by_label("vendor.toml", exact=True).set_input_files(str(tmp_path / "vendor.toml"))
    tab.get_by_label("The keys file it names").set_input_files(str(tmp_path / f"{MADE}-jwks.json"))
    with tab.expect_navigation() as created:
        tab.get_by_role("button", name="Create the session from the vendor.toml").click()
    assert created.value.status == 201
    expect(tab.locator("#created")).to_contain_text(f"{MADE}-again")


def test_only_case_managers_create_sessions(tab: Any, env: Env) -> None:
    sign_in_as_vendor(tab, env, RECEIVING)
    assert tab.goto(f"{env.ui}/sessions/new").status == 403
    expect(tab.locator("#new-session")).to_have_count(0)
    answer = tab.request.post(f"{env.ui}/sessions/new", multipart={"new-name": "x"})
    assert answer.status in (400, 403)  # no CSRF token, and no right to create one either
    assert tab.goto(f"{env.ui}/sessions/{SENDING}/vendor.toml").status == 403
