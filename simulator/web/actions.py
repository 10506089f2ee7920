"""Act now, on the session page: make the simulator act towards the session's vendor system and show what came back.

- Where the simulator is the sending node (the vendor receives): send a Notification Task for a test patient, with
  or without a Workflow Task, and cancel what was sent. The same calls the admin API's notify and cancel make
  (simulator.outbound.notifier), with this app's runtime: never the HTTP API from inside the app.
- Where the simulator is the receiving node (the vendor sends) and the vendor has notified: one of the probes
  (simulator.outbound.probes) against the vendor's authorization and FHIR servers, with its findings.

No routes here: views.py takes the forms and renders `act_panel(...)` into the session page (and, for htmx, the
panel alone). The BSN typed into the notify form must be 9 digits; one failing the 11-check is sent with a
visible warning (vendors test their refusal with such BSNs), when the simulator has a test patient with it.
"""
from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import Length

try:  # WTForms 3.3 names options so; tuples are deprecated there
    from wtforms.fields.choices import SelectChoice as _Option
except ImportError:  # pragma: no cover - an older WTForms
    def _Option(value: str, label: str) -> tuple[str, str]:  # type: ignore[misc]  # noqa: N802
        return value, label

from simulator.outbound.notifier import NotifyError, cancel, notify
from simulator.outbound.probes import PROBE_RULES, PROBES, ProbeError, probe
from simulator.runtime import runtime
from speeltuin.pull_evidence import PullEvidence, evidence_of_sent
from speeltuin.records import Exchange, Notification, NotificationOrigin, Role, Session, Tag
from validators.rules.identifiers import is_valid_bsn

PROBE_LABELS: dict[str, str] = {  # every kind of simulator.outbound.probes.PROBES, as a person reads it
    "no-token": "FHIR search without an access token (must be 401)",
    "bad-token": "FHIR search with a malformed access token (must be 401)",
    "unknown-token": "FHIR search with a well-formed token you never issued (must be 401)",
    "other-patient": "Search for another patient than the notification's (403 or 404, nothing of theirs)",
    "malformed-query": "A malformed query made from your Task's own (must be 400)",
    "accept-xml": "A query of your Task asking for FHIR XML (XML, or 406)",
    "token-after-cancellation": "Pull token after you cancelled the notification (must be refused)",
    "wrong-aud": "Token request whose assertions name another audience (must be refused)",
    "expired-assertion": "Token request with expired assertions (must be refused)",
    "unknown-key": "Token request signed with a key that is not in the JWKS (must be refused)",
    "alg-none": "Token request with unsigned assertions, alg none (must be refused)",
    "alg-hmac": "Token request with assertions signed HS256 with the public key (must be refused)",
    "replayed-jti": "The same token request twice, a replayed jti (the second must be refused)",
    "unknown-authorization-base": "Token request for an authorization base you never issued (must be refused)",
    "unknown-client": "Token request from a client id you never registered (must be refused)",
    "long-lived-assertion": "Token request with assertions living an hour, over the 300 s allowed (must be refused)",
    "other-ura": "Token request for another organisation than the Task's owner (must be refused)",
}
MISSING = {"vendor_token_url": "your token endpoint", "vendor_notification_base": "your notification base",
           "vendor_fhir_base": "your FHIR base"}
TYPE_A_BSN = ""  # the patient choice that means: the BSN typed below
NINE_DIGITS = re.compile(r"[0-9]{9}")
BODY_EXCERPT = 600  # characters of the vendor's answer shown when it is not a success
EXCHANGE_TRIES = 10  # how often (once a second) the result panel looks for the proxy's record of what was sent


class NotifyForm(FlaskForm):
    patient = SelectField("Test patient", validate_choice=False)
    bsn = StringField("Or type a BSN", validators=[Length(max=40)],
                      filters=[lambda value: "".join(value.split()) if value else value])
    workflow_task = BooleanField("With a Workflow Task (the Notification Task's basedOn points at it)")


class CancelForm(FlaskForm):
    """Only the CSRF token: the notification to cancel is named in the URL."""


