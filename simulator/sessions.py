"""Validation sessions: what the simulator knows about one vendor system under test."""
from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from simulator.faults import UnknownFault, check_faults
from simulator.provocations import PROVOCATIONS, UnknownProvocation, check_provocations
from speeltuin.records import SESSION_URL_FIELDS, Role, Session, SessionConfig, new_id
from speeltuin.store import Store
from validators.catalogue import load_all
from validators.rules.identifiers import is_valid_ura

VENDOR_ROLES = tuple(Role)
_SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
MAX_SUPPRESSION_REASON = 500  # characters: the reason is shown beside the rule in every report


class SessionError(ValueError):
    """A session request that cannot be honoured; the message says what to fix."""


class SuppressionError(SessionError):
    """A suppression that cannot be recorded; `problems`: what to fix, by field (`rule`, `reason`)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


def create_session(store: Store, request: dict[str, Any], *, own_ura: str, own_client_id: str) -> Session:
    """Check a session request (API body or CLI arguments) and store the session."""
    role = request.get("vendor_role")
    if role not in VENDOR_ROLES:
        raise SessionError(f"vendor_role must be one of {', '.join(VENDOR_ROLES)}, got {role!r}")
    ura = str(request.get("vendor_ura") or "")
    if not is_valid_ura(ura):
        raise SessionError(f"vendor_ura must be a URA of 8 digits, got {ura!r}")
    session_id = request.get("id") or new_id("s-")
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise SessionError("id must be 3-64 characters of a-z, 0-9 and '-', starting with a letter or digit")
    if store.get_session(session_id):
        raise SessionError(f"a session with id {session_id!r} exists already")
    jwks = request.get("vendor_jwks")
    if jwks is not None and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
        raise SessionError('vendor_jwks must be a JWKS object: {"keys": [...]}')
    urls: dict[str, str] = {}
    for key in SESSION_URL_FIELDS:
        value = request.get(key)
        if value is not None:
            parts = urlsplit(str(value))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise SessionError(f"{key} must be an absolute http(s) URL, got {value!r}")
            urls[key] = str(value).rstrip("/")
    raw_faults = request.get("faults") or []  # the reference vendor misbehaving on purpose, in this session only
    if not isinstance(raw_faults, list) or not all(isinstance(name, str) for name in raw_faults):
        raise SessionError("faults must be a list of fault names (`speeltuin serve --help` lists them)")
    try:
        session_faults = tuple(sorted(check_faults(raw_faults)))
    except UnknownFault as exc:
        raise SessionError(f"faults: {exc}") from exc
    provoke = provocations(request.get("provoke"), role)  # what the simulator does to the vendor on purpose
    config = SessionConfig(
        vendor_ura=ura, vendor_jwks=jwks,
        vendor_client_id=request.get("vendor_client_id") or f"vendor-{session_id}",
        own_ura=request.get("own_ura") or own_ura, own_client_id=request.get("own_client_id") or own_client_id,
        mtls=bool(request.get("mtls", False)), faults=session_faults, provoke=provoke,
        **urls)
    name = str(request.get("name") or session_id)[:200]
    return store.create_session(Session(session_id, name, Role(role), config, time.time()))


def provocations(raw: object, vendor_role: str) -> tuple[str, ...]:
    """A session's provocations (simulator/provocations.py) from a request; SessionError for a bad list."""
    raw = raw or []
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise SessionError(f"provoke must be a list of provocation names; known: {', '.join(sorted(PROVOCATIONS))}")
    try:
        return check_provocations(raw, vendor_role=vendor_role)
    except UnknownProvocation as exc:
        raise SessionError(f"provoke: {exc}") from exc


def set_provocations(store: Store, session: Session, raw: object) -> Session:
    """Change what the simulator provokes in a running session (a scenario switches it on, then off again)."""
    config = replace(session.config, provoke=provocations(raw, session.vendor_role))
    store.update_session_config(session.id, config)
    return replace(session, config=config)


def suppress_rule(store: Store, session: Session, rule_id: str, reason: object) -> str:
    """Suppress a rule of the catalogue for a session, with the reason why (the admin API and the web UI alike);
    returns the reason as stored (stripped). SuppressionError names every problem at once."""
    problems = {}
    if not rule_id:
        problems["rule"] = "Name the rule to suppress, e.g. BUNDLE-010."
    elif rule_id not in load_all():
        problems["rule"] = f"No rule {rule_id[:40]!r} in the catalogue (see `speeltuin rules`)."
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        problems["reason"] = "A suppression needs a reason: it is shown in every report."
    elif len(text) > MAX_SUPPRESSION_REASON:
        problems["reason"] = f"A reason is at most {MAX_SUPPRESSION_REASON} characters; this one has {len(text)}."
    if problems:
        raise SuppressionError(problems)
    store.set_suppression(session.id, rule_id, text)
    return text


def session_endpoints(session: Session, public_base: str) -> dict[str, str]:
    """The simulator endpoints the vendor must use for this session."""
    base = f"{public_base.rstrip('/')}/s/{session.id}"
    endpoints = {"token_url": f"{base}/token", "jwks_url": f"{base}/jwks",
                 "client_id": session.config.vendor_client_id}
    if session.vendor_role == Role.SENDER:
        endpoints["notification_base"] = f"{base}/notify"
        endpoints["notification_url"] = f"{base}/notify/Task"
    else:
        endpoints["fhir_base"] = f"{base}/fhir"
    return endpoints


def session_view(session: Session, public_base: str) -> dict[str, Any]:
    """The session as the API and CLI show it."""
    return {"id": session.id, "name": session.name, "vendor_role": session.vendor_role,
            "simulator_role": session.simulator_role, "created_at": session.created_at,
            "config": session.config.to_dict(), "endpoints": session_endpoints(session, public_base)}
