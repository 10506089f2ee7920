"""What the page modules of the web UI share: the blueprint, the template folder, and the checks of what a viewer
may see (a session, a run).

views.py (sessions, exchanges, reports), actions.py (act now: notify, cancel, probe), runs.py (the test manager's
runs), catalogue.py (rules and suppressions, test patients) and unmatched.py (traffic of no session) each add their
routes to the one blueprint `web`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort

import templates
from simulator.runtime import runtime
from simulator.web import auth
from speeltuin.records import Session
from speeltuin.session_report import run_progress

TEMPLATE_DIR = Path(templates.__file__).resolve().parent  # the app's template folder (app.py); pages in web/
web = Blueprint("web", __name__, url_prefix="/ui", static_folder=str(TEMPLATE_DIR / "static"),
                static_url_path="/static")


def visible_session(session_id: str) -> Session:
    """The session, when the viewer may see it: 403 for a vendor and another session (known or not), else 404 when
    there is no such session."""
    auth.may_see_session(session_id)
    session = runtime().store.get_session(session_id)
    if session is None:
        abort(404)
    return session


def visible_run(run_id: str) -> dict[str, Any]:
    """How the run stands (speeltuin.session_report.run_progress), when the viewer may see it: a case manager every
    run (404 when there is none), a vendor the runs that worked in its own session (403 for any other, known or
    not, as for sessions)."""
    viewer = auth.current_viewer()
    progress = run_progress(runtime().store, run_id)
    if viewer is None:
        abort(403)
    if not viewer.is_manager and (progress is None or viewer.session_id not in progress["sessions"]):
        abort(403)
    if progress is None:
        abort(404)
    return progress
