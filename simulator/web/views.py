"""The web UI's pages: sign-in and sign-out, the sessions, one session (its endpoints and exchanges, live, and its
act panel), one exchange, and the session's reports as downloads. The runs of the test manager: runs.py.

Routes (all under /ui):
- GET  /sign-in; POST /sign-in/case-manager (username, password); POST /sign-in/vendor (access key); POST /sign-out
- GET  /                                      the sessions (a case manager); a vendor goes to its own session
- GET  /sessions/<id>                         endpoints to configure and exchanges: filters tag and severity, pages
                                              of PAGE_SIZE by the store's cursor (`after`)
- GET  /sessions/<id>/live                    htmx fragment, polled every 2 s: the exchanges recorded since the last
                                              one shown (204 when there are none)
- GET  /sessions/<id>/exchanges/<exchange id> one exchange: headers, bodies (redacted when recorded), findings
- GET  /sessions/<id>/report.<kind>           the report (html, json, junit.xml, testreport.json)
- POST /sessions/<id>/notify                  act now (actions.py): notify the vendor (patient or bsn, workflow_task)
- POST /sessions/<id>/notifications/<notification id>/cancel   cancel a notification the simulator sent
- POST /sessions/<id>/probe                   one probe of the vendor's servers (probe)
- GET  /sessions/<id>/notifications/<notification id>/exchange  htmx fragment: the link to the recorded Task sent
- GET  /static/<file>                         Pico CSS and htmx, shipped with the package
- GET  /assets/<file>                         the UI's own scripts (templates/web/static/)
"""
from __future__ import annotations

import json
import secrets
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterator

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import Forbidden, HTTPException
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from simulator.endpoints.evidence_api import REPORTS, session_document
from simulator.runtime import runtime
from simulator.sessions import session_endpoints
from simulator.web import actions, auth
from simulator.web.common import TEMPLATE_DIR, visible_session, web
from speeltuin.records import Exchange, Session, Tag, shown_body
from speeltuin.reports import WRITERS
from speeltuin.results import RunResult
from speeltuin.session_report import BadParameter, ExchangeQuery, UnknownSession, parse_page
from validators.findings import SEVERITIES

__all__ = ["TEMPLATE_DIR", "error_page", "web"]

PAGE_SIZE = 50
POLL_EVERY = "2s"
MAX_BODY_SHOWN = 256 * 1024  # characters of a body shown on the exchange page; the report has them whole
FAILED_SIGN_IN = "Sign-in failed: these credentials are not valid."
ENDPOINT_LABELS = {  # the session's endpoints (simulator.sessions.session_endpoints), as the vendor must use them
    "client_id": "Your client id (iss and sub of your client assertions)",
    "token_url": "Token endpoint (the aud of your assertions)",
    "jwks_url": "The simulator's public keys (JWKS)",
    "fhir_base": "FHIR base to pull from",
    "notification_base": "Notification base",
    "notification_url": "Notification endpoint (POST the Task here)",
    "simulator_client_id": "The simulator's client id (iss and sub of its assertions)",
    "simulator_ura": "The simulator's URA (the organisation it plays)",
}
REPORT_LABELS = {"html": "HTML", "json": "JSON", "junit.xml": "JUnit XML", "testreport.json": "FHIR TestReport"}
ERROR_TEXT = {
    400: ("Bad request", "The request could not be used."),
    403: ("Not your session", "You are signed in for another validation session; this one is not yours to see."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
    500: ("Something went wrong", "The simulator could not show this page. The error was logged."),
}


class ManagerSignIn(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])


class VendorSignIn(FlaskForm):
    access_key = PasswordField("Session access key", validators=[InputRequired(), Length(max=256)])


# --- every request of the UI ------------------------------------------------------------------------------------
@web.before_request
def protect_forms() -> None:
    """Every form the UI takes (POST) carries the CSRF token of the visitor's cookie session; 400 without it."""
    current_app.extensions["csrf"].protect()


@web.after_request
def security_headers(response: Response) -> Response:
    return secure(response, cache=request.endpoint in ("web.static", "web.asset"))


def csp_nonce() -> str:
    """The nonce of this response's inline <style> and <script> (the only inline ones: the base template's)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def secure(response: Response, *, cache: bool = False) -> Response:
    """Headers for every UI response: nothing but this site's own files runs, no framing, no caching of evidence."""
    nonce = csp_nonce()
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not cache:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.app_context_processor
def page_globals() -> dict[str, Any]:
    return {"csp_nonce": csp_nonce, "viewer": auth.current_viewer, "poll_every": POLL_EVERY}


