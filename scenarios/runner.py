"""Runs scenarios against a vendor system, through the proxy, and collects the evidence.

What a scenario is (named steps, its variations, the findings it provokes on purpose): scenarios/base.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from speeltuin.results import Excuses, RunResult
from scenarios.stack import Node, Stack
from speeltuin.records import Exchange, new_id
from speeltuin.store import Store

if TYPE_CHECKING:
    from scenarios.base import Scenario


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


def error_findings(exchanges: list[Exchange], excuses: Excuses) -> list[str]:
    """Error findings as evidence lines, leaving out suppressed and deliberately provoked ones."""
    return [f"{ex.method} {ex.url} → {f.rule}: {f.message}" for ex in exchanges for f in ex.findings
            if f.severity == "error" and excuses.reason(ex, f) is None]
