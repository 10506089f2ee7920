"""Proof that each scenario catches its defect: the catalogue against the reference vendor with, in each scenario's
own session, the fault switch that scenario exists to catch (simulator/faults.py). The targeted scenario fails, with
its rule id in the evidence; the happy flow of the same role, run with the same fault, still passes. Faultless, the
whole catalogue passes (tests/scenarios/test_demo_end_to_end.py).

One stack (real simulator, reference vendor and mitmdump), every case side by side in sessions of its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from scenarios.base import Scenario
from scenarios.catalogue import all_scenarios
from scenarios.drivers import ReferenceVendor
from scenarios.runner import run_scenarios, stack_harness
from scenarios.stack import Stack, start_stack
from scenarios.vendor_receiver import VendorAsReceiver
from scenarios.vendor_sender import VendorAsSender
from simulator.faults import FAULT_RULES, FAULTS
from speeltuin.results import RunResult, error_findings
from speeltuin.store import Store

HAPPY = {"receiver": VendorAsReceiver, "sender": VendorAsSender}
# (the fault, the scenario class run with it, whether it must fail)
CASES = [(fault, cls, True) for cls in all_scenarios() for fault in cls.catches]
# (a fault the happy flow itself exists to catch, such as every patient's data in the pull, has no such case)
CASES += [(fault, HAPPY[cls.vendor_role], False) for fault in sorted(FAULTS)
          for cls in [next(c for c in all_scenarios() if fault in c.catches)] if cls is not HAPPY[cls.vendor_role]]


def test_every_fault_is_caught_by_a_scenario_of_the_catalogue() -> None:
    caught = {fault for cls in all_scenarios() for fault in cls.catches}
    assert caught == set(FAULTS), set(FAULTS) ^ caught
    assert all(fault in FAULTS for cls in all_scenarios() for fault in cls.catches)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(Path(tmp_path_factory.mktemp("matrix"))) as started:
        yield started


@pytest.fixture(scope="module")
def matrix(stack: Stack) -> tuple[RunResult, list[tuple[str, type[Scenario], bool]]]:
    assert stack.vendor is not None
    instances = [cls() for _fault, cls, _fails in CASES]
    faults = {id(instance): (fault,) for instance, (fault, _cls, _fails) in zip(instances, CASES)}
    driver = ReferenceVendor(stack.vendor, faults_for=lambda scenario: faults[id(scenario)])
    store = Store(stack.simulator.database_url)
    # quiet_s: long enough for a faulty vendor to show what it must not do, also on a busy 2-core machine
    harness = stack_harness(stack, store, vendor=driver, patient_bsn="999993653", wait_s=30, quiet_s=3)
    run = run_scenarios(harness, instances, title="fault matrix", workers=8)
    store.close()
    return run, CASES


def _evidence(scenario) -> str:
    failed = [f"{step.title}: {step.detail}" for step in scenario.steps if step.status == "failed"]
    return "\n".join(failed + error_findings(scenario.exchanges, scenario.excuses))


def test_each_fault_fails_the_scenario_that_targets_it_with_its_rule(matrix) -> None:
    run, cases = matrix
    missed = []
    for (fault, cls, must_fail), result in zip(cases, run.scenarios):
        if not must_fail:
            continue
        evidence = _evidence(result)
        rules = set(cls.rules) | ({FAULT_RULES[fault]} if fault in FAULT_RULES else set())
        if result.status != "failed" or (fault in FAULT_RULES and not any(rule in evidence for rule in rules)):
            missed.append((fault, cls.id, result.status, evidence[:600]))
    assert not missed, missed


def test_the_happy_flow_of_the_same_role_passes_with_each_fault(matrix) -> None:
    run, cases = matrix
    broken = [(fault, cls.id, _evidence(result)[:600]) for (fault, cls, must_fail), result in zip(cases, run.scenarios)
              if not must_fail and result.status != "passed"]
    assert not broken, broken
