"""Runs scenarios against a vendor system, through the proxy, and collects the evidence.

What a scenario is (named steps, its variations, the findings it provokes on purpose): scenarios/base.py.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

import requests

from scenarios.drivers import ReferenceVendor, VendorDriver
from scenarios.stack import Node, Stack
from speeltuin.results import RunResult, ScenarioResult, Step
from speeltuin.records import PROXY_FLUSH_PATH, Exchange, new_id
from speeltuin.store import Store

if TYPE_CHECKING:
    from scenarios.base import Scenario


class StepFailed(Exception):
    """A step's expectation was not met; the message is the evidence shown in the report."""


class StepSkipped(Exception):
    """What a step checks did not happen, and that is no failure (an optional part the vendor does not offer): the
    step is skipped with the message as its note, and the steps after it still run."""


Arrived = TypeVar("Arrived")
STOPPED = "stopped by the user"
CURRENT_SCENARIO: ContextVar[str] = ContextVar("current_scenario", default="")  # set while a scenario runs
CURRENT_STEP: ContextVar[str] = ContextVar("current_step", default="")  # ... and while its step runs
REMIND_EVERY_S = 10.0  # how often a wait that goes on is reported again (the terminal's countdown)


class Progress(Protocol):
    """Who is told how a run goes, step by step: the terminal, the store (and through it the API)."""

    def step_started(self, scenario_id: str, name: str, title: str) -> None: ...

    def step_ended(self, scenario_id: str, name: str, title: str, status: str, detail: str) -> None: ...

    def waiting(self, scenario_id: str, what: str, until: float) -> None: ...  # until: epoch seconds

    def asked(self, scenario_id: str, instruction: str) -> None: ...  # a person must act in the vendor's system


class Fanout:
    """Tells every one of several watchers."""

    def __init__(self, *watchers: Progress) -> None:
        self.watchers = watchers

    def step_started(self, scenario_id: str, name: str, title: str) -> None:
        for watcher in self.watchers:
            watcher.step_started(scenario_id, name, title)

    def step_ended(self, scenario_id: str, name: str, title: str, status: str, detail: str) -> None:
        for watcher in self.watchers:
            watcher.step_ended(scenario_id, name, title, status, detail)

    def waiting(self, scenario_id: str, what: str, until: float) -> None:
        for watcher in self.watchers:
            watcher.waiting(scenario_id, what, until)

    def asked(self, scenario_id: str, instruction: str) -> None:
        for watcher in self.watchers:
            watcher.asked(scenario_id, instruction)


class StoredProgress:
    """Waiting is a stored state: every step of the run, as it goes, in the store (speeltuin/store.py run_steps)."""

    def __init__(self, store: Store, run_id: str, scenarios: list[Scenario]) -> None:
        self.store, self.run_id = store, run_id
        self.scenarios = {scenario.id: scenario for scenario in scenarios}
        for scenario in scenarios:
            for position, step in enumerate(scenario.steps()):
                store.record_step(run_id, scenario.id, step.name, status="pending", title=step.title,
                                  position=position)

    def _session(self, scenario_id: str) -> str | None:
        scenario = self.scenarios.get(scenario_id)
        return scenario.session.id if scenario is not None and scenario.session is not None else None

    def step_started(self, scenario_id: str, name: str, title: str) -> None:
        self.store.record_step(self.run_id, scenario_id, name, status="running", session_id=self._session(scenario_id))

    def step_ended(self, scenario_id: str, name: str, title: str, status: str, detail: str) -> None:
        self.store.record_step(self.run_id, scenario_id, name, status=status, detail=detail,
                               session_id=self._session(scenario_id))

    def waiting(self, scenario_id: str, what: str, until: float) -> None:
        step = CURRENT_STEP.get()
        if step:
            self.store.record_step(self.run_id, scenario_id, step, status="waiting", waiting_for=what,
                                   wait_until=until, session_id=self._session(scenario_id))

    def asked(self, scenario_id: str, instruction: str) -> None:
        step = CURRENT_STEP.get()
        if step:
            self.store.record_step(self.run_id, scenario_id, step, status="running", instruction=instruction,
                                   session_id=self._session(scenario_id))


class Silent:
    """Progress nobody watches."""

    def step_started(self, scenario_id: str, name: str, title: str) -> None:
        pass

    def step_ended(self, scenario_id: str, name: str, title: str, status: str, detail: str) -> None:
        pass

    def waiting(self, scenario_id: str, what: str, until: float) -> None:
        pass

    def asked(self, scenario_id: str, instruction: str) -> None:
        pass


