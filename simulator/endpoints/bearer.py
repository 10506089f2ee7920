"""Bearer token checks for the resource and notification endpoints (RFC 6750, SPEC §5.4)."""
from __future__ import annotations

import time
from typing import Any

from flask import request

from simulator.endpoints.http_errors import invalid_token
from simulator.runtime import Runtime
from speeltuin.records import Session


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate(rt: Runtime, session: Session, kind: str) -> dict[str, Any]:
    """The stored token behind the request's bearer token; raises the 401 to answer otherwise."""
    value = bearer_token()
    if value is None:
        raise invalid_token("an Authorization: Bearer header is required")
    token = rt.store.get_token(value)
    if token is None or token["session_id"] != session.id or token["kind"] != kind:
        raise invalid_token("the access token is not valid here")
    if token["expires_at"] <= time.time():
        raise invalid_token("the access token has expired")
    return token
