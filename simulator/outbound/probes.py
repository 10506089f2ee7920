"""Probes: requests the simulator (as receiving node) makes on purpose to see the vendor's resource
server refuse them (SPEC §5.2-§5.4). Each returns what was asked, what came back, and the findings.

They run after a notification was received in the session, so there is a real authorization base
to build on; everything goes through the session's normal route (and so through the proxy).
"""
from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urljoin

import requests

from simulator.outbound.client import OutboundError, client_for, fetch_token, require
from speeltuin.keys import Signer
from speeltuin.records import Notification, NotificationOrigin, Role, Session, TlsFiles
from speeltuin.store import Store
from validators.findings import Finding
from validators.rules.http import check_bearer_challenge, check_error_status, check_fhir_response
from validators.rules.token_request import check_grant_refused, check_token_response
from validators.spec import BSN_SYSTEM
from validators.stu3 import FHIR_JSON

PROBES = ("no-token", "bad-token", "other-patient", "malformed-query", "token-after-cancellation")
OTHER_PATIENT_BSN = "999990639"  # a valid test BSN that the notification does not name
OTHER_PATIENT_BSN_ALT = "999993653"


class ProbeError(Exception):
    """The probe cannot be made in this session; the message says why."""


def probe(store: Store, signer: Signer, session: Session, kind: str, *, timeout: float = 15.0,
          tls: TlsFiles | None = None) -> dict[str, Any]:
    if kind not in PROBES:
        raise ProbeError(f"unknown probe {kind!r}; known: {', '.join(PROBES)}")
    if session.simulator_role != Role.RECEIVER:
        raise ProbeError("probes test the vendor's resource server: the vendor must be the sender in this session")
    received = [n for n in store.list_notifications(session.id) if n.origin == NotificationOrigin.RECEIVED]
    if not received:
        raise ProbeError("no notification received in this session yet; let the vendor notify first")
    try:
        fhir_base = require(session, "vendor_fhir_base") + "/"
        token_url = require(session, "vendor_token_url")
    except OutboundError as exc:
        raise ProbeError(str(exc)) from exc
    notification = received[-1]
    http = client_for(session, tls)
    try:
        if kind == "token-after-cancellation":
            return _token_after_cancellation(http, signer, session, notification, token_url, timeout)
        if kind in ("no-token", "bad-token"):
            token = None if kind == "no-token" else "not-a-valid-token-" + secrets.token_hex(8)
            return _search(http, kind, urljoin(fhir_base, "Patient"), token, timeout)
        if notification.status != "requested":
            raise ProbeError(f"the last notification is {notification.status}; these probes need a valid one")
        token = fetch_token(http, token_url, signer.token_request_form(
            session.config.own_client_id, session.config.own_ura, token_url, notification.authorization_base),
            timeout)
        if kind == "malformed-query":
            return _search(http, kind, urljoin(fhir_base, "Observation?_count=not-a-number"), token, timeout)
        other = OTHER_PATIENT_BSN if notification.patient_bsn != OTHER_PATIENT_BSN else OTHER_PATIENT_BSN_ALT
        return _search(http, kind, urljoin(fhir_base, f"Patient?identifier={BSN_SYSTEM}%7C{other}"), token, timeout,
                       other_bsn=other)
    except requests.RequestException as exc:
        raise ProbeError(f"the vendor could not be reached: {exc}") from exc
    except OutboundError as exc:
        raise ProbeError(f"no pull token for the probe: {exc}") from exc


def _search(http: requests.Session, kind: str, url: str, token: str | None, timeout: float, *,
            other_bsn: str | None = None) -> dict[str, Any]:
    headers = {"Accept": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = http.get(url, headers=headers, timeout=timeout)
    findings = check_fhir_response(response.status_code, response.headers, response.content)
    if kind in ("no-token", "bad-token"):
        findings += check_error_status(kind, response.status_code)  # type: ignore[arg-type]
        findings += check_bearer_challenge(response.status_code, response.headers)
    elif kind == "malformed-query":
        findings += check_error_status(kind, response.status_code)  # type: ignore[arg-type]
    elif response.status_code != 200 or _leaks(response, other_bsn or ""):
        # Search narrowing may answer 200 with nothing of that patient; anything of theirs is a leak.
        findings += check_error_status("other-patient", response.status_code)
    return _result(kind, "GET", url, response, findings)


def _leaks(response: requests.Response, bsn: str) -> bool:
    try:
        bundle = response.json()
    except ValueError:
        return False
    return bsn in json.dumps(bundle.get("entry", [])) if isinstance(bundle, dict) else False


def _token_after_cancellation(http: requests.Session, signer: Signer, session: Session, notification: Notification,
                              token_url: str, timeout: float) -> dict[str, Any]:
    if notification.status != "cancelled":
        raise ProbeError("the last notification is not cancelled; let the vendor cancel it first")
    form = signer.token_request_form(session.config.own_client_id, session.config.own_ura, token_url,
                                     notification.authorization_base)
    response = http.post(token_url, data=form, timeout=timeout, headers={"Accept": "application/json"})
    findings = check_token_response(response.status_code, response.headers, response.content)
    findings += check_grant_refused(response.status_code, response.content)
    return _result("token-after-cancellation", "POST", token_url, response, findings)


def _result(kind: str, method: str, url: str, response: requests.Response, findings: list[Finding]) -> dict[str, Any]:
    return {"probe": kind, "method": method, "url": url, "status": response.status_code,
            "www_authenticate": response.headers.get("WWW-Authenticate"),
            "body": response.text[:2000], "findings": [f.to_dict() for f in findings]}

