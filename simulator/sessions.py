"""Validation sessions: what the simulator knows about one vendor system under test."""
from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from simulator.faults import UnknownFault, check_faults
from simulator.provocations import PROVOCATIONS, UnknownProvocation, check_provocations
from speeltuin.records import SESSION_URL_FIELDS, ChainConfig, Role, Session, SessionConfig, new_id
from speeltuin.store import Store
from speeltuin.vendor_config import ROLE_ENDPOINTS
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
    if request.get("kind") == "chain":
        return create_chain_session(store, request)
    role = request.get("vendor_role")
    if role not in VENDOR_ROLES:
        raise SessionError(f"vendor_role must be one of {', '.join(VENDOR_ROLES)}, got {role!r}")
    ura = str(request.get("vendor_ura") or "")
    if not is_valid_ura(ura):
        raise SessionError(f"vendor_ura must be a URA of 8 digits, got {ura!r}")
    session_id = request.get("id") or new_id("s-")
    _check_new_id(store, session_id)
    jwks = _jwks(request.get("vendor_jwks"), "vendor_jwks")
    urls = {key: _http_url(request[key], key) for key in SESSION_URL_FIELDS if request.get(key) is not None}
    _check_complete(role, jwks, urls)
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


_WHAT_FOR = {"token_url": "its authorization server's token URL (the simulator gets its tokens there)",
             "notification_base": "its notification base (the simulator POSTs the Notification Task to <base>/Task)",
             "fhir_base": "its FHIR base (the simulator pulls from it)"}


def _check_complete(role: str, jwks: dict[str, Any] | None, urls: dict[str, str]) -> None:
    """Refuse now what would only fail when the session is used: a vendor whose assertions cannot be checked, or
    that the simulator cannot reach in its role. The message starts with the first missing field's name."""
    missing = [f"vendor_{key} is needed: {_WHAT_FOR[key]}" for key in ROLE_ENDPOINTS[role]
               if f"vendor_{key}" not in urls]
    if jwks is None and "vendor_jwks_url" not in urls:
        missing.insert(0, "vendor_jwks (or vendor_jwks_url) is needed: the public keys the vendor's client assertions "
                          "are signed with")
    if missing:
        raise SessionError(f"{'; '.join(missing)} (the vendor is the {role})")


def _check_new_id(store: Store, session_id: object) -> None:
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise SessionError("id must be 3-64 characters of a-z, 0-9 and '-', starting with a letter or digit")
    if store.get_session(session_id):
        raise SessionError(f"a session with id {session_id!r} exists already")


def _jwks(value: object, name: str) -> dict[str, Any] | None:
    if value is not None and not (isinstance(value, dict) and isinstance(value.get("keys"), list)):
        raise SessionError(f'{name} must be a JWKS object: {{"keys": [...]}}')
    if value is not None and not value["keys"]:
        raise SessionError(f"{name} holds no keys: give the public key(s) the system signs its assertions with")
    return value


def _http_url(value: object, name: str) -> str:
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SessionError(f"{name} must be an absolute http(s) URL, got {value!r}")
    return str(value).rstrip("/")


def create_chain_session(store: Store, request: dict[str, Any]) -> Session:
    """A chain session (records.ChainConfig): `sender` and `receiver`, each {ura, client_id, jwks or jwks_url,
    upstream, port?}. The receiver is stored as the session's vendor, the sender as its peer."""
    session_id = request.get("id") or new_id("c-")
    _check_new_id(store, session_id)
    parties = {role: _chain_party(request.get(role), role) for role in ("sender", "receiver")}
    sender, receiver = parties["sender"], parties["receiver"]
    if sender["port"] is not None and sender["port"] == receiver["port"]:
        raise SessionError("sender.port and receiver.port must differ: the port tells the proxy whom a call is for")
    _check_routes_free(store, parties)
    chain = ChainConfig(vendor_upstream=receiver["upstream"], peer_upstream=sender["upstream"],
                        vendor_port=receiver["port"], peer_port=sender["port"], peer_jwks=sender["jwks"],
                        peer_jwks_url=sender["jwks_url"])
    config = SessionConfig(vendor_ura=receiver["ura"], vendor_client_id=receiver["client_id"],
                           own_ura=sender["ura"], own_client_id=sender["client_id"], vendor_jwks=receiver["jwks"],
                           vendor_jwks_url=receiver["jwks_url"], chain=chain)
    name = str(request.get("name") or session_id)[:200]
    return store.create_session(Session(session_id, name, Role.RECEIVER, config, time.time()))


