"""Runs of the test manager in the web UI: ask for one in a session, and follow it live to its reports.

Routes (under /ui; case managers and the session's vendor alike):
- GET  /sessions/<id>/runs            the form: the published scenarios to tick, or ids typed (none: every
                                      scenario of the vendor's role); and the session's runs, newest first
- POST /sessions/<id>/runs            queues the run as POST /api/sessions/<id>/runs does (store.queue_run), then
                                      303 to the run's page
- GET  /runs/<run id>                 the run, live: each scenario and step with its status; what a waiting step
                                      waits for, with a countdown, and the instruction for a person; the reports once
                                      it is finished. The page's address is the run's permanent link.
- GET  /runs/<run id>/progress        htmx fragment, polled every POLL_EVERY until the run is finished: 204 while
                                      nothing changed (`state`: what the page shows), else the new fragment
- GET  /runs/<run id>/report.<kind>   the run's report (html, json, junit.xml, testreport.json)

A vendor opens only the runs that worked in its own session (403 for any other, as for sessions).

The web package may not import scenarios/ (the layers of pyproject.toml): the page lists the catalogue the test
manager published into the store when it started, each with a checkbox; ids typed are checked for their form and role
only (RCV-nn: the vendor receives, SND-nn: it sends); the test manager refuses an unknown id, and the run's page then
shows its answer with the known ids.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, TextAreaField
from wtforms.validators import Length

from simulator.endpoints.evidence_api import REPORTS
from simulator.runtime import runtime
from simulator.web import auth
from simulator.web.common import visible_run, visible_session, web
from simulator.web.views import REPORT_LABELS, report_response
from speeltuin.records import Role, Session, new_id
from speeltuin.results import RunResult

POLL_EVERY = "1s"
SCENARIO_ID = re.compile(r"(RCV|SND)-[0-9]{2,3}")
PREFIX = {Role.RECEIVER: "RCV", Role.SENDER: "SND"}  # the scenario ids of the vendor's role
MAX_SCENARIOS = 100
FINISHED = ("passed", "failed")
ACTIVE = ("running", "waiting")


SHOWN_RUNS = 50  # the session's runs listed on its runs page, newest first


class RunForm(FlaskForm):
    picked = SelectMultipleField("Scenarios", validate_choice=False)  # the checkboxes of the published catalogue
    scenarios = TextAreaField("Scenario ids", validators=[Length(max=2000)])


def _run_form(formdata: Any = None) -> RunForm:
    return RunForm(formdata=formdata, prefix="run")


def wanted_scenarios(form: RunForm, session: Session) -> list[str] | None:
    """The scenario ids ticked and typed (upper-cased, each once, in order; [] for every scenario of the role), or
    None with the field's error set."""
    ticked = [str(part).upper() for part in form.picked.data or []][:MAX_SCENARIOS + 1]
    typed = [part.upper() for part in re.split(r"[\s,;]+", form.scenarios.data or "") if part]
    wanted = list(dict.fromkeys(ticked + typed))
    malformed = [s for s in wanted if not SCENARIO_ID.fullmatch(s)]
    prefix = PREFIX[session.vendor_role]
    if malformed:
        form.scenarios.errors.append(
            f"Not a scenario id: {', '.join(malformed[:5])}. Ids are {prefix}- and two digits, e.g. {prefix}-01.")
        return None
    other = [s for s in wanted if not s.startswith(prefix + "-")]
    if other:
        form.scenarios.errors.append(
            f"{', '.join(other[:5])}: for a vendor in the other role. In this session your system is the "
            f"{session.vendor_role.value}, so its scenarios are {prefix}-nn.")
        return None
    if len(wanted) > MAX_SCENARIOS:
        form.scenarios.errors.append(f"At most {MAX_SCENARIOS} scenarios in one run.")
        return None
    return wanted


@web.get("/sessions/<session_id>/runs")
@auth.signed_in
def runs_form(session_id: str) -> Any:
    session = visible_session(session_id)
    return _runs_page(session, _run_form())


def _runs_page(session: Session, form: RunForm, status: int = 200) -> Any:
    # the catalogue as the test manager published it (scenarios/manager.py); empty until one has started
    store = runtime().store
    catalogue = store.published_scenarios(session.vendor_role.value)
    ticked = set(form.picked.data or [])
    return render_template("web/runs.html", session=session, form=form, catalogue=catalogue, ticked=ticked,
                           prefix=PREFIX[session.vendor_role],
                           runs=store.session_runs(session.id, SHOWN_RUNS)), status


