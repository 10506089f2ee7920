"""The JSON admin API (sessions, notify, notifications), protected by the admin key.

- `POST /api/sessions`: a session; besides the vendor's facts, `faults` (the reference vendor's fault switches in
  this session, simulator/faults.py) and `provoke` (what the simulator does to the vendor on purpose in this
  session, simulator/provocations.py: `refuse-pull-tokens`, `unavailable-once`).
- `POST /api/sessions/<id>/notify`: the simulator (sending node) notifies the vendor. Body: `bsn`, `period_days`
  (1-3650, default 365), `workflow_task` (true/false), `defect` (a known Task defect, simulator/outbound/defects.py),
  `without_token` (true: no notification token, no Authorization header; the delivery shows the vendor's answer
  and its findings), `update_of` (a notification id sent in this session: a new Task with the same
  groupIdentifier, SPEC §3 step 7; `bsn` may be left out). Answers 200 with `notification_id`, `task`, `delivery`
  whenever the attempt was made; 400 with `{"error"}` for a request that cannot be made.
- `POST /api/sessions/<id>/notifications/<notification id>/cancel`, `GET /api/sessions/<id>/notifications`,
  suppressions, patients and probes: see each route.
"""
from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulator.outbound.notifier import NotifyError, cancel, notify
from simulator.outbound.probes import ProbeError, probe
from simulator.runtime import runtime
from simulator.sessions import (
    SessionError,
    SuppressionError,
    create_session,
    session_view,
    set_provocations,
    suppress_rule,
)
from speeltuin.pull_evidence import evidence_of_sent
from speeltuin.records import Session
from speeltuin.session_report import ACCESS_KEY_NOTE, SESSION_KEY_HEADER
from testdata.patient_import import PatientImportError, parse_patients_json, patient_to_dict

admin_api = Blueprint("admin_api", __name__, url_prefix="/api")
ADMIN_KEY_HEADER = "X-Admin-Key"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@admin_api.errorhandler(AdminError)
def admin_error(exc: AdminError) -> tuple[Response, int]:
    return jsonify({"error": exc.message}), exc.status


def admin_key_given() -> bool:
    """Whether the request carries this node's admin key (compared in constant time)."""
    given = request.headers.get(ADMIN_KEY_HEADER)
    return given is not None and hmac.compare_digest(given.encode(), runtime().config.admin_key.encode())


@admin_api.before_request
def require_admin_key() -> None:
    if not admin_key_given():
        if request.headers.get(SESSION_KEY_HEADER):
            raise AdminError(401, f"this call needs the admin key ({ADMIN_KEY_HEADER}); a session's access key "
                             f"({SESSION_KEY_HEADER}) opens its evidence only: /api/sessions/<id>/exchanges, "
                             "/report.<kind> and /runs (or sign in to the web UI with it, to notify and act)")
        raise AdminError(401, f"missing or wrong {ADMIN_KEY_HEADER} header")


def _session(session_id: str) -> Session:
    session = runtime().store.get_session(session_id)
    if session is None:
        raise AdminError(404, f"no session {session_id!r}")
    return session


@admin_api.post("/sessions")
def sessions_create() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    rt = runtime()
    try:
        session = create_session(rt.store, body, own_ura=rt.config.ura, own_client_id=rt.config.client_id)
    except SessionError as exc:
        raise AdminError(400, str(exc)) from exc
    # The session's own access key (X-Session-Key: its exchanges and report): shown in this answer only.
    view = session_view(session, rt.public_base())
    view.update(access_key=rt.store.new_session_key(session.id), access_key_note=ACCESS_KEY_NOTE)
    return jsonify(view), 201


@admin_api.get("/sessions")
def sessions_list() -> Any:
    rt = runtime()
    return jsonify([session_view(s, rt.public_base()) for s in rt.store.list_sessions()])


@admin_api.get("/sessions/<session_id>")
def sessions_show(session_id: str) -> Any:
    return jsonify(session_view(_session(session_id), runtime().public_base()))


@admin_api.delete("/sessions/<session_id>")
def sessions_delete(session_id: str) -> Any:
    runtime().store.delete_session(_session(session_id).id)
    return "", 204


