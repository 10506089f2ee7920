"""The receiving node's notification endpoint: create and cancel Notification Tasks (SPEC §3-§4)."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from flask import Blueprint, Response, current_app, request

from simulator import faults
from simulator.endpoints.bearer import authenticate, bearer_token
from simulator.endpoints.http_errors import FhirError, fhir_response
from simulator.fhir.format import FHIR_BODY_MEDIA, answer_by_default, body_format, wanted_format
from simulator.outbound.puller import WORKER, pull
from simulator.runtime import Runtime, runtime
from speeltuin.records import Notification, NotificationOrigin, PullStatus, Role, Session, new_id
from validators import safe_json, spec
from validators.findings import Finding, errors
from validators.json_walk import dig
from validators.rules.notification import END_PAST, NOT_TASK, check_notification_task, parse_datetime_tz
from validators.rules.structure import parse_fhir
from validators.rules.token_request import check_notification_grant, check_pull_grant
from validators.task_reader import authorization_bases, identifier_pairs, identifier_value

notification_endpoint = Blueprint("notification_endpoint", __name__)
# [choice] The longest opaque Task value (authorization base, identifiers) a receiver keeps: it must send the value
# back exactly, so a longer one is refused, never cut short (the store indexes it; PostgreSQL's index rows are small).
MAX_OPAQUE = 2048


@notification_endpoint.before_request
def negotiate() -> None:
    """Every answer, errors included, comes in the format asked, else in the one the Task was sent in (FHIR JSON or
    XML); an unsupported `_format` is answered 406 before any work is done."""
    sent = body_format(request.mimetype)
    if sent is not None:
        answer_by_default(sent)
    wanted_format()


@notification_endpoint.post("/s/<session_id>/notify/Task")
def create_task(session_id: str) -> Response:
    rt, session, task = _incoming_task(session_id, "requested", creating=True)
    _check_organisations(rt, session, task)
    notification = rt.store.add_notification(_received(session, task))
    location = f"{rt.public_base()}/s/{session.id}/notify/Task/{notification.id}"
    if rt.config.auto_pull:
        _start_pull(rt, session, notification)
    return _answer(notification.task, 201, {"Location": location})


@notification_endpoint.put("/s/<session_id>/notify/Task")
def cancel_task(session_id: str) -> Response:
    """Conditional update by identifier: PUT Task?identifier=system|value with status cancelled."""
    _system, _, value = request.args.get("identifier", "").rpartition("|")
    if not value:
        raise FhirError(400, "a conditional update needs ?identifier=system|value")
    rt, session, task = _incoming_task(session_id, "cancelled")
    existing = rt.store.find_notification(session.id, NotificationOrigin.RECEIVED, identifier=value)
    if existing is None:
        raise FhirError(404, f"no notification with identifier {value}")
    if rt.has_fault(session, faults.IGNORES_CANCELLATION):
        # The fault: "200, cancelled", yet the notification stays live and is pulled again as if it were new data.
        if rt.config.auto_pull:
            _start_pull(rt, session, existing)
        return _answer({**task, "id": existing.id}, 200)
    rt.store.update_notification(existing.id, status="cancelled", task={**task, "id": existing.id})
    return _answer({**task, "id": existing.id}, 200)


@notification_endpoint.get("/s/<session_id>/notify/Task/<notification_id>")
def read_task(session_id: str, notification_id: str) -> Response:
    rt, session = _receiver_context(session_id)
    found = rt.store.get_notification(notification_id)
    if found is None or found.session_id != session.id or found.origin != NotificationOrigin.RECEIVED:
        raise FhirError(404, f"no Task {notification_id}")
    return _answer(found.task)


def _answer(task: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The Task in the asked format. A Task we keep as received may hold elements the STU3 model does not know (or a
    fault let a defective one in); it cannot be written as XML, which is no reason for a 500."""
    try:
        return fhir_response(task, status, headers)
    except ValueError as exc:  # pydantic's ValidationError, from the XML writer only
        why = f"the Task holds what STU3 XML cannot carry ({str(exc).splitlines()[0]})"
        if request.method == "GET":
            raise FhirError(406, f"{why}; ask for it in JSON") from None
        note = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "information", "code": "informational",
            "diagnostics": f"done; {why}, so it is not echoed here: read it in JSON"}]}
        return fhir_response(note, status, headers)


