"""The mitmproxy addon: classify each flow, run the validators on it, record exchange and findings.

Run it with the real mitmdump (see proxy/launcher.py):
    mitmdump -s proxy/addon.py --set speeltuin_db=sqlite:///... --set speeltuin_public_url=http://...
"""
from __future__ import annotations

import logging
import time

from mitmproxy import ctx, http

# mitmdump loads this file as a script; the project's packages come from the environment it is installed in.
from proxy.classify import classify, session_in_path
from proxy.inspection import FlowContext, FlowRecord, header, inspect
from proxy.redaction import redact_body, redact_headers, redact_text
from speeltuin.jwks_cache import JwksCache
from speeltuin.keys import Signer
from speeltuin.records import SESSION_HEADER, Exchange, FlowDirection, Role, Session, Tag
from speeltuin.store import Store

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self) -> None:
        self.store: Store | None = None
        self._sessions: dict[str, Session] = {}
        self._simulator_jwks: dict | None = None
        self._vendor_keys = JwksCache()
        self._jtis: dict[tuple[str, str], float] = {}  # (iss, jti) -> exp, to see replays in flight

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("speeltuin_db", str, "", "SQLAlchemy URL of the speeltuin store")
        loader.add_option("speeltuin_public_url", str, "",
                          "base URL at which vendors reach the simulator through this proxy")

    def configure(self, updated: set[str]) -> None:
        if "speeltuin_db" in updated and ctx.options.speeltuin_db:
            self.store = Store(ctx.options.speeltuin_db)
            self._sessions.clear()
            self._simulator_jwks = None

    def request(self, flow: http.HTTPFlow) -> None:
        # The simulator marks its own outbound calls; the vendor never needs to see the mark.
        marked = flow.request.headers.pop(SESSION_HEADER, None)
        if marked:
            flow.metadata["speeltuin_session"] = marked

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        if self.store is None:
            return
        try:
            self.store.add_exchange(self._exchange(flow))
        except Exception:  # recording must never break the traffic it watches
            log.exception("could not record %s %s", flow.request.method, flow.request.pretty_url)

    def _session(self, session_id: str | None) -> Session | None:
        if not session_id or self.store is None:
            return None
        if session_id not in self._sessions:
            found = self.store.get_session(session_id)
            if found is None:
                return None
            self._sessions[session_id] = found
        return self._sessions[session_id]

    def _exchange(self, flow: http.HTTPFlow) -> Exchange:
        request, response = flow.request, flow.response
        tag = classify(request.method, request.path)
        session, direction = self._attribute(flow)
        # Validators judge decoded (un-gzipped) bodies; the store keeps redacted text of the same.
        record = FlowRecord(
            tag=tag, method=request.method, url=called_url(flow), request_headers=dict(request.headers),
            request_body=request.get_content(strict=False) or b"",
            status=response.status_code if response else None,
            response_headers=dict(response.headers) if response else {},
            response_body=(response.get_content(strict=False) or b"") if response else b"",
            started_at=request.timestamp_start)
        findings = inspect(record, self._context(session, direction, tag)) if session else []
        ended = response.timestamp_end if response and response.timestamp_end else None
        return Exchange(
            source="proxy", tag=tag, direction=direction, method=record.method, url=record.url,
            status=record.status, request_headers=redact_headers(record.request_headers),
            request_body=redact_body(record.request_body, header(record.request_headers, "Content-Type")),
            response_headers=redact_headers(record.response_headers),
            response_body=redact_body(record.response_body, header(record.response_headers, "Content-Type")),
            started_at=record.started_at,
            duration_ms=(ended - record.started_at) * 1000 if ended else None,
            error=redact_text(str(flow.error)) if flow.error else None,
            session_id=session.id if session else None, findings=findings)

    def _attribute(self, flow: http.HTTPFlow) -> tuple[Session | None, FlowDirection]:
        """A path under /s/<id>/ of ours is a call to the simulator; a marked call comes from it."""
        inbound = self._session(session_in_path(flow.request.path))
        if inbound:
            return inbound, FlowDirection.TO_SIMULATOR
        outbound = self._session(flow.metadata.get("speeltuin_session"))
        if outbound:
            return outbound, FlowDirection.TO_VENDOR
        return None, FlowDirection.UNKNOWN

    def _context(self, session: Session, direction: FlowDirection, tag: Tag) -> FlowContext:
        if tag != Tag.TOKEN_REQUEST:
            return FlowContext()
        if direction == FlowDirection.TO_SIMULATOR:
            base = ctx.options.speeltuin_public_url.rstrip("/")
            return FlowContext(
                token_url=f"{base}/s/{session.id}/token" if base else None,
                caller_jwks=self._vendor_keys.keys_for(session), caller_client_id=session.config.vendor_client_id,
                purpose="pull" if session.simulator_role == Role.SENDER else "notification", seen_jti=self._seen_jti)
        return FlowContext(
            token_url=session.config.vendor_token_url, caller_jwks=self._own_jwks(),
            caller_client_id=session.config.own_client_id,
            purpose="pull" if session.simulator_role == Role.RECEIVER else "notification", seen_jti=self._seen_jti)

    def _seen_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        if len(self._jtis) > 10_000:  # forget what has expired long ago; bounded memory for a 24/7 proxy
            self._jtis = {k: v for k, v in self._jtis.items() if v > now - 3600}
        seen = (issuer, jti) in self._jtis
        self._jtis[(issuer, jti)] = max(expires_at, now)
        return seen

    def _own_jwks(self) -> dict | None:
        if self._simulator_jwks is None and self.store is not None:
            found = self.store.load_instance_key()
            self._simulator_jwks = Signer(*found).jwks() if found else None
        return self._simulator_jwks


def called_url(flow: http.HTTPFlow) -> str:
    """The URL as the caller used it (the proxy's listener), not the upstream it was forwarded to."""
    sockname = getattr(flow.client_conn, "sockname", None)
    if not sockname:
        return flow.request.pretty_url
    host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
    scheme = "https" if flow.client_conn.tls_established else "http"
    return f"{scheme}://{host}:{sockname[1]}{flow.request.path}"


addons = [Recorder()]
