"""What a Task offers to pull (validators.task_reader): its own queries and reads, and the Workflow Task it names."""
from __future__ import annotations

from validators import spec
from validators.task_reader import own_targets, pull_targets, workflow_task_reads


def _input(code: str, system: str = spec.TASK_PARAMETER_SYSTEM, **value: object) -> dict:
    return {"type": {"coding": [{"system": system, "code": code}]}, **value}


TASK = {"resourceType": "Task", "basedOn": [{"reference": "Task/wf-1"}], "input": [
    _input(spec.INPUT_AUTHORIZATION_BASE, valueString="opaque-base"),
    _input(spec.INPUT_SEARCH_RESOURCE, valueString="Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|1"),
    _input(spec.INPUT_GET_WORKFLOW_TASK, valueBoolean=True),
    _input("11450-4", system="http://loinc.org", valueString="/Condition?patient.identifier=x"),
    _input(spec.INPUT_READ_RESOURCE, valueReference={"reference": "Binary/letter-1"}),
    "not an input",
]}


def test_own_targets_are_the_tasks_queries_and_reads_in_order_without_leading_slash() -> None:
    assert own_targets(TASK) == [("search", "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|1"),
                                 ("search", "Condition?patient.identifier=x"), ("read", "Binary/letter-1")]


def test_the_workflow_task_is_read_only_when_asked_and_named() -> None:
    assert workflow_task_reads(TASK) == ["Task/wf-1"]
    assert pull_targets(TASK) == [own_targets(TASK)[0], ("read", "Task/wf-1"), *own_targets(TASK)[1:]]
    not_asked = {**TASK, "input": [_input(spec.INPUT_GET_WORKFLOW_TASK, valueBoolean=False), *TASK["input"][:2]]}
    assert workflow_task_reads(not_asked) == [] and pull_targets(not_asked) == own_targets(not_asked)
    unnamed = {key: value for key, value in TASK.items() if key != "basedOn"}
    assert workflow_task_reads(unnamed) == [] and pull_targets(unnamed) == own_targets(TASK)
