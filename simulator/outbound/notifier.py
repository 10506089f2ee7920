"""The sending node's notifier: token from the receiver's AS, then POST the Notification Task (SPEC §3)."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from simulator import faults as fault_names
from simulator.fhir.patient_data import PatientData
from simulator.outbound.client import DIRECT, OutboundError, Transport, client_for, fetch_token, require
from simulator.outbound.defects import DEFECTS, with_defect
from simulator.outbound.task_builder import build_notification_task, build_workflow_task
from speeltuin.keys import Signer
from speeltuin.records import Notification, NotificationOrigin, Role, Session, new_id
from speeltuin.store import Store
from validators.findings import Finding
from validators.json_walk import dig
from validators.rules.http import check_error_status, check_fhir_response
from validators.spec import TASK_STATUS_REQUESTED
from validators.stu3 import FHIR_JSON
from validators.rules.identifiers import is_valid_ura
from validators.task_reader import identifier_pairs, identifier_value


class NotifyError(Exception):
    """The notification could not be made; the message says why."""


def notify(store: Store, signer: Signer, patients: PatientData, session: Session, bsn: str, *,
           period_days: int = 365, timeout: float = 15.0, sender_name: str = "speeltuin",
           workflow_task: bool = False, transport: Transport = DIRECT, defect: str | None = None,
           without_token: bool = False, update_of: str | None = None,
           faults: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Notify the vendor (receiving node) of data for `bsn`; returns what was sent and what came back.

    `defect` names one of simulator.outbound.defects.DEFECTS: the Task is sent with that known defect, for
    negative scenarios in which the vendor must refuse it.
    `without_token`: no notification token is asked for and the Task is POSTed without an Authorization header
    (RCV-03: the vendor must answer 401); the delivery then also carries `www_authenticate` and the `findings` on
    the vendor's answer (none when it refused as SPEC §5.4 says).
    `update_of`: the id of a notification sent in this session: the new one is its update (SPEC §3 step 7), a new
    Task with a new identifier and authorization base and the same groupIdentifier; `bsn` may then be empty (the
    updated notification's patient), else it must be that patient. `faults`: the fault switches in force; the
    update-with-new-group fault gives the update a new groupIdentifier.
    """
    if defect is not None and defect not in DEFECTS:
        raise NotifyError(f"unknown defect {defect!r}; known: {', '.join(sorted(DEFECTS))}")
    if session.is_chain:
        raise NotifyError(session.not_simulated)
    if session.simulator_role != Role.SENDER:
        raise NotifyError(f"in session {session.id} the simulator is the receiving node; it cannot notify")
    group_identifier = None
    if update_of is not None:
        updated = store.get_notification(update_of)
        if updated is None or updated.session_id != session.id or updated.origin != NotificationOrigin.SENT:
            raise NotifyError(f"update_of: no notification {update_of!r} sent in session {session.id}; it must name "
                              "a notification_id the simulator sent in this session")
        if bsn and bsn != updated.patient_bsn:
            raise NotifyError(f"update_of: notification {update_of} is for BSN {updated.patient_bsn}, not {bsn}; "
                              "an update is for the same patient (leave bsn out)")
        bsn = updated.patient_bsn
        if fault_names.UPDATE_WITH_NEW_GROUP not in faults:
            group_identifier = updated.group_identifier
    patient = patients.patient(bsn)
    if patient is None:
        raise NotifyError(f"no test patient with BSN {bsn}")
    try:
        token_url = require(session, "vendor_token_url")
        task_url = require(session, "vendor_notification_base") + "/Task"
    except OutboundError as exc:
        raise NotifyError(str(exc)) from exc
    now = datetime.now(timezone.utc).replace(microsecond=0)
    period_end = now + timedelta(days=period_days)
    parties = dict(bsn=bsn, patient_name=patient.display_name, sender_ura=session.config.own_ura,
                   sender_name=sender_name, receiver_ura=session.config.vendor_ura, authored_on=now)
    workflow = build_workflow_task(task_id=new_id("wf-"), **parties) if workflow_task else None
    authorization_base = secrets.token_urlsafe(24)
    task = build_notification_task(**parties, authorization_base=authorization_base, period_end=period_end,
                                   group_identifier=group_identifier,
                                   workflow_task_id=workflow["id"] if workflow else None)
    sent = with_defect(task, defect) if defect else task
    # Stored before sending: a fast receiver may ask for its pull token before our POST returns.
    notification = store.add_notification(Notification(
        id=new_id("n-"), session_id=session.id, origin=NotificationOrigin.SENT,
        identifier=identifier_pairs(task)[0][1], group_identifier=dig(task, "groupIdentifier", "value"),
        authorization_base=authorization_base, patient_bsn=bsn, owner_ura=_owner(sent, session),
        period_end=period_end.timestamp(), status=TASK_STATUS_REQUESTED, task=sent, workflow_task=workflow))
    delivery = _deliver(signer, session, token_url, "POST", task_url, sent, timeout=timeout, transport=transport,
                        without_token=without_token)
    store.update_notification(notification.id, delivery=delivery)
    result: dict[str, Any] = {"notification_id": notification.id, "task": sent, "delivery": delivery}
    if update_of is not None:
        result["update_of"] = update_of
    return result


