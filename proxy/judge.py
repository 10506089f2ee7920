"""Turns one captured flow into the exchange the store keeps: attributed to its session, classified, judged by the
validators, redacted. It runs in the proxy's writer process (proxy/writer.py), off the flow's path; nothing here
touches mitmproxy's objects, only the picklable snapshot the addon took (CapturedFlow).

A validator that raises never costs the exchange: it is recorded with an INTERNAL-001 finding naming the rule module
that failed (validators/rules/internal.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal, Mapping
from urllib.parse import urlsplit

from mitmproxy.net import encoding

from proxy.classify import classify, session_in_path
from proxy.inspection import FlowContext, FlowRecord, PullGrant, header, inspect, pulled_patient_reference
from proxy.redaction import redact_body, redact_headers, redact_text
from speeltuin.jwks_cache import JwksCache
from speeltuin.keys import Signer
from speeltuin.records import Exchange, FlowDirection, Notification, NotificationOrigin, Role, Session, Tag
from speeltuin.store import Store
from validators.rules.bearer import bearer_value
from validators.rules.internal import judged
from validators.task_reader import offered_targets

# The proxy's record of the jtis it saw, in the store beside the authorization servers' own (so every proxy in front
# of the same store sees a replay through another), under issuers of its own (so neither counts the other's use).
PROXY_JTI_ISSUER = "proxy-seen:"
ROUTES_FRESH_S = 2.0  # a flow no chain route knows reads the chain sessions again, at most this often


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
    marked_pull: str | None = None  # and on its pulls: the id of the notification it received and pulls for
    marked_probe: str | None = None  # and on its probes: which (validators.probe_verdict.probe_mark)
    listen_port: int | None = None  # the proxy's port the caller reached
    forwarded: bool = False  # through a forward (regular) listener: the caller named the target itself
    upstream: str = ""  # where the flow went: scheme://host:port


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

    def __init__(self, store: Store, public_url: str, trusted_ca_pem: bytes | None = None, *,
                 vendor_ca: str | None = None) -> None:
        """`vendor_ca`: what vendors' servers chain to (the test CA), also for their https:// JWKS URLs."""
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.trusted_ca_pem = trusted_ca_pem
        self._sessions: dict[str, Session] = {}
        self._simulator_jwks: dict | None = None
        self._vendor_keys = JwksCache(verify=vendor_ca or True)
        self._routes = ChainRoutes({}, {})
        self._routes_read = float("-inf")
        # The sender's reference of the patient of each notification the simulator received and pulls for, as the
        # first answer with the matched Patient of its BSN showed it (the simulator's pulls come one after the other)
        self._pulled_patients: dict[str, str] = {}

    def exchange(self, flow: CapturedFlow) -> Exchange:
        tag = classify(flow.method, flow.path)
        session, direction = self._attribute(flow)
        request_body = decoded(flow.request_body, flow.request_headers)
        response_body = decoded(flow.response_body, flow.response_headers)
        record = FlowRecord(tag=tag, method=flow.method, url=flow.url, request_headers=flow.request_headers,
                            request_body=request_body, status=flow.status, response_headers=flow.response_headers,
                            response_body=response_body, started_at=flow.started_at)
        grant = self._grant(record, session, direction)
        pulled_for = self._pulled_for(flow.marked_pull, session, direction, tag)
        context = self._context(session, direction, tag, grant, pulled_for)
        if flow.marked_probe and session is not None and direction == FlowDirection.TO_VENDOR:
            context = replace(context, probe=flow.marked_probe)
        findings = judged(lambda: inspect(record, context)) if session else []
        if pulled_for is not None and pulled_for.id not in self._pulled_patients and flow.status == 200:
            found = pulled_patient_reference(response_body, pulled_for.patient_bsn)
            if found is not None:  # later answers of this pull are held to it (BUNDLE-015)
                self._pulled_patients[pulled_for.id] = found
        return Exchange(
            source="proxy", tag=tag, direction=direction, method=flow.method, url=flow.url, status=flow.status,
            request_headers=redact_headers(flow.request_headers),
            request_body=redact_body(request_body),
            response_headers=redact_headers(flow.response_headers),
            response_body=redact_body(response_body),
            started_at=flow.started_at,
            duration_ms=(flow.ended_at - flow.started_at) * 1000 if flow.ended_at else None,
            error=redact_text(flow.error) if flow.error else None,
            session_id=session.id if session else None, findings=findings,
            notification_id=grant.notification_id if grant is not None else
            pulled_for.id if pulled_for is not None else None)

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
        """A chain session's port (or, through the forward listener, its system's address) names its session; else a
        path under /s/<id>/ of ours is a call to the simulator, and a marked call comes from it."""
        route = self._chain_route(flow)
        if route is not None:
            session = self._session(route[0])
            if session is not None and session.is_chain:
                return session, route[1]
        inbound = self._session(session_in_path(flow.path))
        if inbound:
            return inbound, FlowDirection.TO_SIMULATOR
        outbound = self._session(flow.marked_session)
        if outbound:
            return outbound, FlowDirection.TO_VENDOR
        return None, FlowDirection.UNKNOWN

    def _chain_route(self, flow: CapturedFlow) -> tuple[str, FlowDirection] | None:
        found = self._routes.find(flow)
        if found is None and time.monotonic() - self._routes_read > ROUTES_FRESH_S:  # a session made since?
            self._routes_read = time.monotonic()
            chains = [s for s in self.store.list_sessions() if s.is_chain]
            self._sessions.update({s.id: s for s in chains})
            self._routes = ChainRoutes.of(chains)
            found = self._routes.find(flow)
        return found

    def _grant(self, record: FlowRecord, session: Session | None, direction: FlowDirection) -> PullGrant | None:
        """What the notification the simulator sent allows, for a pull made with one of its tokens."""
        if record.tag not in _PULLS or session is None or session.config.chain is not None \
                or direction != FlowDirection.TO_SIMULATOR:
            return None
        token = bearer_value(header(record.request_headers, "Authorization"))
        return self._pull_grant(token) if token is not None else None

    def _pulled_for(self, marked: str | None, session: Session | None, direction: FlowDirection,
                    tag: Tag) -> Notification | None:
        """The notification the simulator received in this session and made this pull for (its mark names it)."""
        if not marked or tag not in _PULLS or session is None or direction != FlowDirection.TO_VENDOR:
            return None
        found = self.store.get_notification(marked)
        return found if found is not None and found.session_id == session.id \
            and found.origin == NotificationOrigin.RECEIVED else None

    def _context(self, session: Session | None, direction: FlowDirection, tag: Tag,
                 grant: PullGrant | None, pulled_for: Notification | None = None) -> FlowContext:
        if grant is not None:
            return FlowContext(pull_grant=grant)
        if pulled_for is not None:
            return FlowContext(pulled_bsn=pulled_for.patient_bsn,
                               pulled_patient=self._pulled_patients.get(pulled_for.id))
        if tag != Tag.TOKEN_REQUEST or session is None:
            return FlowContext()
        if session.config.chain is not None:  # the caller is the other system; aud is the URL it called
            calls_peer = direction == FlowDirection.TO_PEER
            chain = session.config.chain
            return FlowContext(
                caller_jwks=self._vendor_keys.keys(*((session.config.vendor_jwks, session.config.vendor_jwks_url)
                                                     if calls_peer else (chain.peer_jwks, chain.peer_jwks_url))),
                caller_client_id=session.config.vendor_client_id if calls_peer else session.config.own_client_id,
                purpose=_token_purpose(session.simulator_role if calls_peer else session.vendor_role),
                seen_jti=partial(self._seen_jti, session.id), trusted_ca_pem=self.trusted_ca_pem)
        if direction == FlowDirection.TO_SIMULATOR:
            return FlowContext(
                token_url=f"{self.public_url}/s/{session.id}/token" if self.public_url else None,
                caller_jwks=self._vendor_keys.keys_for(session), caller_client_id=session.config.vendor_client_id,
                purpose=_token_purpose(session.simulator_role), seen_jti=partial(self._seen_jti, session.id),
                trusted_ca_pem=self.trusted_ca_pem, registered_ura=session.config.vendor_ura,
                task_of_base=partial(self._sent_task, session.id))
        return FlowContext(
            token_url=session.config.vendor_token_aud, caller_jwks=self._own_jwks(),
            caller_client_id=session.config.own_client_id, purpose=_token_purpose(session.vendor_role),
            seen_jti=partial(self._seen_jti, session.id), trusted_ca_pem=self.trusted_ca_pem)

    def _seen_jti(self, session_id: str, issuer: str, jti: str, expires_at: float) -> bool:
        """Whether this issuer used this jti before in this session, seen by any proxy on this store (a replay: each
        session's AS keeps its own)."""
        return not self.store.use_jti(session_id, PROXY_JTI_ISSUER + issuer, jti, max(expires_at, time.time()))

    def _pull_grant(self, token: str) -> PullGrant | None:
        """What the notification a pull token is bound to allows; None for a token the simulator does not know."""
        access = self.store.pull_access(token)
        notification = access.notification if access is not None else None
        if notification is None:
            return None
        told = (notification.delivery or {}).get("cancellation") or {}
        acknowledged = notification.status == "cancelled" and isinstance(told.get("status"), int) \
            and 200 <= told["status"] < 300 and isinstance(told.get("at"), (int, float))
        offered = offered_targets(notification.task, notification.workflow_task)
        return PullGrant(notification.id, float(told["at"]) if acknowledged else None, notification.period_end,
                         tuple(offered))

    def _sent_task(self, session_id: str, authorization_base: str) -> dict | None:
        """The Task of the notification the simulator sent in this session under this authorization base."""
        found = self.store.find_notification(session_id, NotificationOrigin.SENT, authorization_base=authorization_base)
        return found.task if found is not None else None

    def _own_jwks(self) -> dict | None:
        if self._simulator_jwks is None:
            found = self.store.load_instance_key()
            self._simulator_jwks = Signer(*found).jwks() if found else None
        return self._simulator_jwks


