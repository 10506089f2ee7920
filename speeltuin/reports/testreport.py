"""FHIR STU3 TestReport: the run as a resource FHIR test tooling reads; one `test` per scenario, one `action`
per step (operation result pass, fail or skip; the message is the step's evidence)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from speeltuin.results import RunResult, Status

_RESULT: dict[Status, str] = {"passed": "pass", "failed": "fail", "skipped": "skip"}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TEST_ENGINE = "urn:speeltuin"  # the participant that ran the tests


def _instant(epoch: float) -> str:
    """A FHIR instant: date, time to the millisecond and zone."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def _servers(run: RunResult) -> list[dict[str, str]]:
    """The systems under test: the vendor system of each session the run recorded."""
    sessions = list(dict.fromkeys(s.session_id for s in run.scenarios if s.session_id))
    if not sessions:
        return [{"type": "server", "uri": "urn:speeltuin:system-under-test", "display": "the system under test"}]
    return [{"type": "server", "uri": f"urn:speeltuin:session:{session_id}",
             "display": f"the vendor system of session {session_id}"} for session_id in sessions]


def to_resource(run: RunResult) -> dict[str, Any]:
    passed = sum(1 for s in run.scenarios if s.status == "passed")
    score = round(100 * passed / len(run.scenarios), 2) if run.scenarios else 100
    resource: dict[str, Any] = {"resourceType": "TestReport"}
    if _FHIR_ID.match(run.id):
        resource["id"] = run.id
    resource.update({
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:speeltuin:run:{run.id}"},
        "name": run.title,
        "status": "completed",
        "testScript": {"display": f"speeltuin: {run.title}"},  # the scenarios, not TestScript resources
        "result": "fail" if run.status == "failed" else "pass",
        "score": score,
        "tester": "speeltuin",
        "issued": _instant(run.finished_at or run.started_at),
        "participant": [{"type": "test-engine", "uri": TEST_ENGINE, "display": "speeltuin"}, *_servers(run)],
    })
    tests = []
    for scenario in run.scenarios:
        actions = [{"operation": {"result": _RESULT[step.status], "message": step.detail or step.title}}
                   for step in scenario.steps]
        if actions:  # a test has at least one action
            tests.append({"name": scenario.id, "description": scenario.title, "action": actions})
    if tests:
        resource["test"] = tests
    return resource


def render(run: RunResult) -> str:
    return json.dumps(to_resource(run), indent=2, ensure_ascii=False)
