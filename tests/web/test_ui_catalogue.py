"""The web UI's reference pages in a real browser against the real simulator app on a loopback port: the rule catalogue
and its search, suppressing a rule for a session (case managers only) and what that changes on the session page and
in the report, the test patients and their referral letters, and the unmatched traffic (case managers only). Every
new page is screenshot at both sizes and checked with axe (tests/web/browser.py)."""
from __future__ import annotations

import json
import re
import time
from typing import Any, Iterator

import pytest

from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange
from tests.conftest import LiveNode, complete_session, start_live_node
from tests.web.browser import check_page, needs_chromium, sign_in_as_manager, sign_in_as_vendor
from validators.catalogue import catalogue
from validators.findings import Finding

USER, PASSWORD = "casemanager", "a long enough password"
ERROR = Finding("BUNDLE-009", "error", "Coding without system", "Bundle.entry[0].resource.code.coding[0]")
REASON = "Agreed with the vendor: local codes without a system until their next release"
SPEC_BSNS = ["999993653", "999990639", "999993872", "999991723", "999992740", "999901370", "999901497", "999909587",
             "999911259"]  # SPEC §7
IMPORTED = {"bsn": "999990020", "given": "Zoë", "family": "Çağlar", "birth_date": "1990-02-03", "sex": "F",
            "content": "sparse", "letters": 2}
UNMATCHED = 51  # one more than a page

pytestmark = needs_chromium

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def record(node: LiveNode, session_id: str | None, path: str, *findings: Finding) -> int:
    """An exchange as the proxy records it; `session_id` None: it matched no session."""
    return node.runtime.store.add_exchange(Exchange(
        source="proxy", tag="search", direction="to-simulator", method="GET",  # type: ignore[arg-type]
        url=f"{node.url}{path}", status=404 if session_id is None else 200,
        request_headers={"Accept": "application/fhir+json"}, request_body="",
        response_headers={"Content-Type": "application/fhir+json"}, response_body='{"resourceType": "Bundle"}',
        started_at=time.time(), duration_ms=3.0, session_id=session_id, findings=list(findings)))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """One real simulator: a case manager's account, sessions cat-a and cat-b (their access keys in node.keys), an
    exchange of cat-a with an error finding, an imported patient, and UNMATCHED exchanges of no session."""
    live, server = start_live_node(sqlite_url(tmp_path_factory.mktemp("web-catalogue") / "sim.sqlite"),
                                   ura="90000101", client_id="sim", name="sim")
    live.runtime.store.add_user(USER, PASSWORD)
    keys = {}
    for session_id, name in (("cat-a", "Acme GtK"), ("cat-b", "Bravo EPD")):
        created = live.api("POST", "/sessions", json=complete_session("receiver", id=session_id, name=name,
                                                                      vendor_ura="90000202"))
        assert created.status_code == 201, created.text
        keys[session_id] = created.json()["access_key"]
    live.keys = keys  # type: ignore[attr-defined]
    live.flawed = record(live, "cat-a", "/s/cat-a/fhir/Condition", ERROR)  # type: ignore[attr-defined]
    live.unmatched = [record(live, None, f"/s/no-such-session/fhir/Condition?n={n}")  # type: ignore[attr-defined]
                      for n in range(UNMATCHED)]
    assert live.api("POST", "/patients", data=json.dumps([IMPORTED])).status_code == 201
    yield live
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    live.runtime.store.close()


def manager(tab: Any, node: LiveNode) -> None:
    sign_in_as_manager(tab, f"{node.url}/ui", USER, PASSWORD)


def vendor(tab: Any, node: LiveNode, session_id: str) -> None:
    sign_in_as_vendor(tab, f"{node.url}/ui", node.keys[session_id])  # type: ignore[attr-defined]


def shown_rules(tab: Any) -> list[str]:
    return [row_id.removeprefix("rule-") for row_id in tab.locator("#rules tbody tr").evaluate_all(
        "rows => rows.map(row => row.id)")]


def rules_with(word: str) -> list[str]:
    """The ids of the rules whose id or text contain `word`, read from the catalogue itself."""
    def text(e: Any) -> str:
        where = f"{e.where.module}.{e.where.function}" if e.where else ""
        return f"{e.rule.id} {e.rule.title} {e.rule.reference} {where}".lower()

    return [rule_id for rule_id, e in catalogue().items() if word in text(e)]