def _receiver_context(session_id: str, *, creating: bool = False) -> tuple[Runtime, Session]:
    """The session and the request's notification token; raises the error to answer (401 without a valid token).

    `creating`: a new notification, which the accepts-notification-without-token fault lets in without any
    Authorization header (a bad token is still refused).
    """
    rt = runtime()
    session = rt.store.get_session(session_id)
    if session is None or session.simulator_role != Role.RECEIVER:
        raise FhirError(404, f"no session {session_id!r} in which the simulator is the receiving node")
    if not (creating and bearer_token() is None
            and rt.has_fault(session, faults.ACCEPTS_NOTIFICATION_WITHOUT_TOKEN)):
        authenticate(rt, session, "notification")
    return rt, session


def _incoming_task(session_id: str, status: str, *, creating: bool = False) -> tuple[Runtime, Session, dict[str, Any]]:
    """Session, token and a valid Task with the expected status; else the error to answer (nothing stored).

    `creating`: a new notification, where the receiving-side faults accepts-defective-task and
    accepts-expired-period let through the Task errors they name (and accepts-notification-without-token a
    request without a token).
    """
    rt, session = _receiver_context(session_id, creating=creating)
    task, read = _read_body()
    bad = errors(read + check_notification_task(task))
    if creating:
        bad = _overlooked_by_faults(rt, session, bad)
    if bad:
        raise FhirError(400, "the Task is not valid; nothing was stored or changed", bad)
    if task.get("status") != status:
        raise FhirError(400, f"this request must carry a Task with status {status!r}, not {task.get('status')!r}")
    for name, value in (("authorization-base", _authorization_base(task)),
                        ("identifier", (identifier_pairs(task) or [(None, None)])[0][1]),
                        ("groupIdentifier", dig(task, "groupIdentifier", "value"))):
        if isinstance(value, str) and len(value) > MAX_OPAQUE:
            raise FhirError(400, f"the Task's {name} has {len(value):,} characters; this receiver keeps at most "
                                 f"{MAX_OPAQUE:,} (and must give it back exactly, so it does not cut it short)")
    return rt, session, task


def _read_body() -> tuple[dict[str, Any], list[Finding]]:
    """The resource in the request body, FHIR JSON or XML by its Content-Type, read by the one FHIR reader, and what
    reading found (a JSON key twice, XML out of order, ...): judged with the Task rules, alike for both formats."""
    sent = body_format(request.mimetype)
    if sent is None:
        raise FhirError(415, f"Content-Type {request.mimetype or 'missing'} is not a FHIR format; send the Task as "
                             f"one of {', '.join(FHIR_BODY_MEDIA)}")
    try:
        parsed = parse_fhir(request.get_data(cache=False), structure=False)
        safe_json.check_surrogates(parsed.resource)  # JSON may escape a lone surrogate that no store can write
    except ValueError as exc:  # FhirParseError: not well-formed, a DTD/entity, not in the FHIR namespace, not JSON
        raise FhirError(400, f"the body is not a FHIR resource in {sent.upper()}; nothing was stored or changed: "
                             f"{exc}") from None
    if parsed.format != sent:
        raise FhirError(400, f"the body is {parsed.format.upper()} but Content-Type {request.mimetype} says "
                             f"{sent.upper()}; nothing was stored or changed")
    return parsed.resource, parsed.findings


def _overlooked_by_faults(rt: Runtime, session: Session, bad: list[Finding]) -> list[Finding]:
    """The Task errors that still refuse a new notification under the receiving-side faults."""
    if rt.has_fault(session, faults.ACCEPTS_EXPIRED_PERIOD):
        bad = [f for f in bad if f.rule != END_PAST.id]
    if rt.has_fault(session, faults.ACCEPTS_DEFECTIVE_TASK):
        # Every defect but the two that have faults of their own: not a Task at all, and an ended period.
        bad = [f for f in bad if f.rule in (NOT_TASK.id, END_PAST.id)]
    return bad