class ProbeForm(FlaskForm):
    probe = SelectField("Which probe", choices=[_Option(kind, PROBE_LABELS.get(kind, kind)) for kind in PROBES])


def notify_form(formdata: Any = None) -> NotifyForm:
    form = NotifyForm(formdata=formdata, prefix="notify")
    form.patient.choices = [_Option(p.bsn, f"{p.display_name} ({p.bsn})") for p in runtime().patients.all_patients()]
    form.patient.choices.append(_Option(TYPE_A_BSN, "Another BSN: type it below"))
    return form


def probe_form(formdata: Any = None) -> ProbeForm:
    return ProbeForm(formdata=formdata, prefix="probe")


def act_panel(session: Session, *, notify: NotifyForm | None = None, probe: ProbeForm | None = None,
              result: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the act panel of the session page shows: the forms that fit the session's roles, what the simulator
    sent or received in it, and the outcome of the last action (`result`)."""
    store = runtime().store
    notifications = store.list_notifications(session.id)
    sent = [n for n in notifications if n.origin == NotificationOrigin.SENT]
    evidence = evidence_of_sent(store, session.id, sent)
    received = [n for n in notifications if n.origin == NotificationOrigin.RECEIVED]
    simulator_sends = session.simulator_role == Role.SENDER
    needed = ("vendor_token_url", "vendor_notification_base") if simulator_sends else ("vendor_token_url",
                                                                                         "vendor_fhir_base")
    return {
        "simulator_sends": simulator_sends,
        "missing": [f"{MISSING[key]} ({key})" for key in needed if not getattr(session.config, key)],
        "notify_form": notify or notify_form(),
        "probe_form": probe or probe_form(),
        "sent": [_sent_row(n, evidence[n.id]) for n in reversed(sent)],  # newest first
        "received": list(reversed(received)),
        "can_probe": not simulator_sends and bool(received),
        "result": result,
    }


def _sent_row(n: Notification, pulled: PullEvidence) -> dict[str, Any]:
    delivery = n.delivery or {}
    cancellation = delivery.get("cancellation") or {}
    return {"n": n, "answer": _answer(delivery), "cancellation": _answer(cancellation) if cancellation else None,
            "can_cancel": n.status != "cancelled", "pulled": pulled}


def _answer(delivery: dict[str, Any]) -> str:
    if not delivery:
        return "not sent yet"
    if delivery.get("status") is not None:
        return str(delivery["status"])
    return "no answer" if delivery.get("error") else "not sent yet"


# --- notify -------------------------------------------------------------------------------------------------------
def notify_now(session: Session, form: NotifyForm) -> dict[str, Any] | None:
    """Send the notification the form asks for; the outcome for the result panel, or None when a field has an error
    (shown at the field)."""
    if not form.validate_on_submit():
        return None
    typed = form.bsn.data or ""
    warning = None
    if typed:
        if not NINE_DIGITS.fullmatch(typed):
            form.bsn.errors.append(f"A BSN is 9 digits (e.g. 999993653); “{typed[:20]}” is not.")
            return None
        if not is_valid_bsn(typed):
            warning = (f"BSN {typed} fails the 11-check. It is sent as typed, on purpose: your system should refuse "
                       "the Task (ID-BSN-002).")
        bsn = typed
    elif form.patient.data:
        bsn = str(form.patient.data)
    else:
        form.bsn.errors.append("Type the BSN to notify about, or pick a test patient above.")
        return None
    rt = runtime()
    try:
        sent = notify(rt.store, rt.signer, rt.patients, session, bsn, timeout=rt.config.http_timeout_s,
                      sender_name=rt.config.name, workflow_task=bool(form.workflow_task.data), transport=rt.config.transport,
                      faults=rt.faults_for(session))
    except NotifyError as exc:
        message = str(exc)
        if message.startswith("no test patient"):
            field = form.bsn if typed else form.patient
            failing = f"BSN {bsn} fails the 11-check; it would be sent as typed, but t" if warning else "T"
            field.errors.append(f"{failing}he simulator has no test patient with BSN {bsn}, so it has no data to "
                                "offer. Pick one of the list, or load your own (speeltuin patients import-fhir).")
            return None
        return {"kind": "error", "title": "The notification could not be sent", "text": message}
    return _delivered("notify", session, sent, warning=warning)


def cancel_now(session: Session, notification_id: str) -> dict[str, Any]:
    """Cancel a notification the simulator sent in this session; the outcome for the result panel."""
    rt = runtime()
    try:
        sent = cancel(rt.store, rt.signer, session, notification_id, timeout=rt.config.http_timeout_s,
                      transport=rt.config.transport)
    except NotifyError as exc:
        return {"kind": "error", "title": "The notification could not be cancelled", "text": str(exc)}
    return _delivered("cancel", session, sent)


def _delivered(kind: str, session: Session, sent: dict[str, Any], *, warning: str | None = None) -> dict[str, Any]:
    """The vendor's answer to a Task sent (POSTed, or PUT to cancel) as the result panel shows it."""
    delivery = sent["delivery"]
    notification = runtime().store.get_notification(sent["notification_id"])
    assert notification is not None  # the notifier stored it before sending
    status = delivery.get("status")
    location = delivery.get("location")
    success = isinstance(status, int) and 200 <= status < 300
    return {
        "kind": kind, "ok": success, "status": status, "location": location, "error": delivery.get("error"),
        "body": "" if success else (delivery.get("body") or "")[:BODY_EXCERPT],
        "task_id": _task_id(location), "identifier": notification.identifier, "notification_id": notification.id,
        "bsn": notification.patient_bsn, "workflow_task": (notification.workflow_task or {}).get("id"),
        "warning": warning, "tag": str(Tag.NOTIFICATION if kind == "notify" else Tag.CANCELLATION),
        "exchange": recorded_exchange(session.id, notification, kind), "tries": 0,
    }


def _task_id(location: str | None) -> str | None:
    """The id the vendor gave the Task, from its Location ([base]/Task/<id>[/_history/<version>])."""
    if not location:
        return None
    match = re.search(r"(?:^|/)Task/([A-Za-z0-9\-.]{1,64})(?:/|$)", location)
    return match.group(1) if match else None


def recorded_exchange(session_id: str, notification: Notification, kind: str) -> Exchange | None:
    """The proxy's record of the Task sent (kind notify: the POST; cancel: the conditional PUT), once it is there:
    a call of the simulator to the vendor in this session whose body carries the Task's identifier."""
    tag = Tag.NOTIFICATION if kind == "notify" else Tag.CANCELLATION
    page, _ = runtime().store.query_exchanges(session_id, tag=str(tag), since=notification.created_at - 1,
                                              limit=200)
    return next((ex for ex in reversed(page)
                 if ex.direction == "to-vendor" and notification.identifier in ex.request_body), None)


# --- probes -------------------------------------------------------------------------------------------------------
def probe_now(session: Session, form: ProbeForm) -> dict[str, Any] | None:
    """Make the probe the form names; the outcome for the result panel, or None when the form has an error."""
    if not form.validate_on_submit():
        return None
    kind = str(form.probe.data)
    rt = runtime()
    try:
        found = probe(rt.store, rt.signer, session, kind, timeout=rt.config.http_timeout_s, transport=rt.config.transport)
    except ProbeError as exc:
        return {"kind": "error", "title": f"The probe “{PROBE_LABELS.get(kind, kind)}” could not be made",
                "text": str(exc)}
    findings = found.get("findings", [])
    return {"kind": "probe", "probe": kind, "label": PROBE_LABELS.get(kind, kind), "rule": PROBE_RULES.get(kind),
            "ok": not any(f.get("severity") == "error" for f in findings), "method": found.get("method"),
            "url": found.get("url"), "status": found.get("status"), "first_status": found.get("first_status"),
            "www_authenticate": found.get("www_authenticate"), "body": (found.get("body") or "")[:BODY_EXCERPT],
            "findings": findings}