@web.app_template_filter("when")
def when(epoch: float | None) -> str:
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@web.app_template_filter("iso")
def iso(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def error_page(exc: HTTPException) -> Response:
    """An error of the UI as a page (the app's error handler calls this for every /ui path)."""
    status = exc.code or 500
    title, text = ERROR_TEXT.get(status, (exc.name, exc.description or exc.name))
    if status == 400 and exc.description:
        text = exc.description
    if status == 403 and exc.description != Forbidden.description:  # the page said why (e.g. case managers only)
        title, text = "Not allowed", exc.description
    if isinstance(exc, CSRFError):
        title = "Form refused"
        text = ("This form was sent without a valid security token (it may be from an old page, or from another "
                "site). Go back, reload the page and send it again.")
    viewer = _viewer_or_none()
    own = url_for("web.session_page", session_id=viewer.session_id) if viewer and viewer.session_id else None
    body = render_template("web/error.html", status=status, title=title, text=text, own_session=own)
    return secure(Response(body, status=status, content_type="text/html; charset=utf-8"))


def _viewer_or_none() -> auth.Viewer | None:
    try:
        return auth.current_viewer()
    except Exception:  # noqa: BLE001 - an error page must show even when the store cannot be read
        return None


# --- signing in and out -----------------------------------------------------------------------------------------
@web.get("/sign-in")
def sign_in() -> Any:
    if auth.current_viewer() is not None:
        return redirect(url_for("web.dashboard"))
    return _sign_in_page()


def _sign_in_page(error: str | None = None, status: int = 200) -> Any:
    return render_template("web/sign_in.html", manager=ManagerSignIn(prefix="manager"),
                           vendor=VendorSignIn(prefix="vendor"), error=error,
                           next=auth.safe_next(request.values.get("next")) or ""), status


@web.post("/sign-in/case-manager")
def sign_in_manager() -> Any:
    form = ManagerSignIn(prefix="manager")
    if form.validate_on_submit() and auth.sign_in_manager(form.username.data or "", form.password.data or ""):
        return redirect(auth.safe_next(request.form.get("next")) or url_for("web.dashboard"))
    return _sign_in_page(FAILED_SIGN_IN, 401)


@web.post("/sign-in/vendor")
def sign_in_vendor() -> Any:
    form = VendorSignIn(prefix="vendor")
    session_id = auth.sign_in_vendor((form.access_key.data or "").strip()) if form.validate_on_submit() else None
    if session_id is None:
        return _sign_in_page(FAILED_SIGN_IN, 401)
    wanted = auth.safe_next(request.form.get("next"))
    own = url_for("web.session_page", session_id=session_id)
    # its own session's pages, or a run's page (which checks that the run worked in its session)
    mine = wanted is not None and (wanted == own or wanted.startswith((own + "/", own + "?", "/ui/runs/")))
    return redirect(wanted if mine else own)


@web.post("/sign-out")
def sign_out() -> Any:
    auth.sign_out()
    flash("You are signed out.")
    return redirect(url_for("web.sign_in"))


# --- the sessions -----------------------------------------------------------------------------------------------
@web.get("/")
@auth.signed_in
def dashboard() -> Any:
    viewer = auth.current_viewer()
    assert viewer is not None
    if not viewer.is_manager:
        return redirect(url_for("web.session_page", session_id=viewer.session_id))
    store = runtime().store
    activity = store.session_activity()
    sessions = sorted(store.list_sessions(), key=lambda s: s.created_at, reverse=True)
    latest = store.latest_runs()
    rows = [{"session": s, "run": latest.get(s.id), **activity.get(s.id, {"exchanges": 0, "errors": 0, "last": None})}
            for s in sessions]
    return render_template("web/dashboard.html", rows=rows)


def _filters() -> ExchangeQuery:
    """The exchange filters of the URL ('' from the filter form means: any)."""
    args = request.args
    try:
        return ExchangeQuery.parse(tag=args.get("tag") or None, severity=args.get("severity") or None,
                                   after=args.get("after") or None, limit=str(PAGE_SIZE))
    except BadParameter as exc:
        abort(400, description=f"{exc.name}: {exc}")


@web.get("/sessions/<session_id>")
@auth.signed_in
def session_page(session_id: str) -> Any:
    return _session_page(visible_session(session_id))


def _session_page(session: Session, act: dict[str, Any] | None = None) -> Any:
    """The session page; `act`: the act panel as an action left it (its outcome, a form with its errors)."""
    store = runtime().store
    query = _filters()
    page, cursor = store.query_exchanges(session.id, tag=query.tag, severity=query.severity, after=query.after,
                                         limit=PAGE_SIZE)
    suppressions = store.list_suppressions(session.id)
    endpoints = session_endpoints(session, runtime().public_base())
    shown_endpoints = [(key, ENDPOINT_LABELS.get(key, key), value) for key, value in endpoints.items()]
    return render_template(
        "web/session.html", session=session, endpoints=shown_endpoints, query=query,
        rows=[exchange_row(ex, suppressions) for ex in page], tags=[t.value for t in Tag], severities=SEVERITIES,
        counts=_counts(session.id), reports=REPORT_LABELS, suppressions=suppressions,
        act=act or actions.act_panel(session), **_paging(session.id, query, page, cursor))


def _paging(session_id: str, query: ExchangeQuery, page: list[Exchange], cursor: int | None,
            room: int = PAGE_SIZE) -> dict[str, Any]:
    """Where the page goes on: polled for new rows while it has room and is the last page, else a next page."""
    last = page[-1].id if page else query.after
    room_left = room - len(page)
    live = cursor is None and room_left > 0
    filters = {"tag": query.tag, "severity": query.severity}
    return {
        "live_url": url_for("web.live_rows", session_id=session_id, after=last or 0, room=room_left, **filters)
        if live else None,
        "next_url": None if live else url_for("web.session_page", session_id=session_id, after=last, **filters),
        "first_url": url_for("web.session_page", session_id=session_id, **filters) if query.after else None,
    }


def _counts(session_id: str) -> dict[str, Any]:
    return runtime().store.session_activity([session_id]).get(session_id, {"exchanges": 0, "errors": 0, "last": None})


def exchange_row(ex: Exchange, suppressions: dict[str, str]) -> dict[str, Any]:
    counted = Counter(f.severity for f in ex.findings if f.rule not in suppressions)
    return {"ex": ex, "counts": [(s, counted[s]) for s in SEVERITIES if counted[s]],
            "suppressed": sum(1 for f in ex.findings if f.rule in suppressions)}


@web.get("/sessions/<session_id>/live")
@auth.signed_in
def live_rows(session_id: str) -> Any:
    """The exchanges recorded after `after` (at most `room`, what is left of the page), for htmx to append."""
    session = visible_session(session_id)
    query = _filters()
    try:
        room = int(request.args.get("room", ""))
    except ValueError:
        room = 0
    if not 0 < room <= PAGE_SIZE:
        abort(400, description=f"room: must be a whole number from 1 to {PAGE_SIZE}")
    store = runtime().store
    page, cursor = store.query_exchanges(session.id, tag=query.tag, severity=query.severity, after=query.after,
                                         limit=room)
    if not page:
        return "", 204  # htmx swaps nothing and keeps polling
    suppressions = store.list_suppressions(session.id)
    return render_template("web/_live_rows.html", session=session, rows=[exchange_row(ex, suppressions) for ex in page],
                           counts=_counts(session.id), **_paging(session.id, query, page, cursor, room))


@web.get("/sessions/<session_id>/exchanges/<int:exchange_id>")
@auth.signed_in
def exchange_page(session_id: str, exchange_id: int) -> Any:
    session = visible_session(session_id)
    store = runtime().store
    ex = store.get_exchange(exchange_id)
    if ex is None or ex.session_id != session.id:
        abort(404)
    return exchange_detail(ex, session, store.list_suppressions(session.id))


def exchange_detail(ex: Exchange, session: Session | None, suppressions: dict[str, str]) -> str:
    """The page of one exchange, of a session or unmatched (`session` None: recorded for no session)."""
    return render_template("web/exchange.html", session=session, ex=ex, suppressions=suppressions,
                           request_body=_shown_body(ex.request_body), response_body=_shown_body(ex.response_body))


def _shown_body(body: str) -> dict[str, Any]:
    """A body as shown: JSON indented, bytes described, long ones cut (the report has them whole)."""
    text = shown_body(body)
    if body[:1] in "{[":
        try:
            text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            text = body
    return {"text": text[:MAX_BODY_SHOWN], "cut": max(0, len(text) - MAX_BODY_SHOWN)}


@web.get("/sessions/<session_id>/report.<kind>")
@auth.signed_in
def report(session_id: str, kind: str) -> Any:
    """The session's report as a download (the HTML one opens in the browser, a page of its exchanges at a time:
    `page`, default 1)."""
    session = visible_session(session_id)
    if kind not in REPORTS:
        abort(404)
    try:
        found, body = session_document(runtime().store, session.id, REPORTS[kind][0],
                                       parse_page(request.args.get("page")))
    except UnknownSession:
        abort(404)
    except BadParameter as exc:
        abort(400, description=f"{exc.name}: {exc}")
    return report_response(found.run, f"speeltuin-{session.id}-report", kind, body)


def report_response(run: RunResult, stem: str, kind: str, body: str | Iterator[str] | None = None) -> Response:
    """A report (`kind`: a key of REPORTS) as the UI serves it: the HTML one opens in the browser, the others are
    downloads named `<stem>.<kind>`. `body`: the report written already (or streamed), else written from `run`."""
    writer, content_type = REPORTS[kind]
    response = Response(WRITERS[writer][1](run) if body is None else body, status=200, content_type=content_type)
    filename = f"{stem}.{kind}"
    if kind == "html":
        response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
        # the report is one self-contained page with its own <style> and no script
        response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; "
                                                       "img-src data:; base-uri 'none'; form-action 'none'; "
                                                       "frame-ancestors 'none'")
    else:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- act now (simulator/web/actions.py): notify, cancel, probe ------------------------------------------------------
