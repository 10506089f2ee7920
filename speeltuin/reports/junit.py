"""JUnit XML: one testcase per scenario, so CI systems show conformance like any test suite."""
from __future__ import annotations

from xml.etree import ElementTree as ET

from speeltuin.results import RunResult


def render(run: RunResult) -> str:
    failures = sum(1 for s in run.scenarios if s.status == "failed")
    duration = (run.finished_at or run.started_at) - run.started_at
    suite = ET.Element("testsuite", name=f"speeltuin {run.title}", tests=str(len(run.scenarios)),
                       failures=str(failures), errors="0", time=f"{duration:.3f}")
    for scenario in run.scenarios:
        case = ET.SubElement(suite, "testcase", classname="speeltuin.scenarios", name=scenario.id,
                             time=f"{sum(s.duration_ms for s in scenario.steps) / 1000:.3f}")
        lines = [f"[{s.status}] {s.title}: {s.detail}" for s in scenario.steps]
        if scenario.status == "failed":
            failed = next(s for s in scenario.steps if s.status == "failed")
            ET.SubElement(case, "failure", message=f"{failed.title}: {failed.detail[:500]}").text = "\n".join(lines)
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
