"""Known defects of published Notification Tasks (SPEC §4), made on purpose for negative scenarios.

Each defect changes one element of a good Task, so a vendor's receiving node can be shown to refuse it.
"""
from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Callable

from validators.json_walk import dig
from validators.spec import INPUT_AUTHORIZATION_BASE, INPUT_SEARCH_RESOURCE, TASK_CODE_SYSTEM

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


# SPEC §7: in the range of the test dataset, 9 digits, and fails the 11-check
BSN_FAILING_11_CHECK = "999999245"
# Valid URAs (8 digits) of no organisation in the test environment: the Task names one as its owner
OTHER_OWNER_URAS = ("99999999", "99999998")


def _bsn_fails_11_check(task: dict) -> None:
    task["for"]["identifier"]["value"] = BSN_FAILING_11_CHECK


def _wrong_task_code(task: dict) -> None:
    task["code"]["coding"] = [{"system": TASK_CODE_SYSTEM, "code": "pull-request"}]


def _intent_not_proposal(task: dict) -> None:
    task["intent"] = "order"


def _input_code(item: object) -> object:
    codings = dig(item, "type", "coding")
    return dig(codings[0], "code") if isinstance(codings, list) and codings else None


def _no_authorization_base(task: dict) -> None:
    task["input"] = [i for i in task["input"] if _input_code(i) != INPUT_AUTHORIZATION_BASE]


def _query_without_resource_type(task: dict) -> None:
    # `?params` names no resource type: NOTIF-030 (a `Foo?...` would pass the Task rules: Foo looks like a type)
    search = next(i for i in task["input"] if _input_code(i) == INPUT_SEARCH_RESOURCE and "?" in i["valueString"])
    search["valueString"] = "?" + search["valueString"].partition("?")[2]


def _owner_other_organisation(task: dict) -> None:
    owner = task["owner"]["identifier"]
    owner["value"] = next(ura for ura in OTHER_OWNER_URAS if ura != owner.get("value"))


DEFECTS: dict[str, Defect] = {
    "identifier-object": _identifier_object,
    "value-instead-of-valueString": _value_not_value_string,
    "groupIdentifier-without-urn-uuid": _group_without_urn_uuid,
    "plural-TaskCodes": _plural_task_codes,
    "broken-percent-encoding": _broken_percent_encoding,
    "period-end-in-the-past": _period_end_past,
    "placeholder-owner-system": _placeholder_owner,
    "bsn-fails-11-check": _bsn_fails_11_check,
    "wrong-task-code": _wrong_task_code,
    "intent-not-proposal": _intent_not_proposal,
    "no-authorization-base": _no_authorization_base,
    "query-without-resource-type": _query_without_resource_type,
    "owner-other-organisation": _owner_other_organisation,
}

# The rule each defect provokes, for the scenarios to declare: an error of
# validators.rules.notification.check_notification_task on the damaged Task, except where noted.
DEFECT_RULES: dict[str, str] = {
    "identifier-object": "NOTIF-002",
    "value-instead-of-valueString": "NOTIF-026",
    "groupIdentifier-without-urn-uuid": "NOTIF-007",
    "plural-TaskCodes": "NOTIF-011",
    "broken-percent-encoding": "NOTIF-031",
    "period-end-in-the-past": "NOTIF-016",
    "placeholder-owner-system": "ID-SYS-002",
    "bsn-fails-11-check": "ID-BSN-002",
    "wrong-task-code": "NOTIF-010",
    "intent-not-proposal": "NOTIF-009",
    "no-authorization-base": "NOTIF-024",
    "query-without-resource-type": "NOTIF-030",
    # The Task is valid (no finding of check_notification_task): its owner is simply not the receiver. The rule is
    # the one the receiving side applies: validators.rules.token_request.check_pull_grant with sub = its own URA
    # (the pull token it could ask would not be for this Task's owner); the simulator refuses it with 403.
    "owner-other-organisation": "TOK-011",
}
# Defects that leave a Task check_notification_task finds no fault with: the receiving side refuses them by who it is.
VALID_TASK_DEFECTS = frozenset({"owner-other-organisation"})


def with_defect(task: dict, name: str) -> dict:
    """A copy of `task` with the named defect; KeyError for an unknown name."""
    damaged = copy.deepcopy(task)
    DEFECTS[name](damaged)
    return damaged
