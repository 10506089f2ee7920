"""The web UI's reference pages: the rule catalogue (and per session, the rules suppressed there) and the test patients
with their referral letters.

Routes (under /ui):
- GET  /rules                                 every rule of validators.catalogue: id, severity, title, spec reference,
                                              the check that emits it; `q` (words of the id or text, all must match)
                                              and `severity` filter on the server, so it works without JavaScript;
                                              with htmx the results follow the typing (HX-Target rules-results: the
                                              results alone)
- GET  /sessions/<id>/rules                   the same catalogue for one session: which rules are suppressed there and
                                              why; for a case manager the form to suppress one (`rule` fills it in)
- POST /sessions/<id>/suppressions            suppress (rule, reason): field errors on the page (400), else 303 back
- POST /sessions/<id>/suppressions/<rule>/lift  lift a suppression, 303 back
- GET  /patients                              the test patients, built-in (testdata) and imported or loaded, with the
                                              BgZ sections that have data and their referral letters
- GET  /patients/<bsn>/letter.pdf             the patient's (first) referral letter, inline; letter-<n>.pdf the n-th

Who may do what: every signed-in viewer sees the catalogue and the test patients (a vendor's notify form lists the
same patients already); a vendor sees its own session's suppressions but only a case manager suppresses or lifts
one, since a suppression excuses findings in the vendor's own report. The check of a suppression (known rule, a
reason of at most MAX_SUPPRESSION_REASON characters) is simulator.sessions.suppress_rule, shared with the admin API.
"""
from __future__ import annotations

import base64
import re
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from simulator.fhir.search import search
from simulator.runtime import runtime
from simulator.sessions import MAX_SUPPRESSION_REASON, SuppressionError, suppress_rule
from simulator.web import auth
from simulator.web.common import visible_session, web
from speeltuin.records import Session
from validators.catalogue import Entry, catalogue
from validators.findings import SEVERITIES
from validators.spec import BGZ_QUERIES, BgzQuery

MAX_SEARCH = 200  # characters of a search kept
RESULTS = "rules-results"  # the id of the element htmx replaces while the viewer types
PDF_CSP = "default-src 'none'; object-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
SUPPRESS_ONLY_MANAGERS = ("Only a case manager can suppress a rule for a session or lift a suppression: it excuses "
                          "findings in the session's reports. Ask yours, with the reason.")


class SuppressForm(FlaskForm):
    rule = StringField("Rule id")
    reason = TextAreaField("Reason (shown beside the rule in every report)")


# --- the rule catalogue -------------------------------------------------------------------------------------------
@web.get("/rules")
@auth.signed_in
def rules() -> Any:
    return _rules_page(None)


@web.get("/sessions/<session_id>/rules")
@auth.signed_in
def session_rules(session_id: str) -> Any:
    session = visible_session(session_id)
    form = SuppressForm(formdata=None, prefix="suppress", rule=request.args.get("rule", "")[:40])
    return _rules_page(session, form)


def _rules_page(session: Session | None, form: SuppressForm | None = None, status: int = 200) -> Any:
    """The catalogue as filtered by the URL; for a session with its suppressions and, for a case manager, the form."""
    kept = _search()
    query, severity = kept.get("q", ""), kept.get("severity", "")
    everything = list(catalogue().values())
    context = {"session": session, "q": query, "severity": severity, "severities": SEVERITIES, "search": kept,
               "entries": matching(everything, query, severity), "total": len(everything),
               "suppressions": runtime().store.list_suppressions(session.id) if session else {},
               "results_id": RESULTS,
               "search_url": url_for("web.session_rules", session_id=session.id) if session else url_for("web.rules")}
    if request.headers.get("HX-Target") == RESULTS:  # live filtering: the results alone
        return render_template("web/_rules_results.html", **context, oob=True)
    return render_template("web/rules.html", **context, form=form, rule_ids=list(catalogue()),
                           max_reason=MAX_SUPPRESSION_REASON), status


def _search() -> dict[str, str]:
    """The search of the URL (`q`, `severity`; only those given), kept by the session page's forms and links."""
    query = " ".join(request.args.get("q", "")[:MAX_SEARCH].split())
    severity = request.args.get("severity") or ""
    if severity and severity not in SEVERITIES:
        abort(400, description=f"severity: one of {', '.join(SEVERITIES)}, or none for any")
    return {key: value for key, value in (("q", query), ("severity", severity)) if value}