@web.post("/sessions/<session_id>/runs")
@auth.signed_in
def runs_start(session_id: str) -> Any:
    """Queue the run (the same store call as POST /api/sessions/<id>/runs) and go to its page."""
    session = visible_session(session_id)
    form = _run_form(request.form)
    wanted = wanted_scenarios(form, session) if form.validate_on_submit() else None
    if wanted is None:
        return _runs_page(session, form, 400)
    viewer = auth.current_viewer()
    who = f"case manager {viewer.name}" if viewer and viewer.is_manager else "the vendor"
    run_id = new_id("run-")
    runtime().store.queue_run(run_id, session.id, wanted,
                              title=f"asked for in session {session.id} by {who} (web UI)")
    return redirect(url_for("web.run_page", run_id=run_id), code=303)


@web.get("/runs/<run_id>")
@auth.signed_in
def run_page(run_id: str) -> Any:
    progress = visible_run(run_id)
    return render_template("web/run.html", run=_run_view(progress))


@web.get("/runs/<run_id>/progress")
@auth.signed_in
def run_fragment(run_id: str) -> Any:
    progress = visible_run(run_id)
    run = _run_view(progress)
    if request.args.get("state") == run["state"]:
        return "", 204  # nothing new: htmx keeps what it shows (and its countdowns) and asks again
    return render_template("web/_run_progress.html", run=run)


@web.get("/runs/<run_id>/report.<kind>")
@auth.signed_in
def run_report(run_id: str, kind: str) -> Any:
    visible_run(run_id)
    if kind not in REPORTS:
        abort(404)
    result = stored_result(runtime().store.get_run(run_id) or {})
    if result is None:  # not finished, or refused before it ran: no report (the run's page says why)
        abort(404)
    return report_response(result, f"speeltuin-{run_id}-report", kind)


def _run_view(progress: dict[str, Any]) -> dict[str, Any]:
    """The run as its page shows it."""
    stored = runtime().store.get_run(progress["id"]) or {}
    now = time.time()
    status = progress["status"]
    finished = status in FINISHED or bool(progress.get("error"))
    results = {s["id"]: s for s in stored.get("scenarios", []) if isinstance(s, dict)}
    scenarios, asks = [], []
    for scenario in progress["scenarios"]:
        steps = []
        for step in scenario["steps"]:
            active = step["status"] in ACTIVE and not finished
            shown = {**step, "active": active,
                     "seconds_left": _left(step["wait_until"], now) if active and step["status"] == "waiting"
                     else None}
            steps.append(shown)
            if active and (step["instruction"] or step["status"] == "waiting"):
                asks.append({"scenario": scenario["id"], **shown})
        result = results.get(scenario["id"], {})
        scenarios.append({"id": scenario["id"], "title": result.get("title", ""),
                          "status": result.get("status") or _scenario_status(steps), "steps": steps})
    # a run's start is kept in its stored result once it is finished; until then its steps tell (recorded at its start)
    started = progress.get("started_at") or min((step["updated_at"] for scenario in progress["scenarios"]
                                                  for step in scenario["steps"] if step["updated_at"]), default=None)
    session = runtime().store.get_session(progress["sessions"][0]) if len(progress["sessions"]) == 1 else None
    viewer = auth.current_viewer()
    visible = [s for s in progress["sessions"] if viewer is not None and viewer.may_see(s)]
    return {
        **progress, "started_at": started, "finished": finished, "scenarios": scenarios, "asks": asks,
        "session": session, "visible_sessions": visible,
        "reports": REPORT_LABELS if finished and stored_result(stored) is not None else {},
        "counts": stored.get("counts") if finished else None, "poll_every": POLL_EVERY,
        "state": hashlib.sha256(json.dumps(progress, sort_keys=True, default=str).encode()).hexdigest()[:16],
    }


def _left(until: float | None, now: float) -> int | None:
    return None if until is None else max(0, int(round(until - now)))


def _scenario_status(steps: list[dict[str, Any]]) -> str:
    statuses = {step["status"] for step in steps}
    if "failed" in statuses:
        return "failed"
    if statuses & set(ACTIVE):
        return "running"
    if statuses and statuses <= {"passed", "skipped"}:
        return "passed" if "passed" in statuses else "skipped"
    return "pending"


def stored_result(stored: dict[str, Any]) -> RunResult | None:
    """A finished run as the test manager stored it, for the report writers; None for a run that is not finished,
    was refused before it ran, or is not of the stored shape."""
    if stored.get("status") not in FINISHED or stored.get("error") or not isinstance(stored.get("scenarios"), list):
        return None
    try:
        return RunResult.from_dict(stored)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
