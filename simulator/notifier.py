"""The sending node's notifier: token from the receiver's AS, then POST the Notification Task (SPEC §3)."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from simulator.keys import Signer
from simulator.outbound import FHIR_JSON, OutboundError, client_for, fetch_token, require
from simulator.patient_data import PatientData
from simulator.store import Notification, Session, Store, new_id
from simulator.task_builder import build_notification_task


class NotifyError(Exception):
    """The notification could not be made; the message says why."""


def notify(store: Store, signer: Signer, patients: PatientData, session: Session, bsn: str, *,
           period_days: int = 365, timeout: float = 15.0, sender_name: str = "speeltuin") -> dict[str, Any]:
    """Notify the vendor (receiving node) of data for `bsn`; returns what was sent and what came back."""
    if session.simulator_role != "sender":
        raise NotifyError(f"in session {session.id} the simulator is the receiving node; it cannot notify")
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
    task = build_notification_task(
        bsn=bsn, patient_name=patient.display_name, sender_ura=session.get("own_ura"), sender_name=sender_name,
        receiver_ura=session.get("vendor_ura"), authorization_base=secrets.token_urlsafe(24),
        authored_on=now, period_end=period_end)
    # Stored before sending: a fast receiver may ask for its pull token before our POST returns.
    notification = store.add_notification(Notification(
        id=new_id("n-"), session_id=session.id, direction="sent", identifier=task["identifier"][0]["value"],
        group_identifier=task["groupIdentifier"]["value"], authorization_base=task["input"][0]["valueString"],
        patient_bsn=bsn, owner_ura=session.get("vendor_ura"), period_end=period_end.timestamp(),
        status="requested", task=task))
    http = client_for(session)
    try:
        access_token = fetch_token(http, token_url, signer.token_request_form(
            session.get("own_client_id"), session.get("own_ura"), token_url), timeout)
        response = http.post(task_url, json=task, timeout=timeout, headers={
            "Authorization": f"Bearer {access_token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    except (OutboundError, requests.RequestException) as exc:
        delivery = {"error": str(exc), "at": time.time()}
        store.update_notification(notification.id, delivery=delivery)
        return {"notification_id": notification.id, "task": task, "delivery": delivery}
    delivery = {"status": response.status_code, "location": response.headers.get("Location"),
                "body": response.text[:4000], "at": time.time()}
    store.update_notification(notification.id, delivery=delivery)
    return {"notification_id": notification.id, "task": task, "delivery": delivery}
