"""The vendor-as-sender steps say what happened: a failed pull as a sentence naming the failed requests and what
their answers said (not a repr of the pull summary), and SND-15 skipped, not passed, when no Workflow Task came.

Real parts: a SQLite store holding the session, the received notification with the simulator's pull summary, and the
exchanges recorded of the pull; the scenario's own steps read them through a Harness.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from scenarios.base import Scenario
from scenarios.catalogue import find  # imports the families in catalogue order (the registry keeps that order)
from scenarios.drivers import ScenarioSession
from scenarios.runner import Harness, StepFailed, StepSkipped
from scenarios.steps import StepDef, Steps
from scenarios.vendor_sender import describe_failed_pull
from speeltuin.defaults import sqlite_url
from speeltuin.records import Exchange, Notification, NotificationOrigin, Role, Session, SessionConfig
from speeltuin.results import ScenarioResult, Step
from speeltuin.store import Store

FHIR_BASE = "http://127.0.0.1:8082/fhir"  # the vendor's FHIR server, as the simulator reaches it
CONFIG = SessionConfig(vendor_ura="12345678", vendor_client_id="acme", own_ura="90000101", own_client_id="sim",
                       vendor_fhir_base=FHIR_BASE, vendor_token_url="http://127.0.0.1:8082/token")
DENIED = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden",
                                                          "diagnostics": "the token is not for this document"}]}
QUERIES = ("Patient?_include=Patient%3Ageneral-practitioner", "Condition", "DocumentReference?status=current")
PULLED = [{"kind": "search", "path": path, "listed_in": ["notification-task"], "status": 200, "entries": 1}
          for path in QUERIES]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store(sqlite_url(tmp_path / "s.sqlite"))
    opened.create_session(Session("acme-sender", "Acme", Role.SENDER, CONFIG, time.time()))
    yield opened
    opened.close()


def _received(store: Store, summary: dict[str, Any], *, status: str = "failed", number: int = 1) -> None:
    store.add_notification(Notification(
        id=f"t-{number}", session_id="acme-sender", origin=NotificationOrigin.RECEIVED,
        identifier=f"urn:uuid:{number}", group_identifier="urn:uuid:g", authorization_base="b",
        patient_bsn="999993653", owner_ura="90000101", period_end=time.time() + 3600, status="requested",
        task={"resourceType": "Task"}, pull_status=status, pull_summary=summary, created_at=time.time() + number))


def _recorded(store: Store, url: str, status: int, body: dict | str) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    store.add_exchange(Exchange(source="proxy", tag="binary", direction="to-vendor", method="GET", url=url,
                                status=status, request_headers={}, request_body="", response_headers={},
                                response_body=text, started_at=time.time(), session_id="acme-sender"))


def _scenario(cls: type[Scenario], store: Store) -> tuple[Any, Harness]:
    scenario = cls()
    scenario.session = ScenarioSession("acme-sender", {})
    scenario.started_at = time.time() - 60
    return scenario, Harness(None, None, store, wait_s=5)  # type: ignore[arg-type]  # no simulator, no driver


def test_a_failed_document_read_is_named_with_its_status_and_what_the_answer_said(store: Store) -> None:
    """The vendor's case: every query answered 200, the referral letter 403; the detail used to be a repr of those
    200s."""
    _received(store, {"results": PULLED, "documents": [
        {"url": f"{FHIR_BASE}/Binary/letter-p1", "status": 200, "content_type": "application/pdf", "bytes": 900,
         "pdf": True},
        {"url": f"{FHIR_BASE}/Binary/letter-p2", "status": 403, "content_type": "application/fhir+json",
         "bytes": 120, "pdf": False}]})
    _recorded(store, f"{FHIR_BASE}/Binary/letter-p2", 403, DENIED)
    scenario, h = _scenario(find("SND-01"), store)
    with pytest.raises(StepFailed) as failed:
        scenario.await_pull(h)
    assert str(failed.value) == ("pull failed: 1 of 5 requests failed: Binary/letter-p2 answered 403 (the token is "
                                 "not for this document)")


def test_a_failed_query_names_the_oauth_error_or_the_text_the_vendor_answered(store: Store) -> None:
    results = [*PULLED[:2], {**PULLED[2], "status": 401}, {"kind": "search", "path": "Flag",
                                                           "listed_in": ["notification-task"], "status": 500}]
    _received(store, {"results": results, "documents": []})
    _recorded(store, f"{FHIR_BASE}/DocumentReference?status=current", 401,
              {"error": "invalid_token", "error_description": "expired"})
    _recorded(store, f"{FHIR_BASE}/Flag", 500, "<html><body>Internal\n  Server Error</body></html>")
    scenario, h = _scenario(find("SND-01"), store)
    with pytest.raises(StepFailed) as failed:
        scenario.await_pull(h)
    assert str(failed.value) == ("pull failed: 2 of 4 requests failed: DocumentReference?status=current answered 401 "
                                 "(invalid_token: expired); Flag answered 500 (<html><body>Internal Server "
                                 "Error</body></html>)")


def test_the_update_pull_says_the_same(store: Store) -> None:
    _received(store, {"results": PULLED, "documents": []}, status="done", number=1)
    _received(store, {"results": [{**PULLED[1], "status": 404}], "documents": []}, number=2)
    scenario, h = _scenario(find("SND-02"), store)
    with pytest.raises(StepFailed) as failed:
        scenario.await_second_pull(h)
    assert str(failed.value) == "the update: pull failed: 1 of 1 requests failed: Condition answered 404"


def test_a_refused_pull_token_a_stop_and_a_silent_failure_are_said() -> None:
    refused = {"results": [], "documents": [], "error": 'token endpoint answered 400: {"error": "invalid_grant"}'}
    assert describe_failed_pull("failed", refused) == ('pull failed: token endpoint answered 400: '
                                                       '{"error": "invalid_grant"}')
    stopped = {"results": PULLED[:1], "documents": [], "stopped": "notification cancelled or its availability period "
                                                                  "ended"}
    assert describe_failed_pull("stopped", stopped) == ("pull stopped: the pull stopped: notification cancelled or its "
                                                        "availability period ended")
    assert describe_failed_pull("failed", {"worker": "host:1:ab"}) == (
        "pull failed: no request failed and no reason was recorded (an error inside the simulator: its log says more)")


def test_not_a_pdf_unrequested_paths_and_many_failures_are_told_apart() -> None:
    summary = {"results": [{"kind": "read", "path": "../other/Task/1", "status": None,
                            "error": "not under the sender's FHIR base: not requested"},
                           *({"kind": "search", "path": f"Observation?code={n}", "status": 503} for n in range(6))],
               "documents": [{"url": "https://elsewhere.example/letter.pdf", "status": 200, "content_type": "text/html",
                              "bytes": 31, "pdf": False}]}
    text = describe_failed_pull("failed", summary, fhir_base=FHIR_BASE)
    assert text.startswith("pull failed: 8 of 8 requests failed: ../other/Task/1 was not requested (not under the "
                           "sender's FHIR base: not requested); Observation?code=0 answered 503; ")
    assert text.endswith("; and 3 more")
    assert "{" not in text and "[" not in text  # a sentence, no repr of the summary
    only_document = describe_failed_pull("failed", {"results": [], "documents": summary["documents"]},
                                         fhir_base=FHIR_BASE)
    assert only_document == ("pull failed: 1 of 1 requests failed: https://elsewhere.example/letter.pdf answered 200 "
                             "but not with a PDF (Content-Type text/html, 31 bytes)")


# SND-15: a Workflow Task offered by nobody was not followed.

def test_no_workflow_task_offered_skips_the_step_with_the_note(store: Store) -> None:
    _received(store, {"results": PULLED, "documents": []}, status="done")
    scenario, h = _scenario(find("SND-15"), store)
    step = scenario.steps()["workflow-task-followed"]
    detail, status, _ms = Scenario._run_step(step, h)
    assert status == "skipped"
    assert detail.startswith("the vendor offered no Workflow Task, although asked to (workflow_task=true")
    assert "SPEC §3 step 1" in detail


def test_a_followed_workflow_task_still_passes(store: Store) -> None:
    followed = [{**PULLED[1], "path": "Condition", "listed_in": ["notification-task", "workflow-task"]}]
    _received(store, {"results": followed, "documents": [], "workflow_tasks": [
        {"path": "Task/wf-1", "status": 200, "requests": 1, "findings": []}]}, status="done")
    scenario, h = _scenario(find("SND-15"), store)
    assert scenario.workflow_task_followed(h) == "Task/wf-1 read, no error findings; its 1 queries pulled"


def test_a_skipped_step_lets_the_next_run_and_the_scenario_is_no_plain_pass() -> None:
    def skip(h: Harness) -> str:
        raise StepSkipped("nothing offered")

    class Synthetic(Scenario):  # no kind: not registered
        id, title, vendor_role = "synthetic-skip", "Synthetic", "sender"

        def steps(self) -> Steps:
            return Steps(StepDef("a", "A", lambda h: "a"), StepDef("b", "B", skip), StepDef("c", "C", lambda h: "c"))

    result = Synthetic().run(Harness(None, None, None))  # type: ignore[arg-type]  # the steps touch none
    assert [(s.title, s.status, s.detail) for s in result.steps] == [
        ("A", "passed", "a"), ("B", "skipped", "nothing offered"), ("C", "passed", "c")]
    assert result.status == "skipped"


@pytest.mark.parametrize("statuses,expected", [
    (("passed", "passed"), "passed"), (("passed", "skipped", "passed"), "skipped"),
    (("passed", "skipped", "failed"), "failed"), (("failed", "skipped"), "failed"), ((), "skipped")])
def test_scenario_status(statuses: tuple[str, ...], expected: str) -> None:
    steps = [Step(f"s{i}", s) for i, s in enumerate(statuses)]  # type: ignore[arg-type]
    assert ScenarioResult("X", "x", "", "sender", steps=steps).status == expected