_PULLS = frozenset({Tag.SEARCH, Tag.READ, Tag.BINARY})


def _token_purpose(token_server: Role) -> Literal["pull", "notification"]:
    """What a token from this node's authorization server is for: a sender's lets the receiver pull; a receiver's
    lets the sender notify."""
    return "pull" if token_server == Role.SENDER else "notification"


@dataclass(frozen=True)
class ChainRoutes:
    """Which chain session and which of its systems a flow is for: by the proxy's port it came in on (reverse
    mode), or, through the forward listener, by the address it went to (regular mode)."""

    by_port: dict[int, tuple[str, FlowDirection]]
    by_upstream: dict[str, tuple[str, FlowDirection]]

    @classmethod
    def of(cls, sessions: list[Session]) -> "ChainRoutes":
        by_port: dict[int, tuple[str, FlowDirection]] = {}
        by_upstream: dict[str, tuple[str, FlowDirection]] = {}
        for session in sessions:
            chain = session.config.chain
            assert chain is not None
            for upstream, port, direction in ((chain.vendor_upstream, chain.vendor_port, FlowDirection.TO_VENDOR),
                                              (chain.peer_upstream, chain.peer_port, FlowDirection.TO_PEER)):
                if port is not None:
                    by_port[port] = (session.id, direction)
                else:
                    by_upstream[_origin(upstream)] = (session.id, direction)
        return cls(by_port, by_upstream)

    def find(self, flow: CapturedFlow) -> tuple[str, FlowDirection] | None:
        if flow.forwarded:
            return self.by_upstream.get(_origin(flow.upstream))
        return self.by_port.get(flow.listen_port) if flow.listen_port is not None else None


def _origin(url: str) -> str:
    """scheme://host:port, with the scheme's default port written out and the host in lower case."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"
