"""Bearer token checks for the resource and notification endpoints (RFC 6750, SPEC §5.4).

Nothing here is cached: a token is read from the store on every request, so an expiry or a cancellation counts at
once in every process sharing the store.
"""
from __future__ import annotations

import time
from typing import Any

from flask import request

from simulator.endpoints.http_errors import invalid_token
from simulator.runtime import Runtime
from speeltuin.records import Notification, Session
from speeltuin.store import PullAccess
from validators.rules.bearer import bearer_value


def bearer_token() -> str | None:
    return bearer_value(request.headers.get("Authorization"))


def authenticate(rt: Runtime, session: Session, kind: str) -> dict[str, Any]:
    """The stored token behind the request's bearer token; raises the 401 to answer otherwise."""
    return _valid(rt.store.get_token(_required_token()), session, kind)


def pull_access(rt: Runtime) -> PullAccess | None:
    """What the request's bearer token gives access to, as stored now; None without a token or for an unknown one."""
    value = bearer_token()
    return rt.store.pull_access(value) if value is not None else None


def authenticate_pull(access: PullAccess | None, session: Session) -> tuple[dict[str, Any], Notification | None]:
    """As authenticate for a pull token, given its pull_access: the token, and the notification it is bound to
    (None: gone)."""
    _required_token()
    return _valid(access.token if access is not None else None, session, "pull"), \
        access.notification if access is not None else None


def _required_token() -> str:
    value = bearer_token()
    if value is None:
        raise invalid_token("an Authorization: Bearer header is required")
    return value


def _valid(token: dict[str, Any] | None, session: Session, kind: str) -> dict[str, Any]:
    if token is None or token["session_id"] != session.id or token["kind"] != kind:
        raise invalid_token("the access token is not valid here")
    if token["expires_at"] <= time.time():
        raise invalid_token("the access token has expired")
    return token
