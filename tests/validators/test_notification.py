"""The Notification Task: a good Task exactly as SPEC §4 describes, and one defect at a time derived from it."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any, Callable

import pytest

from validators import spec
from validators.rules.notification import check_notification_task

from ._cases import check_case, fires, quiet

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
TASK_PARAMETER = spec.TASK_PARAMETER_SYSTEM


def _input(code: str, system: str = TASK_PARAMETER, **value: Any) -> dict:
    return {"type": {"coding": [{"system": system, "code": code}]}, **value}


def good_task() -> dict:
    return {
        "resourceType": "Task",
        "identifier": [{"system": spec.RFC3986, "value": "urn:uuid:5b3c5a0e-7c0c-4d2a-9f3e-2b8a1f6c9d10"}],
        "basedOn": [{"reference": "Task/bgz-verwijzing-1"}],
        "groupIdentifier": {"system": spec.RFC3986, "value": "urn:uuid:0f8e4c1a-3b2d-4e5f-8a9b-1c2d3e4f5a6b"},
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [{"system": spec.TASK_CODE_SYSTEM, "code": spec.TASK_CODE_PULL_NOTIFICATION}]},
        "for": {"identifier": {"system": spec.BSN_SYSTEM, "value": "999993653"}},
        "authoredOn": "2030-05-01T10:00:00+02:00",
        "restriction": {"period": {"end": "2031-05-01T10:00:00+02:00"}},
        "requester": {
            "agent": {"identifier": {"system": spec.UZI_SYSTEM_SYSTEM, "value": "00012345"}},
            "onBehalfOf": {"identifier": {"system": spec.URA_SYSTEM, "value": "90000101"}},
        },
        "owner": {"identifier": {"system": spec.URA_SYSTEM, "value": "90000202"}},
        "input": [
            _input(spec.INPUT_AUTHORIZATION_BASE, valueString="c0ffee-opaque-base"),
            _input(spec.INPUT_GET_WORKFLOW_TASK, valueBoolean=True),
            _input(spec.INPUT_READ_RESOURCE, valueReference={"reference": "Patient/p-1"}),
            *[_input(spec.INPUT_SEARCH_RESOURCE, valueString=spec.encode_query(q.query)) for q in spec.BGZ_QUERIES],
            _input(spec.INPUT_SEARCH_RESOURCE, valueString=spec.DOCUMENTS_QUERY.query),
            _input("79191-3", spec.LOINC, valueString="Patient?_include=Patient:general-practitioner"),
            _input("11291000146105", spec.SNOMED,
                   valueString="Consent?category=http://snomed.info/sct%7C11291000146105"),
            _input("77599-9", spec.LOINC, valueReference={"reference": "DocumentReference/d-1"}),
        ],
    }


def with_(change: Callable[[dict], object]) -> Callable[[], list]:
    """Findings for the good Task with one change applied (the change edits a copy in place)."""
    def make() -> list:
        task = good_task()
        change(task)
        return check_notification_task(task, now=NOW)
    return make


def good() -> list:
    return check_notification_task(good_task(), now=NOW)


def set_path(path: str, value: Any) -> Callable[[dict], None]:
    """Set (or, with DROP, delete) a dotted path; numbers index lists."""
    def change(task: dict) -> None:
        *parents, last = path.split(".")
        node: Any = task
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is DROP:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = copy.deepcopy(value)
    return change


DROP = object()


def replace_input(index: int, item: dict) -> Callable[[dict], None]:
    return set_path(f"input.{index}", item)


def add_input(item: dict) -> Callable[[dict], None]:
    return lambda task: task["input"].append(item)


def search_value(query: str) -> Callable[[dict], None]:
    return replace_input(3, _input(spec.INPUT_SEARCH_RESOURCE, valueString=query))


CANCELLED_LATE = [set_path("status", "cancelled"), set_path("restriction.period.end", "2030-05-02T10:00:00Z")]

CASES = [
    quiet("NOTIF-001", "good", good),
    fires("NOTIF-001", "patient", with_(set_path("resourceType", "Patient"))),
    fires("NOTIF-001", "array", lambda: check_notification_task([good_task()], now=NOW)),
    quiet("NOTIF-002", "array", good),
    fires("NOTIF-002", "object", with_(lambda t: t.update(identifier=t["identifier"][0]))),
    quiet("NOTIF-003", "one", good),
    fires("NOTIF-003", "none", with_(set_path("identifier", DROP))),
    fires("NOTIF-003", "two", with_(lambda t: t["identifier"].append(dict(t["identifier"][0])))),
    quiet("NOTIF-004", "rfc3986", good),
    fires("NOTIF-004", "other-system", with_(set_path("identifier.0.system", "http://sender.example/tasks"))),
    quiet("NOTIF-005", "urn-uuid", good),
    fires("NOTIF-005", "bare-uuid", with_(set_path("identifier.0.value", "5b3c5a0e-7c0c-4d2a-9f3e-2b8a1f6c9d10"))),
    fires("NOTIF-005", "not-a-uuid", with_(set_path("identifier.0.value", "urn:uuid:1234"))),
    quiet("NOTIF-006", "present", good),
    fires("NOTIF-006", "missing", with_(set_path("groupIdentifier", DROP))),
    quiet("NOTIF-007", "urn-uuid", good),
    fires("NOTIF-007", "without-urn-uuid",
          with_(set_path("groupIdentifier.value", "0f8e4c1a-3b2d-4e5f-8a9b-1c2d3e4f5a6b"))),
    quiet("NOTIF-008", "cancelled", with_(set_path("status", "cancelled"))),
    fires("NOTIF-008", "completed", with_(set_path("status", "completed"))),
    fires("NOTIF-008", "missing", with_(set_path("status", DROP))),
    quiet("NOTIF-009", "proposal", good),
    fires("NOTIF-009", "order", with_(set_path("intent", "order"))),
    quiet("NOTIF-010", "pull-notification", good),
    fires("NOTIF-010", "other-code", with_(set_path("code.coding.0.code", "workflow"))),
    fires("NOTIF-010", "missing", with_(set_path("code", DROP))),
    quiet("NOTIF-011", "singular", good),
    fires("NOTIF-011", "plural-TaskCodes", with_(set_path("code.coding.0.system", spec.TASK_CODE_SYSTEM + "s"))),
    quiet("NOTIF-012", "present", good),
    fires("NOTIF-012", "missing", with_(set_path("for", DROP))),
    fires("NOTIF-012", "reference-only", with_(set_path("for", {"reference": "Patient/p-1"}))),
    quiet("ID-BSN-002", "good", good),
    fires("ID-BSN-002", "for-bsn-999999245", with_(set_path("for.identifier.value", "999999245"))),
    fires("ID-BSN-001", "for-bsn-short", with_(set_path("for.identifier.value", "99999365"))),
    fires("ID-SYS-002", "for-placeholder-system",
          with_(set_path("for.identifier.system", "http://example.org/fhir/NamingSystem/bsn"))),
    fires("ID-SYS-002", "owner-placeholder-system",
          with_(set_path("owner.identifier.system", "http://example.org/ura"))),
    fires("ID-SYS-002", "agent-placeholder-system",
          with_(set_path("requester.agent.identifier.system", "http://gtk.example/systems"))),
    quiet("ID-SYS-002", "good", good),
    fires("ID-UZI-002", "agent-uzi-system-number-letters",
          with_(set_path("requester.agent.identifier.value", "GTK-A"))),
    quiet("ID-UZI-002", "good", good),
    fires("ID-SYS-001", "on-behalf-of-agb", with_(set_path("requester.onBehalfOf.identifier.system", spec.AGB_SYSTEM))),
    fires("ID-URA-001", "owner-ura-short", with_(set_path("owner.identifier.value", "9000020"))),
    fires("ID-URA-001", "on-behalf-of-ura-int", with_(set_path("requester.onBehalfOf.identifier.value", 90000101))),
    quiet("NOTIF-013", "with-timezone", good),
    quiet("NOTIF-013", "utc-with-fraction", with_(set_path("authoredOn", "2030-05-01T08:00:00.123Z"))),
    fires("NOTIF-013", "no-timezone", with_(set_path("authoredOn", "2030-05-01T10:00:00"))),
    fires("NOTIF-013", "date-only", with_(set_path("authoredOn", "2030-05-01"))),
    fires("NOTIF-013", "impossible-date", with_(set_path("authoredOn", "2030-13-01T10:00:00Z"))),
    fires("NOTIF-013", "missing", with_(set_path("authoredOn", DROP))),
    quiet("NOTIF-014", "with-timezone", good),
    fires("NOTIF-014", "missing", with_(set_path("restriction", DROP))),
    fires("NOTIF-014", "no-timezone", with_(set_path("restriction.period.end", "2031-05-01T10:00:00"))),
    quiet("NOTIF-015", "after", good),
    fires("NOTIF-015", "equal", with_(set_path("restriction.period.end", "2030-05-01T08:00:00Z"))),
    fires("NOTIF-015", "before", with_(set_path("authoredOn", "2031-06-01T10:00:00+02:00"))),
    quiet("NOTIF-016", "future", good),
    quiet("NOTIF-016", "cancelled-after-end", with_(lambda t: [c(t) for c in CANCELLED_LATE])),
    fires("NOTIF-016", "past", with_(set_path("restriction.period.end", "2030-05-02T10:00:00Z"))),
    quiet("NOTIF-017", "present", good),
    fires("NOTIF-017", "no-value", with_(set_path("requester.agent.identifier.value", DROP))),
    fires("NOTIF-017", "no-agent", with_(set_path("requester.agent", DROP))),
    quiet("NOTIF-018", "present", good),
    fires("NOTIF-018", "missing", with_(set_path("requester.onBehalfOf", DROP))),
    quiet("NOTIF-019", "present", good),
    fires("NOTIF-019", "missing", with_(set_path("owner", DROP))),
    quiet("NOTIF-020", "task-ref", good),
    quiet("NOTIF-020", "absent", with_(lambda t: (t.pop("basedOn"), t["input"].pop(1)))),
    fires("NOTIF-020", "leading-slash", with_(set_path("basedOn.0.reference", "/Task/bgz-verwijzing-1"))),
    fires("NOTIF-020", "other-type", with_(set_path("basedOn.0.reference", "ServiceRequest/1"))),
    fires("NOTIF-020", "absolute", with_(set_path("basedOn.0.reference", "https://sender.example/fhir/Task/1"))),
    quiet("NOTIF-021", "typed", good),
    fires("NOTIF-021", "no-type", with_(replace_input(2, {"valueReference": {"reference": "Patient/p-1"}}))),
    fires("NOTIF-021", "input-object", with_(lambda t: t.update(input=t["input"][0]))),
    quiet("NOTIF-022", "current-codes", good),
    fires("NOTIF-022", "read-available-resource",
          with_(replace_input(2, _input(spec.INPUT_READ_RESOURCE_14, valueReference={"reference": "Patient/p-1"})))),
    fires("NOTIF-022", "query-available-resources",
          with_(replace_input(3, _input(spec.INPUT_SEARCH_RESOURCE_14, valueString="Condition")))),
    quiet("NOTIF-023", "known", good),
    fires("NOTIF-023", "unknown-parameter", with_(add_input(_input("fetch-everything", valueString="Patient")))),
    fires("NOTIF-023", "loinc-not-in-table", with_(add_input(_input("12345-6", spec.LOINC, valueString="Flag")))),
    quiet("NOTIF-024", "one", good),
    fires("NOTIF-024", "none", with_(lambda t: t["input"].pop(0))),
    fires("NOTIF-024", "two", with_(add_input(_input(spec.INPUT_AUTHORIZATION_BASE, valueString="second")))),
    quiet("NOTIF-025", "value-string", good),
    fires("NOTIF-025", "empty", with_(set_path("input.0.valueString", ""))),
    fires("NOTIF-025", "value-boolean", with_(replace_input(0, _input(spec.INPUT_AUTHORIZATION_BASE,
                                                                      valueBoolean=True)))),
    quiet("NOTIF-026", "typed", good),
    fires("NOTIF-026", "value-instead-of-valueString",
          with_(replace_input(0, _input(spec.INPUT_AUTHORIZATION_BASE, value="c0ffee-opaque-base")))),
    quiet("NOTIF-027", "boolean", good),
    fires("NOTIF-027", "string-true",
          with_(replace_input(1, _input(spec.INPUT_GET_WORKFLOW_TASK, valueString="true")))),
    quiet("NOTIF-028", "based-on-present", good),
    quiet("NOTIF-028", "false-without-based-on",
          with_(lambda t: (t.pop("basedOn"), t["input"][1].update(valueBoolean=False)))),
    fires("NOTIF-028", "true-without-based-on", with_(set_path("basedOn", DROP))),
    quiet("NOTIF-029", "relative", good),
    fires("NOTIF-029", "absolute", with_(set_path("input.2.valueReference.reference",
                                                  "https://sender.example/fhir/Patient/p-1"))),
    fires("NOTIF-029", "query-as-read", with_(set_path("input.2.valueReference.reference", "Patient?_id=p-1"))),
    fires("NOTIF-029", "missing", with_(replace_input(2, _input(spec.INPUT_READ_RESOURCE)))),
    fires("NOTIF-029", "section-reference-absolute",
          with_(lambda t: t["input"][-1].update(valueReference={"reference": "http://x/DocumentReference/d-1"}))),
    quiet("NOTIF-030", "plain-type", with_(search_value("Condition"))),
    quiet("NOTIF-030", "operation", with_(search_value("Observation/$lastn?code=http://loinc.org|85354-9"))),
    fires("NOTIF-030", "absolute", with_(search_value("https://sender.example/fhir/Condition"))),
    fires("NOTIF-030", "leading-slash", with_(search_value("/Condition"))),
    fires("NOTIF-030", "lowercase-type", with_(search_value("condition?clinical-status=active"))),
    fires("NOTIF-030", "missing", with_(replace_input(3, _input(spec.INPUT_SEARCH_RESOURCE)))),
    fires("NOTIF-030", "section-query-absolute",
          with_(lambda t: t["input"][-3].update(valueString="http://sender.example/fhir/Patient"))),
    quiet("NOTIF-031", "escaped-pipe", with_(search_value("Consent?category=http://snomed.info/sct%7C11291000146105"))),
    quiet("NOTIF-031", "unescaped-pipe", with_(search_value("Consent?category=http://snomed.info/sct|11291000146105"))),
    fires("NOTIF-031", "percent-hl", with_(search_value("Consent?category=http%3A%2F%2Fsnomed.info%2Fsct%hl1129"))),
    fires("NOTIF-031", "trailing-percent", with_(search_value("Condition?code=12%"))),
    fires("NOTIF-031", "section-query", with_(lambda t: t["input"][-3].update(valueString="Patient?x=%zz"))),
    quiet("NOTIF-032", "section-with-query", good),
    fires("NOTIF-032", "section-without-value", with_(add_input(_input("48765-2", spec.LOINC)))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_task_has_no_findings() -> None:
    assert good() == []


def test_cancellation_of_the_good_task_has_no_findings() -> None:
    task = good_task()
    task["status"] = "cancelled"
    assert check_notification_task(task, now=NOW) == []


def test_now_defaults_to_the_current_time() -> None:
    task = good_task()
    task["authoredOn"] = "2000-01-01T00:00:00Z"
    task["restriction"]["period"]["end"] = "2000-06-01T00:00:00Z"
    assert [f.rule for f in check_notification_task(task)] == ["NOTIF-016"]
    assert check_notification_task(task, now=datetime(2000, 3, 1)) == []  # naive now is read as UTC


def test_one_defect_one_finding_with_precise_location() -> None:
    task = good_task()
    task["input"][3]["valueString"] = "Consent?category=http%3A%2F%2Fsnomed.info%2Fsct%hl1129"
    [finding] = check_notification_task(task, now=NOW)
    assert finding.rule == "NOTIF-031"
    assert finding.location == "Task.input[3].valueString"
    assert "'%hl'" in finding.message


def test_value_instead_of_value_string_is_reported_once() -> None:
    task = good_task()
    task["input"][0] = _input(spec.INPUT_AUTHORIZATION_BASE, value="c0ffee-opaque-base")
    assert [(f.rule, f.location) for f in check_notification_task(task, now=NOW)] == \
        [("NOTIF-026", "Task.input[0].value")]


def test_identifier_object_still_checks_its_content() -> None:
    task = good_task()
    task["identifier"] = {"system": "urn:ietf:rfc:3986", "value": "not-a-urn"}
    found = [(f.rule, f.location) for f in check_notification_task(task, now=NOW)]
    assert found == [("NOTIF-002", "Task.identifier"), ("NOTIF-005", "Task.identifier.value")]


# SPEC §4: "Known defects of published examples that a validator must catch", plus the two SPEC §4 rules that
# published examples break as often (get-workflow-task without basedOn, period end in the past).
KNOWN_DEFECTS: dict[str, Callable[[dict], object]] = {
    "identifier as an object": lambda t: t.update(identifier=t["identifier"][0]),
    "value instead of valueString": replace_input(0, _input(spec.INPUT_AUTHORIZATION_BASE, value="c0ffee")),
    "groupIdentifier without urn:uuid:": set_path("groupIdentifier.value", "0f8e4c1a-3b2d-4e5f-8a9b-1c2d3e4f5a6b"),
    "placeholder naming system instead of URA": set_path("owner.identifier.system", "http://example.org/ura"),
    "placeholder naming system instead of BSN": set_path("for.identifier.system", "urn:placeholder:bsn"),
    "plural TaskCodes system": set_path("code.coding.0.system", spec.TASK_CODE_SYSTEM + "s"),
    "broken percent-encoding": search_value("Consent?category=http%3A%2F%2Fsnomed.info%2Fsct%hl1129"),
    "get-workflow-task without basedOn": set_path("basedOn", DROP),
    "period end in the past": set_path("restriction.period.end", "2030-05-02T10:00:00Z"),
}
EXPECTED_DEFECT_RULES = {
    "identifier as an object": "NOTIF-002", "value instead of valueString": "NOTIF-026",
    "groupIdentifier without urn:uuid:": "NOTIF-007", "placeholder naming system instead of URA": "ID-SYS-002",
    "placeholder naming system instead of BSN": "ID-SYS-002", "plural TaskCodes system": "NOTIF-011",
    "broken percent-encoding": "NOTIF-031", "get-workflow-task without basedOn": "NOTIF-028",
    "period end in the past": "NOTIF-016",
}


@pytest.mark.parametrize("defect", KNOWN_DEFECTS, ids=list(KNOWN_DEFECTS))
def test_each_known_defect_has_its_own_rule(defect: str) -> None:
    task = good_task()
    KNOWN_DEFECTS[defect](task)
    assert [f.rule for f in check_notification_task(task, now=NOW)] == [EXPECTED_DEFECT_RULES[defect]]


def test_known_defect_rules_are_distinct_and_never_the_generic_system_rule() -> None:
    rules = set(EXPECTED_DEFECT_RULES.values())
    assert len(rules) == len(EXPECTED_DEFECT_RULES) - 1  # URA and BSN placeholders share ID-SYS-002
    assert "ID-SYS-001" not in rules
