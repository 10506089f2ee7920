"""Builds the Notification Task the sending node POSTs (SPEC §4) and the Workflow Task it may point to (§3 step 1)."""
from __future__ import annotations

import uuid
from datetime import datetime

from validators.spec import (
    BGZ_QUERIES,
    BSN_SYSTEM,
    DOCUMENTS_QUERY,
    INPUT_AUTHORIZATION_BASE,
    INPUT_GET_WORKFLOW_TASK,
    INPUT_SEARCH_RESOURCE,
    RFC3986,
    TASK_CODE_PULL_NOTIFICATION,
    TASK_CODE_SYSTEM,
    TASK_INTENT,
    TASK_PARAMETER_SYSTEM,
    TASK_STATUS_REQUESTED,
    URA_SYSTEM,
    WORKFLOW_TASK_CODE,
    WORKFLOW_TASK_PROFILE,
    encode_query,
)


def _input(code: str, system: str = TASK_PARAMETER_SYSTEM, **value: object) -> dict:
    return {"type": {"coding": [{"system": system, "code": code}]}, **value}


def _parties(sender_ura: str, sender_name: str, receiver_ura: str) -> dict:
    return {
        "requester": {
            "agent": {"identifier": {"system": URA_SYSTEM, "value": sender_ura}, "display": sender_name},
            "onBehalfOf": {"identifier": {"system": URA_SYSTEM, "value": sender_ura}, "display": sender_name},
        },
        "owner": {"identifier": {"system": URA_SYSTEM, "value": receiver_ura}},
    }


def query_inputs(*, section_codes: bool = False) -> list[dict]:
    """The inputs that list what to pull: every BgZ query and the documents, as relative percent-encoded queries.

    The Notification Task and the Workflow Task list them alike (SPEC §3 step 1), so both take them from here:
    typed search-resource (SPEC §4), or with `section_codes` by the LOINC or SNOMED code of each query's BgZ
    section (SPEC §6), as the Workflow Task types them.
    """
    return [_input(*((q.type_code, q.type_system) if section_codes else (INPUT_SEARCH_RESOURCE,)),
                   valueString=encode_query(q.query)) for q in (*BGZ_QUERIES, DOCUMENTS_QUERY)]


def build_workflow_task(*, task_id: str, bsn: str, patient_name: str, sender_ura: str, sender_name: str,
                        receiver_ura: str, authored_on: datetime) -> dict:
    """The optional BgZ referral Workflow Task (SPEC §3 step 1) the Notification Task is based on; its inputs list
    the same queries, each typed by its BgZ section code (SPEC §3 step 1), for a receiver told get-workflow-task."""
    return {
        "resourceType": "Task", "id": task_id, "meta": {"profile": [WORKFLOW_TASK_PROFILE]},
        "identifier": [{"system": RFC3986, "value": f"urn:uuid:{uuid.uuid4()}"}],
        "status": TASK_STATUS_REQUESTED, "intent": "order",
        "code": {"coding": [{**WORKFLOW_TASK_CODE, "display": "Patient referral"}], "text": "Verwijzing met BgZ"},
        "for": {"identifier": {"system": BSN_SYSTEM, "value": bsn}, "display": patient_name},
        "authoredOn": authored_on.isoformat(timespec="seconds"),
        **_parties(sender_ura, sender_name, receiver_ura),
        "input": query_inputs(section_codes=True),
    }


def build_notification_task(*, bsn: str, patient_name: str, sender_ura: str, sender_name: str, receiver_ura: str,
                            authorization_base: str, authored_on: datetime, period_end: datetime,
                            group_identifier: str | None = None, workflow_task_id: str | None = None) -> dict:
    """A requested Notification Task offering every BgZ query and the documents (and the Workflow Task)."""
    workflow = [_input(INPUT_GET_WORKFLOW_TASK, valueBoolean=True)] if workflow_task_id else []
    task = {
        "resourceType": "Task",
        "identifier": [{"system": RFC3986, "value": f"urn:uuid:{uuid.uuid4()}"}],
        "groupIdentifier": {"system": RFC3986, "value": group_identifier or f"urn:uuid:{uuid.uuid4()}"},
        "status": TASK_STATUS_REQUESTED,
        "intent": TASK_INTENT,
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": TASK_CODE_PULL_NOTIFICATION}]},
        "for": {"identifier": {"system": BSN_SYSTEM, "value": bsn}, "display": patient_name},
        "authoredOn": authored_on.isoformat(timespec="seconds"),
        "restriction": {"period": {"end": period_end.isoformat(timespec="seconds")}},
        **_parties(sender_ura, sender_name, receiver_ura),
        "input": [_input(INPUT_AUTHORIZATION_BASE, valueString=authorization_base)] + workflow + query_inputs(),
    }
    if workflow_task_id:
        task["basedOn"] = [{"reference": f"Task/{workflow_task_id}"}]
    return task
