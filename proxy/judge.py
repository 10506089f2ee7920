"""Turns one captured flow into the exchange the store keeps: attributed to its session, classified, judged by the
validators, redacted. It runs in the proxy's writer process (proxy/writer.py), off the flow's path; nothing here
touches mitmproxy's objects, only the picklable snapshot the addon took (CapturedFlow).

A validator that raises never costs the exchange: it is recorded with an INTERNAL-001 finding naming the rule module
that failed (validators/rules/internal.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

from mitmproxy.net import encoding

from proxy.classify import classify, session_in_path
from proxy.inspection import FlowContext, FlowRecord, header, inspect
from proxy.redaction import redact_body, redact_headers, redact_text
from speeltuin.jwks_cache import JwksCache
from speeltuin.keys import Signer
from speeltuin.records import Exchange, FlowDirection, Role, Session, Tag
from speeltuin.store import Store
from validators.rules.internal import judged

MAX_JTIS = 10_000  # (iss, jti) pairs remembered to see replays in flight; bounded memory for a 24/7 proxy


@dataclass(frozen=True)
class CapturedFlow:
    """What the addon takes of a flow when it is answered (or fails): plain values, sent to the writer process."""

    method: str
    url: str  # as the caller used it (the proxy's listener)
    path: str
    request_headers: dict[str, str]
    request_body: bytes  # as received: a content-encoding (gzip, br, ...) is undone by the judge, off the path
    status: int | None
    response_headers: dict[str, str]
    response_body: bytes
    started_at: float
    ended_at: float | None
    error: str | None = None
    marked_session: str | None = None  # the simulator's mark on its own outbound calls


def decoded(body: bytes, headers: Mapping[str, str]) -> bytes:
    """The body without its content-encoding (gzip, br, ...); as received when it cannot be decoded."""
    coding = header(headers, "Content-Encoding").strip().lower()
    if not body or not coding or coding == "identity":
        return body
    try:
        result = encoding.decode(body, coding)
    except ValueError:
        return body
    return result if isinstance(result, bytes) else body


class Judge:
    """Knows the sessions (from the store), the keys of the callers and the jtis seen; makes Exchanges."""

    def __init__(self, store: Store, public_url: str) -> None:
        self.store = store
        self.public_url = public_url.rstrip("/")
        self._sessions: dict[str, Session] = {}
        self._simulator_jwks: dict | None = None
        self._vendor_keys = JwksCache()
        self._jtis: dict[tuple[str, str], float] = {}

    def exchange(self, flow: CapturedFlow) -> Exchange:
        tag = classify(flow.method, flow.path)
        session, direction = self._attribute(flow)
        request_body = decoded(flow.request_body, flow.request_headers)
        response_body = decoded(flow.response_body, flow.response_headers)
        record = FlowRecord(tag=tag, method=flow.method, url=flow.url, request_headers=flow.request_headers,
                            request_body=request_body, status=flow.status, response_headers=flow.response_headers,
                            response_body=response_body, started_at=flow.started_at)
        findings = judged(lambda: inspect(record, self._context(session, direction, tag))) if session else []
        return Exchange(
            source="proxy", tag=tag, direction=direction, method=flow.method, url=flow.url, status=flow.status,
            request_headers=redact_headers(flow.request_headers),
            request_body=redact_body(request_body),
            response_headers=redact_headers(flow.response_headers),
            response_body=redact_body(response_body),
            started_at=flow.started_at,
            duration_ms=(flow.ended_at - flow.started_at) * 1000 if flow.ended_at else None,
            error=redact_text(flow.error) if flow.error else None,
            session_id=session.id if session else None, findings=findings)

    def _session(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        if session_id not in self._sessions:
            found = self.store.get_session(session_id)
            if found is None:
                return None
            self._sessions[session_id] = found
        return self._sessions[session_id]

    def _attribute(self, flow: CapturedFlow) -> tuple[Session | None, FlowDirection]:
        """A path under /s/<id>/ of ours is a call to the simulator; a marked call comes from it."""
        inbound = self._session(session_in_path(flow.path))
        if inbound:
            return inbound, FlowDirection.TO_SIMULATOR
        outbound = self._session(flow.marked_session)
        if outbound:
            return outbound, FlowDirection.TO_VENDOR
        return None, FlowDirection.UNKNOWN

    def _context(self, session: Session | None, direction: FlowDirection, tag: Tag) -> FlowContext:
        if tag != Tag.TOKEN_REQUEST or session is None:
            return FlowContext()
        if direction == FlowDirection.TO_SIMULATOR:
            return FlowContext(
                token_url=f"{self.public_url}/s/{session.id}/token" if self.public_url else None,
                caller_jwks=self._vendor_keys.keys_for(session), caller_client_id=session.config.vendor_client_id,
                purpose="pull" if session.simulator_role == Role.SENDER else "notification", seen_jti=self._seen_jti)
        return FlowContext(
            token_url=session.config.vendor_token_url, caller_jwks=self._own_jwks(),
            caller_client_id=session.config.own_client_id,
            purpose="pull" if session.simulator_role == Role.RECEIVER else "notification", seen_jti=self._seen_jti)

    def _seen_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        if len(self._jtis) > MAX_JTIS:  # forget what has expired long ago
            self._jtis = {k: v for k, v in self._jtis.items() if v > now - 3600}
        seen = (issuer, jti) in self._jtis
        self._jtis[(issuer, jti)] = max(expires_at, now)
        return seen

    def _own_jwks(self) -> dict | None:
        if self._simulator_jwks is None:
            found = self.store.load_instance_key()
            self._simulator_jwks = Signer(*found).jwks() if found else None
        return self._simulator_jwks