@dataclass
class Harness:
    """What a scenario works with: the simulator, the vendor system's driver, the store the proxy records in."""

    simulator: Node
    vendor: VendorDriver
    store: Store  # the simulator's store, where the proxy records
    environment: dict[str, str] = field(default_factory=dict)  # what the reports name as the environment
    patient_bsn: str = "999993653"
    wait_s: float = 60.0  # how long a step waits for the vendor
    quiet_s: float = 3.0  # how long a vendor is watched for a request it must not make
    stopping: threading.Event = field(default_factory=threading.Event)  # set by Ctrl-C: every wait ends
    progress: Progress = field(default_factory=Silent)
    proxy_url: str | None = None  # a listener of the proxy that records the traffic; None: the simulator's own

    def exchanges(self, session_id: str, since: float | None = None) -> list[Exchange]:
        """What was recorded in the session (since a time), once the proxy has written every flow answered so far.
        In SQL: a vendor's session is kept across runs, and steps poll this while they wait."""
        self.settle()
        return self.store.list_exchanges([session_id], since=since)

    def settle(self) -> None:
        """Wait for the proxy's writer: it records flows off their path, so an answered flow may not be in the
        store yet. A listener that is not the proxy (no flush path: the simulator itself) has nothing to wait for."""
        if not self.proxy_url:
            return
        try:
            answer = requests.get(f"{self.proxy_url.rstrip('/')}{PROXY_FLUSH_PATH}", timeout=40)
        except requests.RequestException as exc:
            raise StepFailed(f"the proxy at {self.proxy_url} did not answer: {exc}") from exc
        if answer.status_code == 503:
            raise StepFailed(f"the proxy at {self.proxy_url} could not record the traffic in time: {answer.text}")

    def wait_for(self, what: str, until: Callable[[], Arrived | None]) -> Arrived:
        """Waiting is a state: told to `progress` (and again every REMIND_EVERY_S), it ends when `until` gives
        what arrived (e.g. the detail string for the report), or at the deadline."""
        started = time.monotonic()
        deadline, reminded = started + self.wait_s, None
        while True:
            done = until()
            if done is not None:
                return done
            now = time.monotonic()
            if now >= deadline:
                raise StepFailed(f"gave up waiting for {what} after {self.wait_s:.0f} s")
            if reminded is None or now - reminded >= REMIND_EVERY_S:
                self.progress.waiting(CURRENT_SCENARIO.get(), what, time.time() + (deadline - now))
                reminded = now
            self.pause(0.2)

    def pause(self, seconds: float) -> None:
        """Sleep, unless the run is being stopped: then the step fails at once."""
        if self.stopping.wait(seconds):
            raise StepFailed(STOPPED)


def stack_harness(stack: Stack, store: Store, *, vendor: VendorDriver | None = None, patient_bsn: str,
                  wait_s: float = 60.0, quiet_s: float = 3.0, progress: Progress | None = None) -> Harness:
    """A harness on a started stack: its reference vendor unless `vendor` drives a real system."""
    if vendor is None:
        if stack.vendor is None:
            raise ValueError("the stack has no reference vendor; give the driver of the vendor system")
        vendor = ReferenceVendor(stack.vendor)
    who = ({"reference vendor": stack.vendor_url} if isinstance(vendor, ReferenceVendor)
           else {"vendor system": vendor.label, "vendor origin": stack.vendor_url})
    environment = {"simulator": stack.simulator.url, **who, "proxy (vendor → simulator)": stack.proxy.front_url,
                   "proxy (simulator → vendor)": stack.proxy.back_url}
    return Harness(stack.simulator, vendor, store, environment, patient_bsn, wait_s, quiet_s,
                   progress=progress or Silent(), proxy_url=stack.proxy.front_url)


def run_scenarios(harness: Harness, scenarios: list[Scenario], *, title: str, workers: int = 1,
                  run_id: str | None = None) -> RunResult:
    """Run the scenarios, `workers` at a time (each must have its own session); results in the given order.

    Ctrl-C ends the run cleanly: the scenario it stopped is failed "interrupted", those not run are skipped.
    """
    run = RunResult(id=run_id or new_id("run-"), title=title, environment=dict(harness.environment))
    harness.store.save_run(run.id, run.started_at, None, {"id": run.id, "title": title, "status": "running",
                                                           "scenarios": [s.id for s in scenarios]})
    harness = replace(harness, progress=Fanout(StoredProgress(harness.store, run.id, scenarios), harness.progress))
    results: dict[int, ScenarioResult] = {}
    try:
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario") as pool:
                futures = {pool.submit(scenario.run, harness): index for index, scenario in enumerate(scenarios)}
                try:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                except KeyboardInterrupt:
                    harness.stopping.set()  # the running scenarios' waits end; those not started never start
                    pool.shutdown(wait=True, cancel_futures=True)
                    results.update({index: future.result() for future, index in futures.items()
                                    if future.done() and not future.cancelled()})
                    raise
        else:
            for index, scenario in enumerate(scenarios):
                results[index] = scenario.run(harness)
    except KeyboardInterrupt:
        harness.stopping.set()
        run.environment["interrupted"] = STOPPED
    for index, scenario in enumerate(scenarios):
        result = results.get(index)
        if result is None:
            steps = [Step("interrupted", "failed", STOPPED)] if scenario.session else []
            result = ScenarioResult(scenario.id, scenario.title, scenario.description, scenario.vendor_role,
                                    scenario.session.id if scenario.session else None, steps)
        run.scenarios.append(result)
    run.finished_at = time.time()
    harness.store.save_run(run.id, run.started_at, run.finished_at, run.to_dict())
    return run