def _check_organisations(rt: Runtime, session: Session, task: dict[str, Any]) -> None:
    """The Task's parties against this session's, both said in one answer (a sender that swapped them learns it at
    once): owner is the receiver, the simulator's URA; requester.onBehalfOf the sender, the session's vendor, whose
    URA the notification token speaks for (the token endpoint issues it for no other)."""
    receiver, sender = session.config.own_ura, session.config.vendor_ura
    owner, requester = identifier_value(task, "owner"), identifier_value(task, "requester", "onBehalfOf")
    # Judged as the sender's AS will judge our pull-token request (TOK-011): a Task for another organisation is
    # one we could never get a pull token for.
    wrong_owner = [] if rt.has_fault(session, faults.ACCEPTS_OTHER_OWNER) else \
        check_pull_grant({"sub": receiver}, task, received=True)
    wrong_requester = check_notification_grant({"sub": sender}, task)
    problems: list[str] = []
    if wrong_owner:
        mixed_up = " (that is the sender's own URA, which belongs in requester.onBehalfOf)" if owner == sender else ""
        problems.append(f"Task.owner is URA {owner}, but the receiver in this session is the simulator, URA "
                        f"{receiver}{mixed_up}")
    if wrong_requester:
        mixed_up = " (that is the receiver's URA, which belongs in owner)" if requester == receiver else ""
        problems.append(f"Task.requester.onBehalfOf is URA {requester}, but the sender in this session is the "
                        f"vendor, URA {sender}, for which the notification token was issued{mixed_up}")
    if problems:
        raise FhirError(403, "; ".join(problems), wrong_owner + wrong_requester)


def _received(session: Session, task: dict[str, Any]) -> Notification:
    """The record of an accepted Task: it passed the Notification Task rules, unless a fault let a defective one in,
    so every element is read leniently (a missing one reads as empty, a missing period end as a year from now)."""
    end = parse_datetime_tz(dig(task, "restriction", "period", "end"))
    period_end = end.timestamp() if end else time.time() + 365 * 86400
    notification_id = new_id("t-")
    identifiers = [value for _system, value in identifier_pairs(task)]
    return Notification(
        id=notification_id, session_id=session.id, origin=NotificationOrigin.RECEIVED,
        identifier=_text(identifiers[0] if identifiers else None, MAX_OPAQUE),
        group_identifier=_text(dig(task, "groupIdentifier", "value"), MAX_OPAQUE),
        authorization_base=_text(_authorization_base(task), MAX_OPAQUE),
        patient_bsn=_text(identifier_value(task, "for"), 16),
        owner_ura=_text(identifier_value(task, "owner"), 16), period_end=period_end,
        status=spec.TASK_STATUS_REQUESTED, task={**task, "id": notification_id}, pull_status=PullStatus.PENDING,
        pull_summary={"worker": WORKER})


def _authorization_base(task: dict[str, Any]) -> object:
    """The Task's authorization base; from a bare `value` too (a known defect a lenient receiver reads anyway)."""
    bases = [b for b in authorization_bases(task) if isinstance(b, str)]
    if bases:
        return bases[0]
    for item in task.get("input") or []:
        if isinstance(item, dict) and spec.INPUT_AUTHORIZATION_BASE in json.dumps(item.get("type")):
            return item.get("value")
    return None


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _start_pull(rt: Runtime, session: Session, notification: Notification) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        try:
            pull(rt.store, rt.signer, session, notification, timeout=rt.config.http_timeout_s, transport=rt.config.transport,
                 faults=rt.faults_for(session))
        except Exception:  # a crash in the background must be visible, never silent
            app.logger.exception("pull for %s failed", notification.id)
            rt.store.update_notification(notification.id, pull_status=PullStatus.FAILED)

    thread = threading.Thread(target=run, name=f"pull-{notification.id}", daemon=True)
    rt.background.append(thread)
    thread.start()
