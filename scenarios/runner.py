"""Runs scenarios step by step against a vendor system, through the proxy, and collects the evidence."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from scenarios.model import Excuses, ExpectedFinding, RunResult, ScenarioResult, Step
from scenarios.stack import Node, Stack
from speeltuin.records import Exchange, new_id
from speeltuin.store import Store


class StepFailed(Exception):
    """A step's expectation was not met; the message is the evidence shown in the report."""


@dataclass
class Harness:
    """What a scenario works with: the simulator, the vendor (here the reference vendor), the store."""

    stack: Stack
    store: Store  # the simulator's store, where the proxy records
    patient_bsn: str = "999993653"
    wait_s: float = 60.0

    @property
    def simulator(self) -> Node:
        return self.stack.simulator

    @property
    def vendor(self) -> Node:
        return self.stack.vendor

    def exchanges(self, session_id: str) -> list[Exchange]:
        return self.store.list_exchanges([session_id])

    def wait_for(self, what: str, until: Callable[[], str | None]) -> str:
        """Waiting is a state: poll `until` (a detail string when done) up to the deadline."""
        deadline = time.monotonic() + self.wait_s
        while True:
            done = until()
            if done is not None:
                return done
            if time.monotonic() >= deadline:
                raise StepFailed(f"gave up waiting for {what} after {self.wait_s:.0f} s")
            time.sleep(0.2)


class Scenario:
    """A scenario is an ordered list of steps; a variation overrides one step, not the flow."""

    id = ""
    title = ""
    description = ""
    vendor_role = ""

    def __init__(self) -> None:
        self.expected: list[ExpectedFinding] = []  # findings the scenario's own steps provoke on purpose

    def steps(self) -> list[tuple[str, Callable[[Harness], str]]]:
        raise NotImplementedError

    def run(self, harness: Harness) -> ScenarioResult:
        result = ScenarioResult(self.id, self.title, self.description, self.vendor_role)
        failed = False
        for title, step in self.steps():
            if failed:
                result.steps.append(Step(title, "skipped", "an earlier step failed"))
                continue
            started = time.monotonic()
            try:
                detail, status = step(harness), "passed"
            except StepFailed as exc:
                detail, status, failed = str(exc), "failed", True
            except Exception as exc:  # an unexpected error fails the step with its evidence, not the run
                detail, status, failed = f"{type(exc).__name__}: {exc}", "failed", True
            result.steps.append(Step(title, status, detail, (time.monotonic() - started) * 1000))
        result.session_id = self.session_id(harness)
        if result.session_id:
            result.exchanges = harness.exchanges(result.session_id)
            result.excuses = self.excuses(harness, result.session_id)
        return result

    def session_id(self, harness: Harness) -> str | None:
        return None

    def excuses(self, harness: Harness, session_id: str) -> Excuses:
        """The session's suppressions and the findings this scenario provokes on purpose."""
        return Excuses(harness.store.list_suppressions(session_id), list(self.expected))




def run_scenarios(harness: Harness, scenarios: list[Scenario], *, title: str) -> RunResult:
    run = RunResult(id=new_id("run-"), title=title, environment={
        "simulator": harness.simulator.url, "reference vendor": harness.vendor.url,
        "proxy (vendor → simulator)": harness.stack.proxy.front_url,
        "proxy (simulator → vendor)": harness.stack.proxy.back_url})
    for scenario in scenarios:
        run.scenarios.append(scenario.run(harness))
    run.finished_at = time.time()
    harness.store.save_run(run.id, run.started_at, run.finished_at, run.to_dict())
    return run


def same_request(url: str, relative: str) -> bool:
    """Whether a recorded URL asks what a Task's relative query or read asks (encoding-insensitive)."""
    recorded = urlsplit(url)
    wanted = urlsplit(relative)
    return (unquote(recorded.path).endswith("/" + unquote(wanted.path).strip("/"))
            and sorted(parse_qsl(recorded.query, keep_blank_values=True))
            == sorted(parse_qsl(wanted.query, keep_blank_values=True)))


def error_findings(exchanges: list[Exchange], excuses: Excuses) -> list[str]:
    """Error findings as evidence lines, leaving out suppressed and deliberately provoked ones."""
    return [f"{ex.method} {ex.url} → {f.rule}: {f.message}" for ex in exchanges for f in ex.findings
            if f.severity == "error" and excuses.reason(ex, f) is None]
