"""The sending node's FHIR STU3 resource server: BgZ searches, reads, documents (SPEC §5.4, §6)."""
from __future__ import annotations

import base64
import json
import random
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Sequence

from flask import Blueprint, Response, g, request
from werkzeug.routing import BaseConverter

from simulator import faults, provocations
from simulator.endpoints.bearer import authenticate_pull, bearer_token, pull_access
from simulator.endpoints.http_errors import FhirError, fhir_response, invalid_token
from simulator.fhir.format import JSON_CONTENT_TYPE, UnsupportedFormat, is_fhir_media, wanted_format
from simulator.fhir.patient_data import Resources
from simulator.fhir.search import SearchError, SearchResult, read, search, visible
from simulator.lenient import latest_live_notification
from simulator.runtime import Runtime, runtime
from speeltuin.records import Notification, Role, Session
from speeltuin.store import PullAccess
from validators.rules.http import accepts
from validators.spec import BSN_SYSTEM
from validators.stu3 import FHIR_JSON, FHIR_XML, IGNORED_SEARCH_PARAMS, REF_PARAMS, FormatFamily

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
    """An unsupported `_format`, or an Accept that admits none of the formats this server answers in, is answered
    406 before any work is done (a Binary read answers in its own media type too: its read checks that)."""
    wanted_format()
    accept = request.headers.get("Accept")
    if "_format" in request.args or (request.view_args or {}).get("resource_type") == "Binary":
        return
    if not any(accepts(accept, media) for media in (FHIR_JSON, FHIR_XML)):
        raise UnsupportedFormat(f"Accept {accept!r} admits no format this server answers in; ask for {FHIR_JSON} "
                                f"or {FHIR_XML}")


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
    rt, session, notification, generation = _authorised(session_id)
    workflow = notification.workflow_task
    if resource_type == "Task" and workflow and workflow.get("id") == resource_id:
        return _respond(rt, session, workflow)
    own, shared = _patient_data(rt, session, notification.patient_bsn, generation)
    # a shared resource only when it belongs to no other patient (SPEC §5.4)
    resource = read(own, resource_type, resource_id) or visible(own, shared, resource_type, resource_id)
    if resource is None:
        raise FhirError(404, f"{resource_type}/{resource_id} is not available to this token")
    if resource_type == "Binary" and _wants_raw():
        media = resource.get("contentType", "application/octet-stream")
        if not accepts(request.headers.get("Accept"), media):
            raise UnsupportedFormat(f"Accept {request.headers.get('Accept')!r} admits neither this Binary's "
                                    f"{media} nor a FHIR format ({FHIR_JSON} or {FHIR_XML})")
        raw = base64.b64decode(resource.get("content", ""))
        return Response(raw, status=200, content_type=media)
    return _respond(rt, session, resource, (own, shared))


def _search(session_id: str, resource_type: str, *, lastn: bool) -> Response:
    rt, session, notification, generation = _authorised(session_id)
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in IGNORED_SEARCH_PARAMS]
    patient = notification.patient_bsn
    other = _other_patient(resource_type, params, patient)
    if other and rt.has_fault(session, faults.LEAKS_OTHER_PATIENT):
        patient = other  # the fault: the query's patient, not the token's
    elif other:
        raise FhirError(403, f"this token gives access to one patient only, not to BSN {other}")
    own, shared = _patient_data(rt, session, patient, generation)
    try:
        result = search(own, shared, resource_type, params, lastn=lastn)
    except SearchError as exc:
        if rt.has_fault(session, faults.MALFORMED_QUERY_NOT_400):
            return _respond(rt, session, _searchset(rt, session, [], []))
        raise FhirError(400, str(exc)) from exc
    return _respond(rt, session, _searchset(rt, session, result.matches, result.includes, result), (own, shared))


def _patient_data(rt: Runtime, session: Session, bsn: str, generation: str | None) -> tuple[Resources, Resources]:
    """The patient's own resources and the shared ones; with the serves-every-patient fault, every patient's as if
    they were this one's (no narrowing to the token's patient)."""
    own, shared = rt.patients.own_and_shared(bsn, generation)
    if rt.has_fault(session, faults.SERVES_EVERY_PATIENT):
        own = Resources([resource for patient in rt.patients.all_patients()
                         for resource in rt.patients.own_and_shared(patient.bsn, generation)[0]])
    return own, shared


def _respond(rt: Runtime, session: Session, resource: dict[str, Any], written: Sequence[Resources] = ()) -> Response:
    """A resource in the format asked; with the ignores-accept-xml fault, JSON unless _format says otherwise.
    `written`: the cached resources it (or its entries) came from, which write each one's JSON once."""
    if (rt.has_fault(session, faults.IGNORES_ACCEPT_XML) and "_format" not in request.args) or \
            (written and _answer_format() == "json"):
        return Response(_json(resource, written), status=200, content_type=JSON_CONTENT_TYPE)
    return fhir_response(resource)