def _owner(sent: dict[str, Any], session: Session) -> str:
    """The receiving organisation the sent Task names (a defect may name another): pull tokens are bound to it."""
    owner = identifier_value(sent, "owner")
    return owner if is_valid_ura(owner) else session.config.vendor_ura


def cancel(store: Store, signer: Signer, session: Session, notification_id: str, *,
           timeout: float = 15.0, transport: Transport = DIRECT) -> dict[str, Any]:
    """Cancel a notification we sent: refuse its tokens from now on, then tell the receiver (SPEC §3 step 8).

    The receiver is told with a conditional update, PUT [base]/Task?identifier=<system>|<value>.
    """
    notification = store.get_notification(notification_id)
    if notification is None or notification.session_id != session.id or notification.origin != NotificationOrigin.SENT:
        raise NotifyError(f"no notification {notification_id} sent in session {session.id}")
    if notification.status == "cancelled":
        raise NotifyError(f"notification {notification_id} is cancelled already")
    try:
        token_url = require(session, "vendor_token_url")
        task_url = require(session, "vendor_notification_base") + "/Task"
    except OutboundError as exc:
        raise NotifyError(str(exc)) from exc
    task = {**notification.task, "status": "cancelled"}
    store.update_notification(notification.id, status="cancelled", task=task)
    identifier = task["identifier"][0]
    delivery = _deliver(signer, session, token_url, "PUT", task_url, task, timeout=timeout, transport=transport,
                        params={"identifier": f"{identifier['system']}|{identifier['value']}"})
    store.update_notification(notification.id, delivery={**(notification.delivery or {}), "cancellation": delivery})
    return {"notification_id": notification.id, "task": task, "delivery": delivery}


def _deliver(signer: Signer, session: Session, token_url: str, method: str, url: str, task: dict[str, Any], *,
             timeout: float, transport: Transport, params: dict[str, str] | None = None,
             without_token: bool = False) -> dict[str, Any]:
    """Get a notification token from the receiver's AS, then send the Task; what came back, or the error.

    `without_token`: skip the token and send no Authorization header at all.
    """
    http = client_for(session, transport)
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    try:
        if not without_token:
            access_token = fetch_token(http, token_url, signer.token_request_form(
                session.config.own_client_id, session.config.own_ura, session.config.vendor_token_aud or token_url),
                timeout)
            headers["Authorization"] = f"Bearer {access_token}"
        response = http.request(method, url, json=task, params=params, timeout=timeout, headers=headers)
    except (OutboundError, requests.RequestException) as exc:
        return {"error": str(exc), "at": time.time()}
    delivery: dict[str, Any] = {"status": response.status_code, "location": response.headers.get("Location"),
                "body": response.text[:4000], "at": time.time()}
    if without_token:
        delivery.update(without_token=True, www_authenticate=response.headers.get("WWW-Authenticate"),
                        findings=[f.to_dict() for f in _judged_without_token(response)])
    return delivery


def _judged_without_token(response: requests.Response) -> list[Finding]:
    """A Task POSTed without a token must be refused as SPEC §5.4 says: 401 (HTTP-006) with the Bearer challenge
    (HTTP-004) and an OperationOutcome (HTTP-003)."""
    return check_fhir_response(response.status_code, response.headers, response.content) + \
        check_error_status("no-token", response.status_code)
