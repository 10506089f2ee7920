"""The simulator as receiver follows get-workflow-task (SPEC §3 step 1): it reads the Workflow Task with its pull
token, judges it, and pulls the queries it lists; the vendor side here is a second simulator on loopback."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from simulator.outbound.puller import NOTIFICATION_TASK, WORKFLOW_TASK, pull, union_of_targets
from speeltuin.records import Notification, NotificationOrigin
from tests.conftest import LiveNode
from tests.simulator.helpers import pair_sessions, wait_for_pull
from validators import spec

BSN = "999993653"
TOKEN_PATH = "/s/ven-1/token"
FHIR = "/s/ven-1/fhir/"


def _input(code: str, system: str = spec.TASK_PARAMETER_SYSTEM, **value: Any) -> dict:
    return {"type": {"coding": [{"system": system, "code": code}]}, **value}


def query(text: str) -> dict:
    return _input(spec.INPUT_SEARCH_RESOURCE, valueString=text)


def record_requests(node: LiveNode) -> list[tuple[str, str, str]]:
    """(method, path, query string) of every request the node answers from now on."""
    seen: list[tuple[str, str, str]] = []
    inner = node.app.wsgi_app  # type: ignore[attr-defined]

    def app(environ: dict, start_response: Callable) -> Any:
        seen.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")))
        return inner(environ, start_response)

    node.app.wsgi_app = app  # type: ignore[attr-defined]
    return seen


def notified_with_workflow_task(sim: LiveNode, ven: LiveNode, *, workflow_inputs: list | None,
                                own_inputs: list[dict], workflow_id: str | None = None) -> Notification:
    """The vendor side notifies the simulator with get-workflow-task (nothing pulled yet); then its Workflow Task
    lists `workflow_inputs` (None: no input element at all) and the received Notification Task lists `own_inputs`
    besides its authorization base and get-workflow-task."""
    pair_sessions(sim, ven, vendor_role="sender")
    sim.runtime.config.auto_pull = False
    sent = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": BSN, "workflow_task": True})
    assert sent.status_code == 200 and sent.json()["delivery"]["status"] == 201, sent.text
    [offered] = ven.runtime.store.list_notifications("ven-1")
    workflow = {key: value for key, value in offered.workflow_task.items() if key != "input"}
    if workflow_inputs is not None:
        workflow["input"] = workflow_inputs
    if workflow_id is not None:
        workflow["id"] = workflow_id
    ven.runtime.store.update_notification(offered.id, workflow_task=workflow)
    [received] = [n for n in sim.runtime.store.list_notifications("sim-1") if n.origin == NotificationOrigin.RECEIVED]
    kept = [i for i in received.task["input"]
            if i["type"]["coding"][0]["code"] in (spec.INPUT_AUTHORIZATION_BASE, spec.INPUT_GET_WORKFLOW_TASK)]
    sim.runtime.store.update_notification(received.id, task={**received.task, "input": kept + own_inputs})
    return sim.runtime.store.get_notification(received.id)


def run_pull(sim: LiveNode, notification: Notification) -> dict[str, Any]:
    session = sim.runtime.store.get_session("sim-1")
    pull(sim.runtime.store, sim.runtime.signer, session, notification, timeout=10)
    return sim.runtime.store.get_notification(notification.id).pull_summary


def fhir_requests(seen: list[tuple[str, str, str]]) -> list[str]:
    """The FHIR requests the vendor side answered, relative to its base, as they arrived (documents left out)."""
    return [path[len(FHIR):] + (f"?{qs}" if qs else "") for method, path, qs in seen
            if method == "GET" and path.startswith(FHIR) and not path.startswith(FHIR + "Binary/")]


def test_get_workflow_task_reads_it_and_pulls_exactly_its_queries(node_pair) -> None:
    sim, ven = node_pair
    notification = notified_with_workflow_task(sim, ven, own_inputs=[], workflow_inputs=[
        query("Condition"), query("AllergyIntolerance"),
        _input("77599-9", spec.LOINC, valueString="DocumentReference?status=current")])
    [based_on] = notification.task["basedOn"]
    seen = record_requests(ven)
    summary = run_pull(sim, notification)
    assert sim.runtime.store.get_notification(notification.id).pull_status == "done", summary
    assert fhir_requests(seen) == [based_on["reference"], "Condition", "AllergyIntolerance",
                                   "DocumentReference?status=current"]
    assert ("POST", TOKEN_PATH, "") in seen and summary["documents"]  # the letter the DocumentReference offers
    read, *pulled = summary["results"]
    assert (read["kind"], read["path"], read["status"], read["listed_in"]) == \
        ("read", based_on["reference"], 200, [NOTIFICATION_TASK])
    assert [(r["path"], r["status"], r["listed_in"]) for r in pulled] == [
        ("Condition", 200, [WORKFLOW_TASK]), ("AllergyIntolerance", 200, [WORKFLOW_TASK]),
        ("DocumentReference?status=current", 200, [WORKFLOW_TASK])]
    assert summary["workflow_tasks"] == [{"path": based_on["reference"], "status": 200, "requests": 3,
                                          "findings": []}]


def test_both_lists_are_pulled_once_each_with_where_they_came_from(node_pair) -> None:
    sim, ven = node_pair
    consent = "Consent?category=http://snomed.info/sct%7C11291000146105"
    notification = notified_with_workflow_task(
        sim, ven, own_inputs=[query("Patient?_include=Patient:general-practitioner"), query(consent)],
        workflow_inputs=[query("Consent?category=http%3A%2F%2Fsnomed.info%2Fsct%7C11291000146105"), query("Flag")])
    seen = record_requests(ven)
    summary = run_pull(sim, notification)
    assert sim.runtime.store.get_notification(notification.id).pull_status == "done", summary
    asked = fhir_requests(seen)[1:]  # after the Workflow Task
    assert asked == ["Patient?_include=Patient:general-practitioner", consent, "Flag"]  # the Consent query once
    assert [r["listed_in"] for r in summary["results"][1:]] == [
        [NOTIFICATION_TASK], [NOTIFICATION_TASK, WORKFLOW_TASK], [WORKFLOW_TASK]]


def test_a_workflow_task_without_inputs_is_recorded_with_wf_011(node_pair) -> None:
    sim, ven = node_pair
    notification = notified_with_workflow_task(sim, ven, own_inputs=[query("Condition")], workflow_inputs=None)
    seen = record_requests(ven)
    summary = run_pull(sim, notification)
    [judged] = summary["workflow_tasks"]
    assert judged["status"] == 200 and judged["requests"] == 0
    assert [f["rule"] for f in judged["findings"]] == ["WF-011"]
    assert judged["findings"][0]["severity"] == "error" and judged["findings"][0]["location"] == "Task.input"
    # what the Notification Task lists itself is still pulled
    assert fhir_requests(seen)[1:] == ["Condition"]


def test_a_workflow_task_with_a_broken_query_is_recorded_with_wf_012(node_pair) -> None:
    sim, ven = node_pair
    notification = notified_with_workflow_task(sim, ven, own_inputs=[], workflow_inputs=[
        query("Condition?code=%hl"), query("Flag")])
    summary = run_pull(sim, notification)
    [judged] = summary["workflow_tasks"]
    assert {f["rule"] for f in judged["findings"]} == {"WF-012"}
    assert "NOTIF-031" in judged["findings"][0]["message"]


@pytest.mark.parametrize("workflow_id, reason", [("wf-elsewhere", "answered 404")])
def test_an_unreadable_workflow_task_fails_the_pull_with_the_reason(node_pair, workflow_id: str,
                                                                     reason: str) -> None:
    sim, ven = node_pair
    # the vendor side now serves its Workflow Task under another id: the one basedOn names is not there
    notification = notified_with_workflow_task(sim, ven, own_inputs=[query("Condition")],
                                               workflow_inputs=[query("Flag")], workflow_id=workflow_id)
    summary = run_pull(sim, notification)
    stored = sim.runtime.store.get_notification(notification.id)
    assert stored.pull_status == "failed"
    [unread] = summary["workflow_tasks"]
    assert unread["error"] == reason and "could not be read: " + reason in summary["error"]
    assert [r["path"] for r in summary["results"][1:]] == ["Condition"]  # the notification's own, still pulled


def test_a_workflow_task_query_off_the_senders_base_is_not_requested(node_pair) -> None:
    sim, ven = node_pair
    elsewhere = "https://elsewhere.invalid/fhir/Condition"
    notification = notified_with_workflow_task(sim, ven, own_inputs=[], workflow_inputs=[query(elsewhere)])
    summary = run_pull(sim, notification)
    assert sim.runtime.store.get_notification(notification.id).pull_status == "failed"
    [result] = summary["results"][1:]
    assert result["status"] is None and "not requested" in result["error"]
    assert "WF-012" in {f["rule"] for f in summary["workflow_tasks"][0]["findings"]}


def test_the_reference_vendor_offers_and_follows_the_workflow_task(node_pair) -> None:
    """Both simulators as they run in the demo: the sender's Workflow Task lists every query; the receiver reads it
    and finds nothing wrong with it, and pulls each query once, named by both Tasks."""
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    seen = record_requests(sim)
    sent = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": BSN, "workflow_task": True}).json()
    [offered] = sim.runtime.store.list_notifications("sim-1")
    assert len(offered.workflow_task["input"]) == 29
    pulled = wait_for_pull(ven, "ven-1")
    assert pulled.pull_status == "done", pulled.pull_summary
    [judged] = pulled.pull_summary["workflow_tasks"]
    assert judged == {"path": sent["task"]["basedOn"][0]["reference"], "status": 200, "requests": 29,
                      "findings": []}
    assert all(r["listed_in"] == [NOTIFICATION_TASK, WORKFLOW_TASK] for r in pulled.pull_summary["results"][1:])
    asked = [p for m, p, _q in seen if m == "GET" and p.startswith("/s/sim-1/fhir/") and "/Binary/" not in p]
    assert len(asked) == 30  # the Workflow Task, then 29 queries, none twice


def test_union_keeps_the_first_form_and_order() -> None:
    listed = {NOTIFICATION_TASK: [("search", "Condition"), ("search", "Flag?a=1&b=2")],
              WORKFLOW_TASK: [("search", "Flag?b=2&a=1"), ("read", "Patient/p-1"), ("search", "Condition")]}
    assert union_of_targets(listed) == [
        ("search", "Condition", [NOTIFICATION_TASK, WORKFLOW_TASK]),
        ("search", "Flag?a=1&b=2", [NOTIFICATION_TASK, WORKFLOW_TASK]),
        ("read", "Patient/p-1", [WORKFLOW_TASK])]
