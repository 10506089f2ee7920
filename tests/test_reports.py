"""Report writers fed one result model: HTML, JSON and JUnit agree; suppressed rules are shown, not counted."""
from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from speeltuin.results import Excuses, ExpectedFinding, RunResult, ScenarioResult, Step, error_findings
from speeltuin.reports import write_reports
from speeltuin.records import Exchange
from validators.findings import Finding


def _exchange(*findings: Finding) -> Exchange:
    return Exchange(source="proxy", tag="search", direction="to-simulator", method="GET",
                    url="http://127.0.0.1:1/s/x/fhir/Condition", status=200, request_headers={"Accept": "a"},
                    request_body="", response_headers={}, response_body="<b>not html</b>", started_at=0.0,
                    findings=list(findings))


def _run(suppressions: dict[str, str], step_status: str = "passed") -> RunResult:
    scenario = ScenarioResult("s1", "Scenario one", "desc", "receiver", "sess-1",
                              steps=[Step("step", step_status, "evidence")],  # type: ignore[arg-type]
                              exchanges=[_exchange(Finding("BUNDLE-009", "error", "Coding without system", "x"),
                                                   Finding("BUNDLE-010", "warning", "no text", "y"))],
                              excuses=Excuses(suppressions))
    return RunResult("run-1", "t", 0.0, 1.0, [scenario])


def test_suppressed_rules_are_shown_with_reason_but_not_counted(tmp_path) -> None:
    run = _run({"BUNDLE-009": "vendor uses a local code system; accepted by case manager"})
    assert run.counts() == {"error": 0, "warning": 1, "info": 0, "suppressed": 1, "expected": 0}
    assert error_findings(run.scenarios[0].exchanges, run.scenarios[0].excuses) == []
    written = write_reports(run, tmp_path)
    html = written["html"].read_text()
    assert "accepted by case manager" in html and "1 suppressed" in html
    assert "&lt;b&gt;not html&lt;/b&gt;" in html  # bodies are escaped, never rendered
    assert json.loads(written["json"].read_text())["counts"]["suppressed"] == 1


def test_unsuppressed_error_is_counted_and_failed_scenario_is_a_junit_failure(tmp_path) -> None:
    run = _run({}, step_status="failed")
    assert run.counts()["error"] == 1 and run.status == "failed"
    assert error_findings(run.scenarios[0].exchanges, Excuses()) == [
        "GET http://127.0.0.1:1/s/x/fhir/Condition → BUNDLE-009: Coding without system"]
    root = ET.parse(write_reports(run, tmp_path)["junit"]).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1"
    [suite] = root.findall("testsuite")
    scenario = run.scenarios[0]
    assert suite.get("name") == f"{scenario.id} {scenario.title}" and suite.get("failures") == "1"
    [case] = suite.findall("testcase")
    assert case.get("name") == "01 step" and case.find("failure").get("message") == "step: evidence"
    # the failure carries the counted error finding and the exchange it was found in
    assert "GET http://127.0.0.1:1/s/x/fhir/Condition → BUNDLE-009: Coding without system" in case.find("failure").text


def test_findings_provoked_on_purpose_are_shown_not_counted(tmp_path) -> None:
    run = _run({})
    run.scenarios[0].excuses = Excuses(expected=[ExpectedFinding("to-simulator", "search", "BUNDLE-009",
                                                                 "the simulator sent this defect on purpose")])
    assert run.counts()["error"] == 0 and run.counts()["expected"] == 1
    html = write_reports(run, tmp_path)["html"].read_text()
    assert "expected: the simulator sent this defect on purpose" in html
    # the same rule on another kind of exchange still counts
    run.scenarios[0].excuses = Excuses(expected=[ExpectedFinding("to-vendor", "search", "BUNDLE-009", "x")])
    assert run.counts()["error"] == 1