def _chain_party(raw: object, role: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SessionError(f"{role} must be an object: {{ura, client_id, jwks or jwks_url, upstream, port}}")
    ura = str(raw.get("ura") or "")
    if not is_valid_ura(ura):
        raise SessionError(f"{role}.ura must be a URA of 8 digits, got {ura!r}")
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id.strip():
        raise SessionError(f"{role}.client_id: the client id its assertions carry (iss = sub) is required")
    upstream = _http_url(raw.get("upstream"), f"{role}.upstream")
    parts = urlsplit(upstream)
    if parts.path or parts.query:
        raise SessionError(f"{role}.upstream is where the system listens, scheme://host:port without a path; "
                           f"got {upstream!r}")
    port = raw.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
        raise SessionError(f"{role}.port must be a TCP port (1-65535) of the proxy, got {port!r}")
    jwks_url = _http_url(raw["jwks_url"], f"{role}.jwks_url") if raw.get("jwks_url") is not None else None
    return {"ura": ura, "client_id": client_id.strip(), "jwks": _jwks(raw.get("jwks"), f"{role}.jwks"),
            "jwks_url": jwks_url, "upstream": f"{parts.scheme}://{parts.netloc}", "port": port}


def _check_routes_free(store: Store, parties: dict[str, dict[str, Any]]) -> None:
    """Each port, and each host of a system reached through the forward listener, belongs to one chain session."""
    for other in store.list_sessions():
        chain = other.config.chain
        if chain is None:
            continue
        for role, party in parties.items():
            if party["port"] is not None and party["port"] in (chain.vendor_port, chain.peer_port):
                raise SessionError(f"{role}.port {party['port']} is taken by chain session {other.id!r}")
            taken = {u for u, p in ((chain.vendor_upstream, chain.vendor_port), (chain.peer_upstream, chain.peer_port))
                     if p is None}
            if party["port"] is None and party["upstream"] in taken:
                raise SessionError(f"{role}.upstream {party['upstream']} is reached through the forward listener "
                                   f"in chain session {other.id!r} already: give this one a port")


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
    if session.config.chain is not None:
        return chain_endpoints(session.config.chain, urlsplit(public_base).hostname or "127.0.0.1")
    base = f"{public_base.rstrip('/')}/s/{session.id}"
    endpoints = {"token_url": f"{base}/token", "jwks_url": f"{base}/jwks",
                 "client_id": session.config.vendor_client_id,
                 # who the simulator is in the session: the Task's owner (sender) and its assertions' iss = sub
                 "simulator_ura": session.config.own_ura, "simulator_client_id": session.config.own_client_id}
    if session.vendor_role == Role.SENDER:
        endpoints["notification_base"] = f"{base}/notify"
        endpoints["notification_url"] = f"{base}/notify/Task"
    else:
        endpoints["fhir_base"] = f"{base}/fhir"
    return endpoints


def chain_endpoints(chain: ChainConfig, proxy_host: str) -> dict[str, str]:
    """Where each system of a chain session calls the other: a port of the proxy, or the other's own address
    through the proxy's forward listener."""
    host = f"[{proxy_host}]" if ":" in proxy_host else proxy_host

    def via(upstream: str, port: int | None) -> str:
        return f"{urlsplit(upstream).scheme}://{host}:{port}" if port else f"{upstream} (through the forward proxy)"

    return {"sender_base": via(chain.peer_upstream, chain.peer_port),
            "receiver_base": via(chain.vendor_upstream, chain.vendor_port)}


def session_view(session: Session, public_base: str) -> dict[str, Any]:
    """The session as the API and CLI show it."""
    return {"id": session.id, "kind": "chain" if session.is_chain else "simulator", "name": session.name,
            "vendor_role": session.vendor_role, "simulator_role": session.simulator_role, "created_at": session.created_at,
            "config": session.config.to_dict(), "endpoints": session_endpoints(session, public_base)}
