"""JUnit XML: one testsuite per scenario (named by its id first, e.g. "SND-03 …"), one testcase per step, so CI
systems show conformance like any test suite. A failed step carries its evidence, the scenario's counted error
findings and the exchanges they were found in."""
from __future__ import annotations

from xml.etree import ElementTree as ET

from speeltuin.results import RunResult, ScenarioResult, error_findings

MAX_TEXT = 20_000  # characters of evidence per failure; the HTML report has it all


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.3f}"


def _failure_text(scenario: ScenarioResult, detail: str) -> str:
    found = error_findings(scenario.exchanges, scenario.excuses)
    lines = [detail]
    if found:
        lines += ["", f"{len(found)} error finding(s) in the recorded exchanges:", *found]
    return "\n".join(lines)[:MAX_TEXT]


def _suite(parent: ET.Element, scenario: ScenarioResult) -> tuple[int, int, int]:
    steps = scenario.steps
    failed = sum(1 for s in steps if s.status == "failed")
    skipped = sum(1 for s in steps if s.status == "skipped")
    suite = ET.SubElement(parent, "testsuite", name=f"{scenario.id} {scenario.title}", tests=str(len(steps)),
                          failures=str(failed), errors="0", skipped=str(skipped),
                          time=_seconds(sum(s.duration_ms for s in steps)))
    if scenario.session_id:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="session", value=scenario.session_id)
        ET.SubElement(properties, "property", name="vendor_role", value=scenario.vendor_role)
    for number, step in enumerate(steps, start=1):
        case = ET.SubElement(suite, "testcase", classname=f"speeltuin.{scenario.id}",
                             name=f"{number:02d} {step.title}", time=_seconds(step.duration_ms))
        if step.status == "failed":
            ET.SubElement(case, "failure", message=f"{step.title}: {step.detail[:500]}").text = \
                _failure_text(scenario, step.detail)
        elif step.status == "skipped":
            ET.SubElement(case, "skipped", message=step.detail)
        if step.detail:
            ET.SubElement(case, "system-out").text = step.detail[:MAX_TEXT]
    return len(steps), failed, skipped


def render(run: RunResult) -> str:
    duration = (run.finished_at or run.started_at) - run.started_at
    root = ET.Element("testsuites", name=f"speeltuin {run.title}", time=f"{duration:.3f}")
    totals = [_suite(root, scenario) for scenario in run.scenarios]
    root.set("tests", str(sum(t[0] for t in totals)))
    root.set("failures", str(sum(t[1] for t in totals)))
    root.set("skipped", str(sum(t[2] for t in totals)))
    root.set("errors", "0")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
