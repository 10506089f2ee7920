"""The sending node's FHIR STU3 resource server: BgZ searches, reads, documents (SPEC §5.4, §6)."""
from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from simulator import faults, provocations
from simulator.endpoints.bearer import authenticate, bearer_token
from simulator.endpoints.http_errors import FhirError, fhir_response, invalid_token
from simulator.fhir.format import JSON_CONTENT_TYPE, is_fhir_media, wanted_format
from simulator.fhir.search import SearchError, SearchResult, read, search, visible
from simulator.lenient import latest_live_notification
from simulator.runtime import Runtime, runtime
from speeltuin.records import Notification, Role, Session
from validators.spec import BSN_SYSTEM
from validators.stu3 import FHIR_JSON, FHIR_XML, IGNORED_SEARCH_PARAMS, REF_PARAMS

fhir_server = Blueprint("fhir_server", __name__)

RESOURCE_TYPE = "<fhirtype:resource_type>"


class ResourceTypeConverter(BaseConverter):
    """Matches a FHIR resource type name, so `metadata` and other lower-case paths are not types."""

    regex = "[A-Z][A-Za-z]{1,63}"
# Parameters that name the patient explicitly (the BgZ MSZ query form of SPEC §6); a value without a system is
# taken as a BSN here. Other chains on `.identifier` of a reference that may point at a Patient name the patient
# when the value's system is the BSN's.
_PATIENT_PARAMS = {"patient.identifier", "beneficiary.identifier", "subject.identifier"}


@fhir_server.before_request
def check_format() -> None:
    wanted_format()  # an unsupported _format is answered 406 before any work is done


@fhir_server.get("/s/<session_id>/fhir/metadata")
def capability_statement(session_id: str) -> Response:
    _sender_session(session_id)
    return fhir_response({
        "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "fhirVersion": "3.0.2",
        "format": [FHIR_JSON, FHIR_XML],
        "software": {"name": "speeltuin simulator"},
        "rest": [{"mode": "server", "security": {"service": [{"text": "OAuth2 bearer (TA Notified Pull)"}]}}],
    })


@fhir_server.get(f"/s/<session_id>/fhir/{RESOURCE_TYPE}")
def search_type(session_id: str, resource_type: str) -> Response:
    return _search(session_id, resource_type, lastn=False)


@fhir_server.get(f"/s/<session_id>/fhir/{RESOURCE_TYPE}/<resource_id>")
def read_resource(session_id: str, resource_type: str, resource_id: str) -> Response:
    if resource_id == "$lastn":
        return _search(session_id, resource_type, lastn=True)
    rt, session, notification = _authorised(session_id)
    workflow = notification.workflow_task
    if resource_type == "Task" and workflow and workflow.get("id") == resource_id:
        return _respond(rt, session, workflow)
    own = rt.patients.resources(notification.patient_bsn)
    # a shared resource only when it belongs to no other patient (SPEC §5.4)
    resource = read(own, resource_type, resource_id) or visible(own, rt.patients.shared(), resource_type,
                                                                resource_id)
    if resource is None:
        raise FhirError(404, f"{resource_type}/{resource_id} is not available to this token")
    if resource_type == "Binary" and _wants_raw():
        raw = base64.b64decode(resource.get("content", ""))
        return Response(raw, status=200, content_type=resource.get("contentType", "application/octet-stream"))
    return _respond(rt, session, resource)


def _search(session_id: str, resource_type: str, *, lastn: bool) -> Response:
    rt, session, notification = _authorised(session_id)
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in IGNORED_SEARCH_PARAMS]
    patient = notification.patient_bsn
    other = _other_patient(resource_type, params, patient)
    if other and rt.has_fault(session, faults.LEAKS_OTHER_PATIENT):
        patient = other  # the fault: the query's patient, not the token's
    elif other:
        raise FhirError(403, f"this token gives access to one patient only, not to BSN {other}")
    try:
        result = search(rt.patients.resources(patient), rt.patients.shared(), resource_type, params, lastn=lastn)
    except SearchError as exc:
        if rt.has_fault(session, faults.MALFORMED_QUERY_NOT_400):
            return _respond(rt, session, _searchset(rt, session, [], []))
        raise FhirError(400, str(exc)) from exc
    return _respond(rt, session, _searchset(rt, session, result.matches, result.includes, result))


def _respond(rt: Runtime, session: Session, resource: dict[str, Any]) -> Response:
    """A resource in the format asked; with the ignores-accept-xml fault, JSON unless _format says otherwise."""
    if rt.has_fault(session, faults.IGNORES_ACCEPT_XML) and "_format" not in request.args:
        return Response(json.dumps(resource, ensure_ascii=False), status=200, content_type=JSON_CONTENT_TYPE)
    return fhir_response(resource)