def test_the_catalogue_is_searched_by_id_and_by_text(tab: Any, node: LiveNode) -> None:
    manager(tab, node)
    tab.get_by_role("navigation", name="Site").get_by_role("link", name="Rules").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Rule catalogue")
    assert shown_rules(tab) == list(catalogue())  # every rule, in id order
    row = tab.locator("#rule-NOTIF-007")
    entry = catalogue()["NOTIF-007"]
    for shown in (entry.rule.severity, entry.rule.title, entry.rule.reference, entry.where.function):
        expect(row).to_contain_text(shown)
    check_page(tab, "rules")

    # live (htmx): the table follows the typing, the address keeps the search
    tab.get_by_label("Search by id or text").fill("notif-007")
    expect(tab.locator("#rules tbody tr")).to_have_count(1)
    assert shown_rules(tab) == ["NOTIF-007"] and "q=notif-007" in tab.url
    expect(tab.locator("#rules-count")).to_have_text(f"1 of {len(catalogue())} rules match “notif-007”.")
    expected = rules_with("cancel")
    assert 1 < len(expected) < len(catalogue())
    tab.get_by_label("Search by id or text").fill("cancel")
    expect(tab.locator("#rules tbody tr")).to_have_count(len(expected))
    assert shown_rules(tab) == expected
    tab.get_by_label("Severity").select_option("warning")
    warnings = [r for r in expected if catalogue()[r].rule.severity == "warning"]
    assert len(warnings) < len(expected)
    expect(tab.locator("#rules tbody tr")).to_have_count(len(warnings))

    # without JavaScript the same GET form searches on the server
    answer = tab.context.request.get(f"{node.url}/ui/rules?q=JWT-0")
    found = re.findall(r'<tr id="rule-([A-Z]+-[0-9]+)"', answer.text())
    assert found == [r for r in catalogue() if "jwt-0" in r.lower()] and len(found) >= 9
    tab.goto(f"{node.url}/ui/rules?q=no+such+words+anywhere")
    expect(tab.locator("main")).to_contain_text("No rule matches.")


