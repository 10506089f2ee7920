"""Known defects of published Notification Tasks (SPEC §4), made on purpose for negative scenarios.

Each defect changes one element of a good Task, so a vendor's receiving node can be shown to refuse it.
"""
from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Callable

from validators.spec import TASK_CODE_SYSTEM

Defect = Callable[[dict], None]


def _identifier_object(task: dict) -> None:
    task["identifier"] = task["identifier"][0]


def _value_not_value_string(task: dict) -> None:
    base = task["input"][0]
    base["value"] = base.pop("valueString")


def _group_without_urn_uuid(task: dict) -> None:
    task["groupIdentifier"]["value"] = task["groupIdentifier"]["value"].removeprefix("urn:uuid:")


def _plural_task_codes(task: dict) -> None:
    task["code"]["coding"][0]["system"] = TASK_CODE_SYSTEM + "s"


def _broken_percent_encoding(task: dict) -> None:
    search = next(i for i in task["input"] if "%7C" in i.get("valueString", ""))
    search["valueString"] = search["valueString"].replace("%7C", "%hl", 1)


def _period_end_past(task: dict) -> None:
    authored = datetime.fromisoformat(task["authoredOn"])
    task["authoredOn"] = (authored - timedelta(days=30)).isoformat(timespec="seconds")
    task["restriction"]["period"]["end"] = (authored - timedelta(days=1)).isoformat(timespec="seconds")


def _placeholder_owner(task: dict) -> None:
    task["owner"]["identifier"]["system"] = "http://example.org/placeholder"


DEFECTS: dict[str, Defect] = {
    "identifier-object": _identifier_object,
    "value-instead-of-valueString": _value_not_value_string,
    "groupIdentifier-without-urn-uuid": _group_without_urn_uuid,
    "plural-TaskCodes": _plural_task_codes,
    "broken-percent-encoding": _broken_percent_encoding,
    "period-end-in-the-past": _period_end_past,
    "placeholder-owner-system": _placeholder_owner,
}


def with_defect(task: dict, name: str) -> dict:
    """A copy of `task` with the named defect; KeyError for an unknown name."""
    damaged = copy.deepcopy(task)
    DEFECTS[name](damaged)
    return damaged
