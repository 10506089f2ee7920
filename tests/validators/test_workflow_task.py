"""The BgZ referral Workflow Task (SPEC §3 step 1)."""
from __future__ import annotations

import copy
import random
from typing import Any, Callable

import pytest

from validators import spec
from validators.rules.workflow_task import check_workflow_task

from . import test_robustness
from ._cases import check_case, fires, quiet
from .test_notification import _input
from .test_notification import good_task as good_notification


def good_workflow_task() -> dict:
    return {
        "resourceType": "Task", "id": "bgz-verwijzing-1",
        "meta": {"profile": [spec.WORKFLOW_TASK_PROFILE]},
        "status": "requested", "intent": "order",
        "code": {"coding": [{**spec.WORKFLOW_TASK_CODE, "display": "Patient referral"}]},
        "for": {"identifier": {"system": spec.BSN_SYSTEM, "value": "999993653"}, "display": "Suzanne Moulin"},
        "authoredOn": "2030-05-01T09:30:00+02:00",
        "requester": {"agent": {"identifier": {"system": spec.URA_SYSTEM, "value": "90000101"}}},
        "owner": {"identifier": {"system": spec.URA_SYSTEM, "value": "90000202"}},
        # SPEC §3 step 1: typed by the section code of §6, the relative query in valueString (a read may be listed too)
        "input": [*[_input(q.type_code, q.type_system, valueString=spec.encode_query(q.query))
                    for q in (*spec.BGZ_QUERIES, spec.DOCUMENTS_QUERY)],
                  _input(spec.INPUT_SEARCH_RESOURCE, valueString="Condition"),
                  _input(spec.INPUT_READ_RESOURCE, valueReference={"reference": "Patient/p-1"})],
    }


def with_(change: Callable[[dict], Any], **kw: Any) -> Callable[[], list]:
    def make() -> list:
        task = good_workflow_task()
        change(task)
        return check_workflow_task(task, **kw)
    return make


def good(**kw: Any) -> list:
    return check_workflow_task(good_workflow_task(), **kw)


def set_(key: str, value: Any) -> Callable[[dict], None]:
    return lambda t: t.update({key: copy.deepcopy(value)})