# Each form posts to its own address. With htmx (HX-Request) the answer is the act panel alone, which replaces the
# one on the page; without JavaScript it is the whole session page with the panel showing the outcome.
@web.post("/sessions/<session_id>/notify")
@auth.signed_in
def act_notify(session_id: str) -> Any:
    session = visible_session(session_id)
    form = actions.notify_form(request.form)
    result = actions.notify_now(session, form)
    return _acted(session, actions.act_panel(session, notify=form, result=result))


@web.post("/sessions/<session_id>/notifications/<notification_id>/cancel")
@auth.signed_in
def act_cancel(session_id: str, notification_id: str) -> Any:
    session = visible_session(session_id)
    return _acted(session, actions.act_panel(session, result=actions.cancel_now(session, notification_id)))


@web.post("/sessions/<session_id>/probe")
@auth.signed_in
def act_probe(session_id: str) -> Any:
    session = visible_session(session_id)
    form = actions.probe_form(request.form)
    result = actions.probe_now(session, form)
    return _acted(session, actions.act_panel(session, probe=form, result=result))


def _acted(session: Session, act: dict[str, Any]) -> Any:
    if request.headers.get("HX-Request"):
        return render_template("web/_act.html", session=session, act=act)
    return _session_page(session, act)


@web.get("/sessions/<session_id>/notifications/<notification_id>/exchange")
@auth.signed_in
def act_exchange(session_id: str, notification_id: str) -> Any:
    """htmx fragment of the result panel: the link to the proxy's record of the Task sent (`kind` notify or cancel)
    once it is there; asked again once a second, at most actions.EXCHANGE_TRIES times."""
    session = visible_session(session_id)
    notification = runtime().store.get_notification(notification_id)
    if notification is None or notification.session_id != session.id:
        abort(404)
    kind = request.args.get("kind", "notify")
    if kind not in ("notify", "cancel"):
        abort(400, description="kind: must be notify or cancel")
    try:
        tries = int(request.args.get("tries", "0"))
    except ValueError:
        tries = actions.EXCHANGE_TRIES
    result = {"kind": kind, "notification_id": notification.id, "tries": tries + 1,
              "tag": "notification" if kind == "notify" else "cancellation",
              "exchange": actions.recorded_exchange(session.id, notification, kind)}
    return render_template("web/_act_exchange.html", session=session, r=result, max_tries=actions.EXCHANGE_TRIES)


@web.get("/assets/<name>")
def asset(name: str) -> Any:
    """The UI's own scripts (templates/web/static/): the run page's countdown, focus after an htmx action."""
    return send_from_directory(TEMPLATE_DIR / "web" / "static", name, max_age=300)