def test_a_case_manager_suppresses_a_rule_and_lifts_it(tab: Any, node: LiveNode) -> None:
    manager(tab, node)
    tab.goto(f"{node.url}/ui/sessions/cat-a")
    expect(tab.locator("#session-counts")).to_contain_text("1 error finding")
    tab.locator("#session-rules").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Rules in session Acme GtK")
    expect(tab.locator("#suppressions")).to_have_count(0)
    expect(tab.locator("#rules tbody tr")).to_have_count(len(catalogue()))
    tab.get_by_label("Search by id or text").fill("BUNDLE-00")  # a short page from here on: the search is kept
    expect(tab.locator("#rules tbody tr")).to_have_count(len(rules_with("bundle-00")))

    # the rule's link fills in the form; without a reason: the reason field says so
    tab.get_by_role("link", name="Suppress BUNDLE-009", exact=True).click()
    expect(tab.get_by_label("Rule id")).to_have_value("BUNDLE-009")
    assert "q=BUNDLE-00" in tab.url
    expect(tab.get_by_label("Reason (shown beside the rule in every report)")).to_be_focused()
    with tab.expect_navigation() as sent:
        tab.get_by_role("button", name="Suppress the rule").click()
    assert sent.value.status == 400
    reason = tab.get_by_label("Reason (shown beside the rule in every report)")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(tab.locator("#suppress-reason-error")).to_have_text(
        "A suppression needs a reason: it is shown in every report.")
    expect(tab.locator("#suppress-rule-error")).to_have_count(0)
    check_page(tab, "session-rules-error")

    # an unknown rule: the rule field says so, the reason typed is kept
    tab.get_by_label("Rule id").fill("NOPE-1")
    reason.fill(REASON)
    tab.get_by_role("button", name="Suppress the rule").click()
    expect(tab.locator("#suppress-rule-error")).to_contain_text("No rule 'NOPE-1' in the catalogue")
    expect(tab.get_by_label("Rule id")).to_be_focused()
    expect(reason).to_have_value(REASON)

    # too long a reason (the field stops typing at the limit; a form sent otherwise is checked all the same)
    token = tab.locator("input[name=suppress-csrf_token]").get_attribute("value")
    too_long = tab.context.request.post(f"{node.url}/ui/sessions/cat-a/suppressions", max_redirects=0, form={
        "suppress-csrf_token": token, "suppress-rule": "BUNDLE-009", "suppress-reason": "x" * 501})
    assert too_long.status == 400 and "A reason is at most 500 characters; this one has 501." in too_long.text()

    # suppressed: shown here, on the session page (not counted) and in the report
    tab.get_by_label("Rule id").fill("bundle-009")
    tab.get_by_role("button", name="Suppress the rule").click()
    expect(tab.locator("main p.notice")).to_have_text(f"BUNDLE-009 is suppressed in this session: {REASON}")
    expect(tab.locator("#rules tbody tr")).to_have_count(len(rules_with("bundle-00")))
    expect(tab.locator("#suppressions tbody tr")).to_have_count(1)
    expect(tab.locator("#rule-BUNDLE-009")).to_contain_text(REASON)
    assert node.runtime.store.list_suppressions("cat-a") == {"BUNDLE-009": REASON}
    check_page(tab, "session-rules-suppressed")
    tab.get_by_role("link", name="Acme GtK").click()
    expect(tab.locator("main")).to_contain_text(f"BUNDLE-009 {REASON}")
    expect(tab.locator("#session-counts")).to_contain_text("no error findings")
    expect(tab.locator(f"#exchange-{node.flawed}")).to_contain_text("1 suppressed")  # type: ignore[attr-defined]
    report = tab.context.request.get(f"{node.url}/ui/sessions/cat-a/report.html").text()
    assert "BUNDLE-009" in report and REASON in report

    # lifted: counted again, gone from the report
    tab.locator("#session-rules").click()
    tab.get_by_role("button", name="Lift the suppression of BUNDLE-009").click()
    expect(tab.locator("main p.notice")).to_contain_text("BUNDLE-009 is no longer suppressed")
    expect(tab.locator("#suppressions")).to_have_count(0)
    assert node.runtime.store.list_suppressions("cat-a") == {}
    assert REASON not in tab.context.request.get(f"{node.url}/ui/sessions/cat-a/report.html").text()


def test_a_vendor_sees_suppressions_but_cannot_suppress_nor_see_unmatched_traffic(tab: Any, node: LiveNode) -> None:
    node.runtime.store.set_suppression("cat-a", "BUNDLE-010", "agreed")
    try:
        vendor(tab, node, "cat-a")
        site = tab.get_by_role("navigation", name="Site")
        assert site.get_by_role("link").all_inner_texts()[1:] == ["My session", "Rules", "Test patients"]
        tab.goto(f"{node.url}/ui/sessions/cat-a/rules?q=BUNDLE-01")
        expect(tab.locator("#suppressions")).to_contain_text("agreed")
        expect(tab.locator("#rule-BUNDLE-010")).to_contain_text("suppressed agreed")
        expect(tab.locator("#rule-BUNDLE-011")).to_contain_text("counts")
        expect(tab.locator("#suppress-managers-only")).to_be_visible()
        expect(tab.locator("form[action$='/suppressions']")).to_have_count(0)
        expect(tab.get_by_role("button", name=re.compile("Lift"))).to_have_count(0)
        check_page(tab, "session-rules-vendor")
        token = tab.locator("header input[name=csrf_token]").get_attribute("value")
        for path in ("/sessions/cat-a/suppressions", "/sessions/cat-a/suppressions/BUNDLE-010/lift"):
            answer = tab.context.request.post(f"{node.url}/ui{path}", max_redirects=0, form={
                "csrf_token": token, "suppress-csrf_token": token, "suppress-rule": "BUNDLE-009",
                "suppress-reason": "mine"})
            assert answer.status == 403, path
        assert node.runtime.store.list_suppressions("cat-a") == {"BUNDLE-010": "agreed"}
        unmatched = node.unmatched[0]  # type: ignore[attr-defined]
        for path in ("/unmatched", f"/unmatched/{unmatched}", "/sessions/cat-b/rules"):
            assert tab.goto(f"{node.url}/ui{path}").status == 403, path
        tab.goto(f"{node.url}/ui/unmatched")
        expect(tab.locator("main")).to_contain_text("only case managers see it")
        assert tab.goto(f"{node.url}/ui/rules").status == 200
    finally:
        node.runtime.store.remove_suppression("cat-a", "BUNDLE-010")


