"""One reader of the Notification Task (SPEC §4) for everyone who needs what a Task says.

The simulator, the validators, the proxy, the scenarios and the CLI all read Tasks through here. Every
function takes untrusted JSON and never raises: what is missing or malformed reads as None or empty.
"""
from __future__ import annotations

from typing import Any

from validators import spec
from validators.json_walk import dig

_NOT_TARGETS = {spec.INPUT_AUTHORIZATION_BASE, spec.INPUT_GET_WORKFLOW_TASK}


def identifier_pairs(task: object) -> list[tuple[Any, Any]]:
    """(system, value) of each Task.identifier, whether sent as an array or (a known defect) as one object."""
    identifier = dig(task, "identifier")
    entries = [identifier] if isinstance(identifier, dict) else identifier if isinstance(identifier, list) else []
    return [(dig(e, "system"), dig(e, "value")) for e in entries if isinstance(e, dict)]


def identifier_value(task: object, *path: str) -> Any:
    """The value of the Identifier at `path` (e.g. "owner", "requester", "onBehalfOf", "for")."""
    return dig(task, *path, "identifier", "value")


def _input_codes(item: object, *, system: str | None = None) -> set[str]:
    """The codes of an input's type (of one coding system, if given); codes that are not strings name nothing."""
    codings = dig(item, "type", "coding")
    return {c["code"] for c in codings if isinstance(c, dict) and isinstance(c.get("code"), str)
            and (system is None or c.get("system") == system)} if isinstance(codings, list) else set()


def inputs(task: object) -> list[Any]:
    found = dig(task, "input")
    return found if isinstance(found, list) else []


def authorization_bases(task: object) -> list[Any]:
    """The valueString of every TaskParameter authorization-base input (None where it has none)."""
    return [dig(item, "valueString") for item in inputs(task)
            if spec.INPUT_AUTHORIZATION_BASE in _input_codes(item, system=spec.TASK_PARAMETER_SYSTEM)]


def pull_targets(task: object) -> list[tuple[str, str]]:
    """(kind, relative path) for every query and read the Task offers, in Task order: its own (own_targets), and
    where get-workflow-task = true, a read of the Workflow Task named in basedOn (workflow_task_reads)."""
    return [target for item in inputs(task) for target in _item_targets(task, item, workflow=True)]


def offered_targets(task: object, workflow_task: object = None) -> list[tuple[str, str]]:
    """Everything a notification offers its receiver to pull: the Task's targets (pull_targets) and, where it has
    one, the queries and reads its Workflow Task lists (SPEC §3 step 1)."""
    return pull_targets(task) + own_targets(workflow_task)


def own_targets(task: object) -> list[tuple[str, str]]:
    """(kind, relative path) of the queries and reads the Task lists itself, in Task order.

    Inputs typed read-resource/search-resource or by a BgZ section code are both targets; the value
    type says which: a valueString is a query, a valueReference a read.
    """
    return [target for item in inputs(task) for target in _item_targets(task, item, workflow=False)]


def workflow_task_reads(task: object) -> list[str]:
    """The relative path of each Workflow Task the Task says to read (get-workflow-task = true, basedOn)."""
    return [path for item in inputs(task) for kind, path in _item_targets(task, item, workflow=True)
            if kind == "read" and spec.INPUT_GET_WORKFLOW_TASK in _input_codes(item)]


def _item_targets(task: object, item: object, *, workflow: bool) -> list[tuple[str, str]]:
    if not isinstance(item, dict):
        return []
    codes = _input_codes(item)
    targets = []
    if workflow and spec.INPUT_GET_WORKFLOW_TASK in codes and item.get("valueBoolean") is True:
        targets += [("read", str(ref.get("reference", ""))) for ref in dig(task, "basedOn") or []
                    if isinstance(ref, dict)]
    if not codes & _NOT_TARGETS:
        if isinstance(item.get("valueString"), str):
            targets.append(("search", item["valueString"]))
        elif isinstance(item.get("valueReference"), dict):
            targets.append(("read", str(item["valueReference"].get("reference", ""))))
    return [(kind, path.lstrip("/")) for kind, path in targets if path]