def _searchset(rt: Runtime, session: Session, matches: list[dict], includes: list[dict],
               result: SearchResult | None = None) -> dict[str, Any]:
    """The searchset: `total` counts every match; with `_count` the next/previous links carry `_offset` (stateless
    paging: the same search with another offset), and the self link is the request as sent (SPEC §6.1)."""
    fhir_base = f"{rt.public_base()}/s/{session.id}/fhir"
    path = request.path.split("/fhir", 1)[1]
    query = request.query_string.decode("latin-1")
    self_url = fhir_base + path + (f"?{query}" if query else "")
    links = [{"relation": "self", "url": self_url}]
    if result is not None:
        kept = [pair for pair in query.split("&") if pair and pair.split("=", 1)[0] != "_offset"]
        for relation, offset in (("next", result.next_offset), ("previous", result.previous_offset)):
            if offset is not None:
                paged = "&".join(kept + [f"_offset={offset}"])
                links.append({"relation": relation, "url": f"{fhir_base}{path}?{paged}"})

    def entry(resource: dict, mode: str) -> dict[str, Any]:
        return {"fullUrl": f"{fhir_base}/{resource['resourceType']}/{resource['id']}", "resource": resource,
                "search": {"mode": mode}}

    return {
        "resourceType": "Bundle", "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "type": "searchset", "total": result.total if result is not None else len(matches),
        "link": links,
        "entry": [entry(r, "match") for r in matches] + [entry(r, "include") for r in includes],
    }


def _sender_session(session_id: str) -> Session:
    session = runtime().store.get_session(session_id)
    if session is None or session.simulator_role != Role.SENDER:
        raise FhirError(404, f"no session {session_id!r} in which the simulator is the sending node")
    return session


def _authorised(session_id: str) -> tuple[Runtime, Session, Notification]:
    """Session, token and the notification it is bound to; raises the error to answer (SPEC §5.3-§5.4)."""
    rt = runtime()
    session = _sender_session(session_id)
    notification = _lenient_notification(rt, session)
    if notification is None:
        token = authenticate(rt, session, "pull")
        notification = rt.store.get_notification(token["notification_id"])
        if notification is None or notification.status != "requested":
            raise invalid_token("the notification behind this token was cancelled")
        if notification.period_end <= time.time():
            raise invalid_token("the notification's availability period has ended")
    _unavailable_once(rt, session, notification)
    return rt, session, notification


def _unavailable_once(rt: Runtime, session: Session, notification: Notification) -> None:
    """Provocation unavailable-once (RCV-13): the first request for each notification is answered 503."""
    if provocations.UNAVAILABLE_ONCE in session.config.provoke and rt.made_unavailable.first(notification.id):
        raise FhirError(503, f"temporarily unavailable, try again in {provocations.RETRY_AFTER_S} s (provocation "
                             f"{provocations.UNAVAILABLE_ONCE})",
                        headers={"Retry-After": str(provocations.RETRY_AFTER_S)})


def _lenient_notification(rt: Runtime, session: Session) -> Notification | None:
    """With serves-without-token (no bearer token) or accepts-unknown-token (a token never issued): the session's
    latest live notification, as if the request carried its token. None: the token is judged as usual."""
    value = bearer_token()
    if value is None:
        lenient = rt.has_fault(session, faults.SERVES_WITHOUT_TOKEN)
    else:
        lenient = rt.has_fault(session, faults.ACCEPTS_UNKNOWN_TOKEN) and rt.store.get_token(value) is None
    return latest_live_notification(rt.store, session.id) if lenient else None


def _other_patient(resource_type: str, params: list[tuple[str, str]], bsn: str) -> str | None:
    """The BSN a query names explicitly when it is not the token's patient."""
    for name, value in params:
        implicit = name in _PATIENT_PARAMS or (resource_type == "Patient" and name == "identifier")
        if not implicit and not _may_name_patient(resource_type, name):
            continue
        for alternative in value.split(","):
            system, _, named = alternative.rpartition("|")
            if (system == BSN_SYSTEM or (implicit and system == "")) and named and named != bsn:
                return named
    return None


def _may_name_patient(resource_type: str, name: str) -> bool:
    """`ref[:Type].identifier` where the reference may point at a Patient (`patient:Patient.identifier` …)."""
    base, dot, chained = name.partition(".")
    if not dot or chained.split(":", 1)[0] != "identifier":
        return False
    code, _, type_modifier = base.partition(":")
    ref = REF_PARAMS.get(resource_type, {}).get(code)
    if ref is None or type_modifier not in ("", "Patient"):
        return False
    return "Patient" in ref.targets or "*" in ref.targets


def _wants_raw() -> bool:
    """Binary as raw bytes unless the request asks for a FHIR format (SPEC §3 step 6)."""
    accepted = {part.split(";")[0].strip() for part in request.headers.get("Accept", "").split(",")}
    return not any(is_fhir_media(media) for media in accepted) and "_format" not in request.args
