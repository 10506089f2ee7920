"""A session's evidence over JSON: its recorded exchanges with their findings, and its report in every format.

Open with the admin key (X-Admin-Key, every session) or the session's own access key (X-Session-Key, shown
once when the session was created; it opens only that session). The admin API's before_request does not
apply here: Flask runs a blueprint's before_request handlers only for that blueprint's routes.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable, Iterator

from flask import Blueprint, Response, jsonify, request

from simulator.endpoints.admin_api import ADMIN_KEY_HEADER, admin_key_given
from simulator.runtime import runtime
from speeltuin.records import new_id
from speeltuin.reports import WRITERS, html, json_report
from speeltuin.session_report import (
    SESSION_KEY_HEADER,
    BadParameter,
    ExchangeQuery,
    ReportPage,
    UnknownSession,
    parse_page,
    query_exchanges,
    report_page,
    run_progress,
    session_exchanges,
)
from speeltuin.store import Store

evidence_api = Blueprint("evidence_api", __name__, url_prefix="/api")

# the report's name in the URL -> (writer in speeltuin.reports, content type)
REPORTS: dict[str, tuple[str, str]] = {
    "html": ("html", "text/html; charset=utf-8"),
    "json": ("json", "application/json"),
    "junit.xml": ("junit", "application/xml"),
    "testreport.json": ("testreport", "application/fhir+json"),
}


class EvidenceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@evidence_api.errorhandler(EvidenceError)
def evidence_error(exc: EvidenceError) -> tuple[Response, int]:
    return jsonify({"error": exc.message}), exc.status


@evidence_api.errorhandler(UnknownSession)
def unknown_session(exc: UnknownSession) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), 404


@evidence_api.errorhandler(BadParameter)
def bad_parameter(exc: BadParameter) -> tuple[Response, int]:
    return jsonify({"error": f"{exc.name}: {exc}"}), 400


def _check_access(session_id: str) -> None:
    """Admin key: any session. Session key: its own session only (403 for another). Neither, or a wrong one: 401."""
    rt = runtime()
    admin_key = request.headers.get(ADMIN_KEY_HEADER)
    if admin_key_given():
        return
    session_key = request.headers.get(SESSION_KEY_HEADER)
    if not session_key:
        what = f"wrong {ADMIN_KEY_HEADER}" if admin_key is not None else "no key"
        raise EvidenceError(401, f"{what}: send {SESSION_KEY_HEADER} (the session's access key) or {ADMIN_KEY_HEADER}")
    if rt.store.session_key_opens(session_id, session_key):
        return
    if rt.store.session_of_key(session_key) is not None:
        raise EvidenceError(403, f"this {SESSION_KEY_HEADER} opens another session, not {session_id!r}")
    raise EvidenceError(401, f"wrong {SESSION_KEY_HEADER}")


def session_access(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let the request through when its key opens the session named in the URL."""
    @wraps(view)
    def checked(session_id: str, **kwargs: Any) -> Any:
        _check_access(session_id)
        return view(session_id, **kwargs)

    return checked


@evidence_api.get("/sessions/<session_id>/exchanges")
@session_access
def exchanges(session_id: str) -> Any:
    """The session's exchanges with their findings, as recorded (newest last); filters: tag, severity, since;
    page: limit (default 100, at most 1000) and after (the `next` of the previous page)."""
    args = request.args
    query = ExchangeQuery.parse(tag=args.get("tag"), severity=args.get("severity"), since=args.get("since"),
                                after=args.get("after"), limit=args.get("limit"))
    return jsonify(query_exchanges(runtime().store, session_id, query))


@evidence_api.get("/sessions/<session_id>/report.<kind>")
@session_access
def report(session_id: str, kind: str) -> Any:
    """The session's report; the HTML one a page of its exchanges at a time (`page`, default 1)."""
    if kind not in REPORTS:
        raise EvidenceError(404, f"no report format {kind!r}; known: "
                                 + ", ".join(f"report.{name}" for name in REPORTS))
    writer, content_type = REPORTS[kind]
    _page, body = session_document(runtime().store, session_id, writer, parse_page(request.args.get("page")))
    return Response(body, status=200, content_type=content_type)


def session_document(store: Store, session_id: str, writer: str, page: int = 1,
                     link: Callable[[int], str] = html.query_link) -> tuple[ReportPage, str | Iterator[str]]:
    """The session's report as the writer (a key of WRITERS) writes it, in bounded memory however big the session
    (the API, the web UI and `speeltuin report` serve it alike): the HTML one page `page` of its exchanges (`link`
    gives the other pages' addresses), the JSON one streamed a batch of exchanges at a time, the others made from
    the summary alone. UnknownSession, or BadParameter for a page the report does not have."""
    if writer == "html":
        found = report_page(store, session_id, page)
        return found, html.render(found.run, found, link)
    found = report_page(store, session_id, size=0)
    if writer == "json":
        return found, json_report.stream(found.run, session_exchanges(store, session_id))
    return found, WRITERS[writer][1](found.run)


@evidence_api.post("/sessions/<session_id>/runs")
@session_access
def queue_run(session_id: str) -> Any:
    """Ask the test manager to take the session's vendor system through scenarios (`{"scenarios": [ids]}`, default
    every scenario of its role). 202 with the run's id; GET /api/runs/<id> follows it. A test manager must be
    running next to the simulator (`speeltuin serve --test-manager`)."""
    if runtime().store.get_session(session_id) is None:
        raise UnknownSession(f"no session {session_id!r}")
    body = request.get_json(silent=True)
    body = {} if body is None and not request.get_data() else body
    if not isinstance(body, dict):
        raise EvidenceError(400, 'the body must be a JSON object, e.g. {"scenarios": ["RCV-01"]}')
    wanted = body.get("scenarios", [])
    if not isinstance(wanted, list) or not all(isinstance(s, str) and s for s in wanted):
        raise EvidenceError(400, "scenarios: must be a list of scenario ids (`speeltuin scenarios` lists them)")
    run_id = new_id("run-")
    runtime().store.queue_run(run_id, session_id, wanted, title=f"asked for in session {session_id}")
    return jsonify({"run": run_id, "status": "queued", "status_url": f"/api/runs/{run_id}"}), 202


@evidence_api.get("/runs/<run_id>")
def run_status(run_id: str) -> Any:
    """How a run stands, live: each step's status, what a waiting step waits for and until when. The admin key
    opens every run; a session's key the runs that worked in its session."""
    progress = run_progress(runtime().store, run_id)
    sessions = progress["sessions"] if progress else []
    if not admin_key_given():
        key = request.headers.get(SESSION_KEY_HEADER)
        if not key:
            raise EvidenceError(401, f"no key: send {SESSION_KEY_HEADER} (the session's access key) or "
                                     f"{ADMIN_KEY_HEADER}")
        if not any(runtime().store.session_key_opens(session_id, key) for session_id in sessions):
            raise EvidenceError(403 if runtime().store.session_of_key(key) else 401,
                                f"this {SESSION_KEY_HEADER} opens no session of run {run_id!r}")
    if progress is None:
        raise EvidenceError(404, f"no run {run_id!r}")
    return jsonify(progress)