@admin_api.post("/sessions/<session_id>/notify")
def sessions_notify(session_id: str) -> Any:
    """Notify the vendor; the options are listed in this module's docstring."""
    rt = runtime()
    session = _session(session_id)
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    bsn = body.get("bsn")
    if body.get("update_of") is None and (not isinstance(bsn, str) or not bsn.strip()):
        raise AdminError(400, "bsn is required, as a string: the BSN of a test patient (`speeltuin patients "
                              'list`), e.g. {"bsn": "999993653"}')
    period_days = body.get("period_days", 365)
    if not isinstance(period_days, int) or not 0 < period_days <= 3650:
        raise AdminError(400, "period_days must be a whole number of days from 1 to 3650")
    without_token = body.get("without_token", False)
    if not isinstance(without_token, bool):
        raise AdminError(400, "without_token must be true or false (true: the Task is sent without a token)")
    defect = body.get("defect")
    if defect is not None and not isinstance(defect, str):
        raise AdminError(400, "defect must be the name of one defect (a string); see the module docstring")
    update_of = body.get("update_of")
    if update_of is not None and (not isinstance(update_of, str) or not update_of):
        raise AdminError(400, "update_of must be the notification_id (a string) of a notification the simulator "
                              "sent in this session")
    try:
        result = notify(rt.store, rt.signer, rt.patients, session, str(bsn or "").strip(),
                        period_days=period_days, timeout=rt.config.http_timeout_s, sender_name=rt.config.name,
                        workflow_task=bool(body.get("workflow_task", False)), transport=rt.config.transport,
                        defect=defect, without_token=without_token, update_of=update_of,
                        faults=rt.faults_for(session))
    except NotifyError as exc:
        raise AdminError(400, str(exc)) from exc
    return jsonify(result), 200


@admin_api.put("/sessions/<session_id>/provoke")
def sessions_provoke(session_id: str) -> Any:
    """What the simulator provokes in this session from now on: `{"provoke": ["refuse-pull-tokens"]}` ([] ends it)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise AdminError(400, 'the body must be a JSON object: {"provoke": [...]}')
    try:
        session = set_provocations(runtime().store, _session(session_id), body.get("provoke"))
    except SessionError as exc:
        raise AdminError(400, str(exc)) from exc
    return jsonify({"provoke": list(session.config.provoke)})


@admin_api.get("/sessions/<session_id>/notifications")
def sessions_notifications(session_id: str) -> Any:
    """The session's notifications; each one the simulator sent with `pull_evidence`: what the receiver pulled of
    what it offered, as the proxy recorded it."""
    store = runtime().store
    session = _session(session_id)
    notifications = store.list_notifications(session.id)
    evidence = evidence_of_sent(store, session.id, notifications)
    return jsonify([{**asdict(n), **({"pull_evidence": evidence[n.id].to_dict()} if n.id in evidence else {})}
                    for n in notifications])


@admin_api.get("/sessions/<session_id>/suppressions")
def suppressions_list(session_id: str) -> Any:
    return jsonify(runtime().store.list_suppressions(_session(session_id).id))


@admin_api.put("/sessions/<session_id>/suppressions/<rule_id>")
def suppressions_set(session_id: str, rule_id: str) -> Any:
    """Suppress one rule for this session; the reason (at most sessions.MAX_SUPPRESSION_REASON characters) is
    recorded and shown in every report."""
    session = _session(session_id)
    body = request.get_json(silent=True)
    try:  # the body: {"reason": "..."}
        suppress_rule(runtime().store, session, rule_id, body.get("reason") if isinstance(body, dict) else None)
    except SuppressionError as exc:
        raise AdminError(400, str(exc)) from exc
    return jsonify(runtime().store.list_suppressions(session.id))


@admin_api.delete("/sessions/<session_id>/suppressions/<rule_id>")
def suppressions_delete(session_id: str, rule_id: str) -> Any:
    if not runtime().store.remove_suppression(_session(session_id).id, rule_id):
        raise AdminError(404, f"rule {rule_id!r} is not suppressed in this session")
    return "", 204


@admin_api.post("/sessions/<session_id>/notifications/<notification_id>/cancel")
def notifications_cancel(session_id: str, notification_id: str) -> Any:
    rt = runtime()
    try:
        result = cancel(rt.store, rt.signer, _session(session_id), notification_id,
                        timeout=rt.config.http_timeout_s, transport=rt.config.transport)
    except NotifyError as exc:
        raise AdminError(400, str(exc)) from exc
    return jsonify(result), 200


@admin_api.get("/patients")
def patients_list() -> Any:
    return jsonify([patient_to_dict(p) for p in runtime().patients.all_patients()])


@admin_api.post("/patients")
def patients_import() -> Any:
    """Import a patient list (the JSON form of `speeltuin patients import`): all or nothing."""
    body = request.get_data(as_text=True)
    try:
        imported = parse_patients_json(body)
    except PatientImportError as exc:
        raise AdminError(400, str(exc)) from exc
    except ValueError as exc:  # a value the reader let through and then could not read (letters "²"): bad input
        raise AdminError(400, f"not a patient list this simulator can import: {exc}") from exc
    runtime().patients.import_patients(imported)
    return jsonify({"imported": [p.bsn for p in imported]}), 201


@admin_api.post("/sessions/<session_id>/probes/<kind>")
def sessions_probe(session_id: str, kind: str) -> Any:
    """Make one refused-request probe against the vendor's resource server (vendor is the sender)."""
    rt = runtime()
    try:
        result = probe(rt.store, rt.signer, _session(session_id), kind, timeout=rt.config.http_timeout_s,
                       transport=rt.config.transport)
    except ProbeError as exc:
        raise AdminError(400, str(exc)) from exc
    return jsonify(result), 200