def test_the_test_patients_and_their_referral_letters(tab: Any, node: LiveNode) -> None:
    manager(tab, node)
    tab.get_by_role("link", name="Test patients").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Test patients")
    shown = tab.locator("#patients tbody tr").evaluate_all("rows => rows.map(row => row.id)")
    assert [s.removeprefix("patient-") for s in shown] == SPEC_BSNS + [IMPORTED["bsn"]]
    suzanne = tab.locator("#patient-999993653")
    for text in ("Suzanne Moulin", "1985-12-01", "female", "built-in", "all 28"):
        expect(suzanne).to_contain_text(text)
    expect(tab.locator("#patient-999901497")).to_contain_text("2018-07-01")  # deceased
    expect(tab.locator("#patient-999991723")).to_contain_text("2 of 28")  # the sparse patient
    imported = tab.locator(f"#patient-{IMPORTED['bsn']}")
    for text in ("Zoë Çağlar", "imported", "2 of 28", "Letter 2"):
        expect(imported).to_contain_text(text)
    check_page(tab, "patients")

    letter = tab.get_by_role("link", name="Letter of Suzanne Moulin (PDF)", exact=True)
    assert letter.get_attribute("href") == "/ui/patients/999993653/letter.pdf"
    answer = tab.context.request.get(f"{node.url}/ui/patients/999993653/letter.pdf")
    assert answer.status == 200 and answer.body().startswith(b"%PDF-")
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == 'inline; filename="verwijsbrief-999993653-1.pdf"'
    assert "object-src 'self'" in answer.headers["content-security-policy"]  # the browser's PDF viewer may run
    assert tab.goto(f"{node.url}/ui/patients/999993653/letter.pdf").status == 200  # shown inline, not downloaded
    second = tab.context.request.get(f"{node.url}/ui/patients/{IMPORTED['bsn']}/letter-2.pdf")
    assert second.status == 200 and second.body().startswith(b"%PDF-") and second.body() != answer.body()
    for path in ("/patients/999993653/letter-2.pdf", "/patients/123456789/letter.pdf"):
        assert tab.context.request.get(f"{node.url}/ui{path}").status == 404, path


def test_unmatched_traffic_in_pages_and_one_by_one(tab: Any, node: LiveNode) -> None:
    unmatched: list[int] = node.unmatched  # type: ignore[attr-defined]
    manager(tab, node)
    tab.get_by_role("link", name="Unmatched traffic").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Unmatched traffic")
    rows = tab.locator("#exchange-rows tr.exchange")
    expect(rows).to_have_count(50)  # newest first, a page of 50: the session's exchange is not among them
    expect(rows.first).to_have_id(f"exchange-{unmatched[-1]}")
    expect(rows.last).to_have_id(f"exchange-{unmatched[1]}")
    check_page(tab, "unmatched")
    tab.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"exchange-{unmatched[0]}")
    tab.get_by_role("link", name="First page").click()
    tab.get_by_role("link", name="Oldest first").click()
    expect(rows.first).to_have_id(f"exchange-{unmatched[0]}")
    expect(rows).to_have_count(50)

    tab.get_by_role("link", name=f"#{unmatched[0]}", exact=True).click()
    expect(tab.get_by_role("heading", level=1)).to_have_text(f"Exchange #{unmatched[0]}: search")
    expect(tab.locator("main")).to_contain_text(f"GET {node.url}/s/no-such-session/fhir/Condition?n=0")
    breadcrumb = tab.get_by_role("navigation", name="Breadcrumb")
    expect(breadcrumb).to_have_text(re.compile(r"^\s*Unmatched traffic\s+Exchange"))  # not under Sessions
    check_page(tab, "unmatched-exchange")
    flawed = node.flawed  # type: ignore[attr-defined]
    for path, status in ((f"/unmatched/{flawed}", 404), (f"/sessions/cat-a/exchanges/{unmatched[0]}", 404),
                         ("/unmatched?order=sideways", 400), ("/unmatched?after=x", 400)):
        assert tab.goto(f"{node.url}/ui{path}").status == status, path