def matching(entries: list[Entry], query: str, severity: str = "") -> list[Entry]:
    """The entries whose id, title, reference or checking function contain every word of `query` (any case), of
    `severity` when given."""
    words = query.lower().split()

    def text(entry: Entry) -> str:
        where = f"{entry.where.module}.{entry.where.function}" if entry.where else ""
        return " ".join((entry.rule.id, entry.rule.title, entry.rule.reference, where)).lower()

    return [e for e in entries if (not severity or e.rule.severity == severity) and all(w in text(e) for w in words)]


@web.post("/sessions/<session_id>/suppressions")
@auth.signed_in
def suppress(session_id: str) -> Any:
    session = visible_session(session_id)
    auth.managers_only(SUPPRESS_ONLY_MANAGERS)
    form = SuppressForm(prefix="suppress")
    rule_id = (form.rule.data or "").strip().upper()
    if form.validate_on_submit():
        try:
            reason = suppress_rule(runtime().store, session, rule_id, form.reason.data)
        except SuppressionError as exc:
            for name, problem in exc.problems.items():
                form[name].errors.append(problem)
        else:
            flash(f"{rule_id} is suppressed in this session: {reason}")
            return redirect(url_for("web.session_rules", session_id=session.id, **_search()), 303)
    return _rules_page(session, form, 400)


@web.post("/sessions/<session_id>/suppressions/<rule_id>/lift")
@auth.signed_in
def lift_suppression(session_id: str, rule_id: str) -> Any:
    session = visible_session(session_id)
    auth.managers_only(SUPPRESS_ONLY_MANAGERS)
    if runtime().store.remove_suppression(session.id, rule_id):
        flash(f"{rule_id} is no longer suppressed in this session: its findings count again.")
    else:
        flash(f"{rule_id} was not suppressed in this session.")
    return redirect(url_for("web.session_rules", session_id=session.id, **_search()), 303)


# --- test patients ------------------------------------------------------------------------------------------------
@web.get("/patients")
@auth.signed_in
def patients() -> Any:
    rt = runtime()
    imported = {row["bsn"] for row in rt.store.list_patients()}
    loaded = set(rt.store.loaded_patient_bsns())  # loaded FHIR data wins over an import (PatientData.all_patients)
    shared = rt.patients.shared()
    rows = []
    for patient in rt.patients.all_patients():
        resources = rt.patients.resources(patient.bsn)
        source = "loaded FHIR data" if patient.bsn in loaded else "imported" if patient.bsn in imported else "built-in"
        letters = len(_letters(resources))
        rows.append({"p": patient, "source": source, "sections": sections_with_data(resources, shared),
                     "sex": _SEX.get(patient.sex, patient.sex),
                     "letters": [url_for("web.patient_letter", bsn=patient.bsn, n=n) for n in range(1, letters + 1)]})
    return render_template("web/patients.html", rows=rows, all_sections=len(BGZ_QUERIES),
                           section_label=section_label)


_SEX = {"F": "female", "M": "male"}


def sections_with_data(resources: list[dict], shared: list[dict]) -> list[BgzQuery]:
    """The BgZ queries (SPEC §6) that find something in a patient's resources, as the FHIR server would answer."""
    found = []
    for query in BGZ_QUERIES:
        asked = query.search
        if search(resources, shared, asked.resource_type, asked.params, lastn=asked.lastn).matches:
            found.append(query)
    return found


def section_label(query: BgzQuery) -> str:
    """A BgZ section as a person reads it: its number and the name of its main profile."""
    return f"{query.number}. {query.profile.rsplit('/', 1)[-1].removeprefix('zib-')}"


def _letters(resources: list[dict]) -> list[dict]:
    """The patient's referral letters: its PDF Binaries, in order (testdata.bgz_content makes one per letter)."""
    return [r for r in resources if r.get("resourceType") == "Binary" and r.get("contentType") == "application/pdf"]


@web.get("/patients/<bsn>/letter.pdf", defaults={"n": 1})
@web.get("/patients/<bsn>/letter-<int:n>.pdf")
@auth.signed_in
def patient_letter(bsn: str, n: int) -> Response:
    """The n-th referral letter as the FHIR server serves its Binary raw, to open in the browser's PDF viewer."""
    letters = _letters(runtime().patients.resources(bsn))
    if not 1 <= n <= len(letters):
        abort(404)
    response = Response(base64.b64decode(letters[n - 1].get("content", "")), content_type="application/pdf")
    filename = f"verwijsbrief-{re.sub(r'[^0-9A-Za-z]', '', bsn)}-{n}.pdf"  # nothing of the URL but letters, digits
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Content-Security-Policy"] = PDF_CSP  # the browser's PDF viewer, nothing else
    return response