def _answer_format() -> FormatFamily:
    try:
        return wanted_format()
    except UnsupportedFormat:
        return "json"  # as fhir_response: check_format has answered a bad _format with a 406 before


def _json(resource: dict[str, Any], written: Sequence[Resources]) -> bytes:
    """json.dumps(resource, ensure_ascii=False), encoded; the resource, or a Bundle's entry resources, as `written`
    keeps them."""
    entries = resource.get("entry") if resource.get("resourceType") == "Bundle" else None
    if not entries or next(reversed(resource)) != "entry":
        return _written(resource, written).encode()
    head = _dumps({key: value for key, value in resource.items() if key != "entry"})
    return f'{head[:-1]}, "entry": [{", ".join(_entry_json(entry, written) for entry in entries)}]}}'.encode()


def _entry_json(entry: dict[str, Any], written: Sequence[Resources]) -> str:
    """An entry as _searchset makes it, its resource as `written` keeps it; any other entry as json.dumps writes it."""
    if list(entry) != ["fullUrl", "resource", "search"]:
        return _dumps(entry)
    return (f'{{"fullUrl": {_dumps(entry["fullUrl"])}, "resource": {_written(entry["resource"], written)}, '
            f'"search": {_dumps(entry["search"])}}}')


def _written(resource: dict[str, Any], written: Sequence[Resources]) -> str:
    for kept in written:
        text = kept.json(resource)
        if text is not None:
            return text
    return _dumps(resource)


# json.dumps(value, ensure_ascii=False), without making an encoder for every call
_dumps = json.JSONEncoder(ensure_ascii=False).encode


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
        "resourceType": "Bundle", "id": _bundle_id(),
        "meta": {"lastUpdated": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "type": "searchset", "total": result.total if result is not None else len(matches),
        "link": links,
        "entry": [entry(r, "match") for r in matches] + [entry(r, "include") for r in includes],
    }


def _bundle_id() -> str:
    """A random UUID from the process's generator: a Bundle id needs no secrecy, and os.urandom (uuid4) would hand
    the GIL to another thread and wait to get it back, on every search."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _sender_session(session_id: str, known: Session | None = None) -> Session:
    """The session (`known`: as read already, else from the store), if the simulator is its sending node."""
    session = known if known is not None and known.id == session_id else runtime().store.get_session(session_id)
    if session is None or session.simulator_role != Role.SENDER:
        raise FhirError(404, f"no session {session_id!r} in which the simulator is the sending node")
    return session


def _authorised(session_id: str) -> tuple[Runtime, Session, Notification, str | None]:
    """Session, token and the notification it is bound to, and the patient-data generation read with them (None:
    not read); raises the error to answer (SPEC §5.3-§5.4). The usual request reads all of it in one statement."""
    rt = runtime()
    # read with the session by the app's check before this handler (one statement per request), else now
    access = g.pop("speeltuin_pull_access") if "speeltuin_pull_access" in g else pull_access(rt)
    session = _sender_session(session_id, access.session if access is not None else None)
    notification = _lenient_notification(rt, session, access)
    if notification is None:
        _token, notification = authenticate_pull(access, session)
        if notification is None or notification.status != "requested":
            raise invalid_token("the notification behind this token was cancelled")
        if notification.period_end <= time.time():
            raise invalid_token("the notification's availability period has ended")
    _unavailable_once(rt, session, notification)
    return rt, session, notification, access.patient_data_generation if access is not None else None


def _unavailable_once(rt: Runtime, session: Session, notification: Notification) -> None:
    """Provocation unavailable-once (RCV-13): the first request for each notification is answered 503."""
    if provocations.UNAVAILABLE_ONCE in session.config.provoke and rt.made_unavailable.first(notification.id):
        raise FhirError(503, f"temporarily unavailable, try again in {provocations.RETRY_AFTER_S} s (provocation "
                             f"{provocations.UNAVAILABLE_ONCE})",
                        headers={"Retry-After": str(provocations.RETRY_AFTER_S)})


def _lenient_notification(rt: Runtime, session: Session, access: PullAccess | None) -> Notification | None:
    """With serves-without-token (no bearer token) or accepts-unknown-token (a token never issued: no `access`): the
    session's latest live notification, as if the request carried its token. None: the token is judged as usual."""
    if bearer_token() is None:
        lenient = rt.has_fault(session, faults.SERVES_WITHOUT_TOKEN)
    else:
        lenient = rt.has_fault(session, faults.ACCEPTS_UNKNOWN_TOKEN) and access is None
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
