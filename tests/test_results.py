"""The result model survives its stored form: a run's report can be written again from the store."""
from __future__ import annotations

import json

import pytest

from speeltuin.records import Exchange, FlowDirection, Tag
from speeltuin.results import Excuses, ExpectedFinding, RunResult, ScenarioResult, Step
from validators.findings import Finding


def _run() -> RunResult:
    exchange = Exchange(source="proxy", tag=Tag("search"), direction=FlowDirection("to-simulator"), method="GET",
                        url="http://127.0.0.1/s/x/fhir/Condition", status=200, request_headers={"Accept": "json"},
                        request_body="", response_headers={}, response_body="{}", started_at=1.5, duration_ms=2.0,
                        session_id="x", findings=[Finding("BUNDLE-009", "error", "Coding without system", "p"),
                                                  Finding("BUNDLE-010", "warning", "no display", "q")])
    scenario = ScenarioResult(
        id="RCV-01", title="happy", description="d", vendor_role="receiver", session_id="x",
        steps=[Step("notify", "passed", "201", 3.0), Step("pull", "failed", "no pull")], exchanges=[exchange],
        excuses=Excuses({"BUNDLE-010": "known"}, [ExpectedFinding("to-simulator", "search", "BUNDLE-009", "on purpose")]))
    return RunResult(id="run-1", title="t", started_at=1.0, finished_at=2.0, scenarios=[scenario],
                     environment={"vendor": "acme"})


def test_a_stored_run_reads_back_the_same() -> None:
    stored = json.loads(json.dumps(_run().to_dict()))
    again = RunResult.from_dict(stored)
    assert again.to_dict() == stored
    assert again.status == "failed" and again.counts()["expected"] == 1 and again.counts()["suppressed"] == 1


def test_a_damaged_stored_run_is_refused() -> None:
    stored = _run().to_dict()
    del stored["scenarios"][0]["steps"][0]["title"]
    with pytest.raises(KeyError):
        RunResult.from_dict(stored)
    stored = _run().to_dict()
    stored["scenarios"][0]["exchanges"][0]["tag"] = "no-such-tag"
    with pytest.raises(ValueError):
        RunResult.from_dict(stored)