CASES = [
    quiet("WF-001", "task", good),
    fires("WF-001", "service-request", with_(set_("resourceType", "ServiceRequest"))),
    fires("WF-001", "not-an-object", lambda: check_workflow_task("Task")),
    quiet("WF-002", "profile", good),
    quiet("WF-002", "versioned-profile", with_(set_("meta", {"profile": [spec.WORKFLOW_TASK_PROFILE + "|1.0.0"]}))),
    fires("WF-002", "no-meta", with_(lambda t: t.pop("meta"))),
    fires("WF-002", "other-profile",
          with_(set_("meta", {"profile": ["http://hl7.org/fhir/StructureDefinition/Task"]}))),
    quiet("WF-003", "snomed-3457005", good),
    fires("WF-003", "notification-code", with_(set_("code", {"coding": [
        {"system": spec.TASK_CODE_SYSTEM, "code": spec.TASK_CODE_PULL_NOTIFICATION}]}))),
    fires("WF-003", "wrong-system", with_(set_("code", {"coding": [{"system": spec.LOINC, "code": "3457005"}]}))),
    fires("WF-003", "missing", with_(lambda t: t.pop("code"))),
    quiet("WF-004", "requested", good),
    quiet("WF-004", "in-progress", with_(set_("status", "in-progress"))),
    fires("WF-004", "unknown", with_(set_("status", "open"))),
    fires("WF-004", "missing", with_(lambda t: t.pop("status"))),
    quiet("WF-005", "order", good),
    quiet("WF-005", "proposal", with_(set_("intent", "proposal"))),
    fires("WF-005", "unknown", with_(set_("intent", "referral"))),
    fires("WF-005", "list", with_(set_("intent", ["order"]))),
    quiet("WF-006", "bsn", good),
    fires("WF-006", "missing", with_(lambda t: t.pop("for"))),
    fires("WF-006", "reference-only", with_(set_("for", {"reference": "Patient/p-1"}))),
    fires("ID-BSN-002", "bsn-11-check", with_(lambda t: t["for"]["identifier"].update(value="999999245"))),
    fires("ID-SYS-002", "bsn-placeholder-system",
          with_(lambda t: t["for"]["identifier"].update(system="http://example.org/bsn"))),
    quiet("WF-007", "agent-ura", good),
    quiet("WF-007", "on-behalf-of-ura", with_(set_("requester", {
        "agent": {"reference": "Practitioner/pr-1"},
        "onBehalfOf": {"identifier": {"system": spec.URA_SYSTEM, "value": "90000101"}}}))),
    fires("WF-007", "agb-only", with_(set_("requester", {
        "agent": {"identifier": {"system": spec.AGB_SYSTEM, "value": "01069857"}}}))),
    fires("WF-007", "missing", with_(lambda t: t.pop("requester"))),
    fires("ID-SYS-002", "requester-placeholder-system", with_(set_("requester", {
        "agent": {"identifier": {"system": "http://example.org/ura", "value": "90000101"}}}))),
    fires("ID-URA-001", "requester-ura-short",
          with_(lambda t: t["requester"]["agent"]["identifier"].update(value="9"))),
    quiet("WF-008", "owner-ura", good),
    fires("WF-008", "missing", with_(lambda t: t.pop("owner"))),
    fires("ID-URA-001", "owner-ura-int", with_(lambda t: t["owner"]["identifier"].update(value=90000202))),
    quiet("WF-009", "with-timezone", good),
    fires("WF-009", "no-timezone", with_(set_("authoredOn", "2030-05-01T09:30:00"))),
    fires("WF-009", "missing", with_(lambda t: t.pop("authoredOn"))),
    quiet("WF-010", "same-patient", lambda: good(notification=good_notification())),
    quiet("WF-010", "no-notification", with_(lambda t: t["for"]["identifier"].update(value="999990639"))),
    fires("WF-010", "other-patient", with_(lambda t: t["for"]["identifier"].update(value="999990639"),
                                           notification=good_notification())),
    quiet("WF-011", "section-coded-queries", good),
    quiet("WF-011", "one-read", with_(set_("input", [
        _input(spec.INPUT_READ_RESOURCE, valueReference={"reference": "DocumentReference/d-1"})]))),
    quiet("WF-011", "one-bad-query-still-lists-a-pull", with_(set_("input", [
        _input(spec.INPUT_SEARCH_RESOURCE, valueString="/Condition")]))),
    fires("WF-011", "no-input", with_(lambda t: t.pop("input"))),
    fires("WF-011", "empty-input", with_(set_("input", []))),
    fires("WF-011", "only-get-workflow-task", with_(set_("input", [
        _input(spec.INPUT_GET_WORKFLOW_TASK, valueBoolean=True)]))),
    fires("WF-011", "input-not-an-array", with_(set_("input", {"valueString": "Condition"}))),
    quiet("WF-012", "section-coded-queries", good),
    quiet("WF-012", "percent-encoded", with_(set_("input", [
        _input(spec.INPUT_SEARCH_RESOURCE, valueString="Consent?category=http%3A%2F%2Fsnomed.info%2Fsct%7C1")]))),
    fires("WF-012", "leading-slash", with_(lambda t: t["input"].append(
        _input(spec.INPUT_SEARCH_RESOURCE, valueString="/Condition")))),
    fires("WF-012", "broken-escape", with_(lambda t: t["input"].append(
        _input(spec.INPUT_SEARCH_RESOURCE, valueString="Condition?code=%hl")))),
    fires("WF-012", "absolute-url", with_(lambda t: t["input"].append(
        _input(spec.INPUT_SEARCH_RESOURCE, valueString="https://example.org/fhir/Condition")))),
    fires("WF-012", "plural-type", with_(lambda t: t["input"].append(
        _input(spec.INPUT_SEARCH_RESOURCE, valueString="Conditions")))),
    fires("WF-012", "value-instead-of-valueString", with_(lambda t: t["input"].append(
        _input(spec.INPUT_SEARCH_RESOURCE, value="Condition")))),
    fires("WF-012", "unknown-code", with_(lambda t: t["input"].append(
        _input("query", valueString="Condition")))),
    fires("WF-012", "section-code-without-value", with_(lambda t: t["input"].append(
        _input("11450-4", spec.LOINC)))),
    fires("WF-012", "read-not-relative", with_(lambda t: t["input"].append(
        _input(spec.INPUT_READ_RESOURCE, valueReference={"reference": "/Patient/p-1"})))),
    fires("WF-012", "authorization-base", with_(lambda t: t["input"].append(
        _input(spec.INPUT_AUTHORIZATION_BASE, valueString="c0ffee-opaque-base")))),
    fires("WF-012", "input-not-an-object", with_(lambda t: t["input"].append("Condition"))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_workflow_task_has_no_findings() -> None:
    assert good() == []
    assert good(notification=good_notification()) == []


def test_the_notification_task_is_not_a_workflow_task() -> None:
    found = {f.rule for f in check_workflow_task(good_notification())}
    assert {"WF-002", "WF-003"} <= found


def test_mutated_workflow_tasks_never_raise() -> None:
    rnd = random.Random("workflow-task")
    for _ in range(300):
        task = good_workflow_task()
        for _ in range(rnd.randint(1, 3)):
            test_robustness._mutate(task, rnd)
        assert isinstance(check_workflow_task(task, notification=good_notification()), list)


def test_input_findings_name_the_shared_check_and_keep_warnings() -> None:
    """A Workflow Task's query input gets the Notification Task's checks, reported under WF-012 (errors) with the
    check named; a 1.4 slice name stays the Notification Task's warning."""
    task = good_workflow_task()
    task["input"] += [_input(spec.INPUT_SEARCH_RESOURCE, valueString="Condition?code=%hl"),
                      _input(spec.INPUT_SEARCH_RESOURCE_14, valueString="Flag")]
    found = check_workflow_task(task)
    [broken] = [f for f in found if f.rule == "WF-012"]
    assert "(the check of NOTIF-031)" in broken.message and broken.location.endswith(".valueString")
    assert [f.rule for f in found if f.severity == "warning"] == ["NOTIF-022"]
    assert not any(f.rule.startswith("NOTIF-") and f.severity == "error" for f in found)


def test_an_authorization_base_in_a_workflow_task_is_not_shown() -> None:
    task = good_workflow_task()
    task["input"].append(_input(spec.INPUT_AUTHORIZATION_BASE, valueString="c0ffee-opaque-base"))
    assert not any("c0ffee" in f.message for f in check_workflow_task(task))
