"""Typed records every part shares (simulator, proxy, scenarios, CLI), and the names of their kinds.

The store reads and writes these; nothing else knows how they are kept.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from speeltuin import defaults
from validators.findings import Finding

# The simulator marks its own outbound calls with this header so the proxy can attribute them to a
# session; the proxy strips it before the vendor sees the request.
SESSION_HEADER = "X-Speeltuin-Session"
# The simulator's mark on its pulls for a notification it received: the notification's id (the proxy removes it and
# judges the answer for that notification's patient)
PULL_HEADER = "X-Speeltuin-Pull"
# and on its probes: which probe (validators.probe_verdict.probe_mark), so the proxy judges the answer as the probe's
PROBE_HEADER = "X-Speeltuin-Probe"
# GET on any of the proxy's listeners: answered by the proxy itself once every flow answered before it is recorded
# (its writer works off the flows' path); 200 {"flushed": true, ...}, or 503 when that takes too long.
PROXY_FLUSH_PATH = "/_speeltuin/flushed"
# The validating proxy ends TLS in front of the simulator (`speeltuin service`); it passes on the client certificate
# it verified (base64 DER of the leaf), or why it did not accept it. It strips both from what callers send, and the
# simulator believes them only when told to (`serve --client-cert-from-proxy`, loopback behind the proxy).
CLIENT_CERT_HEADER = "X-Speeltuin-Client-Cert"
CLIENT_CERT_PROBLEM_HEADER = "X-Speeltuin-Client-Cert-Problem"


@dataclass(frozen=True)
class ProxyPorts:
    """Where the proxy listens: vendors reach the simulator through `front`, it reaches them through `back`."""

    front_port: int
    back_port: int
    host: str = defaults.HOST

    @property
    def front_url(self) -> str:
        return f"http://{self.host}:{self.front_port}"

    @property
    def back_url(self) -> str:
        return f"http://{self.host}:{self.back_port}"


class Role(StrEnum):
    """The role a node plays in the exchange (SPEC §2)."""

    SENDER = "sender"
    RECEIVER = "receiver"

    @property
    def other(self) -> "Role":
        return Role.RECEIVER if self is Role.SENDER else Role.SENDER


class NotificationOrigin(StrEnum):
    """Whether the simulator sent a notification (it is the sending node) or received it."""

    SENT = "sent"
    RECEIVED = "received"


class FlowDirection(StrEnum):
    """Which way an exchange went: a call to the simulator, or the simulator's call to the vendor."""

    TO_SIMULATOR = "to-simulator"
    TO_VENDOR = "to-vendor"
    TO_PEER = "to-peer"  # chain sessions: a call to the second system (which stands in the simulator's place)
    UNKNOWN = "unknown"


class Tag(StrEnum):
    """What an exchange is, named from its method and path alone."""

    TOKEN_REQUEST = "token-request"
    NOTIFICATION = "notification"
    CANCELLATION = "cancellation"
    SEARCH = "search"
    READ = "read"
    BINARY = "binary"
    CAPABILITY = "capability"
    OTHER = "other"


class PullStatus(StrEnum):
    """How the simulator's pull of a received notification went."""

    PENDING = "pending"
    PULLING = "pulling"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"  # cancelled or expired while pulling


class TokenKind(StrEnum):
    NOTIFICATION = "notification"  # lets the holder POST a Notification Task
    PULL = "pull"  # lets the holder pull what one notification offers


BYTES_MARK = "[base64] "  # a stored body that was not UTF-8 text: its bytes, base64-encoded, after this mark


def body_from_bytes(data: bytes) -> str:
    """How a body that is not UTF-8 text (a PDF, an image) is stored: kept whole, as base64 after BYTES_MARK."""
    import base64

    return BYTES_MARK + base64.b64encode(data).decode("ascii")


def stored_bytes(body: str) -> bytes | None:
    """The bytes of a body stored by body_from_bytes; None for a text body."""
    import base64
    import binascii

    if not body.startswith(BYTES_MARK):
        return None
    try:
        return base64.b64decode(body[len(BYTES_MARK):], validate=True)
    except (binascii.Error, ValueError):
        return None


def shown_body(body: str) -> str:
    """A stored body as a person reads it: text as it is, bytes described (the UI offers them as a download)."""
    data = stored_bytes(body)
    if data is None:
        return body
    kind = "a PDF" if data.startswith(b"%PDF-") else "binary data"
    return f"[{len(data):,} bytes of {kind}, not text]"


def new_id(prefix: str = "") -> str:
    return prefix + secrets.token_hex(8)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # this node's certificate (chain), PEM
    key: Path
    ca: Path  # the test CA: client certificates must chain to it; vendors' servers too


SESSION_URL_FIELDS = ("vendor_token_url", "vendor_notification_base", "vendor_fhir_base", "vendor_jwks_url",
                      "vendor_token_audience")


@dataclass(frozen=True)
class ChainConfig:
    """A chain session: two vendor systems exchange through the proxy, with no simulator. The session's vendor is
    one; the *peer* is the other, standing where the simulator would (its URA and client id are the session's
    own_ura and own_client_id). Each is reached through its own listening port of the proxy (reverse mode), or,
    without one, through the proxy's forward listener, known by its host and port (regular mode)."""

    vendor_upstream: str  # where the vendor system really listens: scheme://host:port
    peer_upstream: str
    vendor_port: int | None = None  # the proxy's port in front of the vendor system
    peer_port: int | None = None
    peer_jwks: dict[str, Any] | None = None  # the keys the peer signs its assertions with
    peer_jwks_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class SessionConfig:
    """What the simulator knows about the vendor system of one session, and who it is itself there."""

    vendor_ura: str
    vendor_client_id: str  # the client id the vendor's assertions carry (iss = sub)
    own_ura: str  # the organisation the simulator plays in this session
    own_client_id: str
    vendor_jwks: dict[str, Any] | None = None
    mtls: bool = False  # [choice] off for quick starts, on for validation sessions
    vendor_token_url: str | None = None
    vendor_notification_base: str | None = None  # the vendor's [base] of [base]/Task
    vendor_fhir_base: str | None = None
    vendor_jwks_url: str | None = None
    # The aud of the simulator's assertions at the vendor's token endpoint when that knows itself by another URL
    # than the one the simulator calls (`speeltuin run` reaches it through the proxy's back listener)
    vendor_token_audience: str | None = None
    faults: tuple[str, ...] = ()  # the reference vendor's fault switches for this session (simulator/faults.py)
    provoke: tuple[str, ...] = ()  # what the simulator does to the vendor on purpose (simulator/provocations.py)
    chain: ChainConfig | None = None  # a chain session between two vendor systems: the simulator plays no part

    @property
    def vendor_token_aud(self) -> str | None:
        """The aud the simulator's assertions name at the vendor's token endpoint."""
        return self.vendor_token_audience or self.vendor_token_url

    def to_dict(self) -> dict[str, Any]:
        """The stored and shown form: the URLs, fault switches and provocations only when they are set."""
        data: dict[str, Any] = {"vendor_ura": self.vendor_ura, "vendor_jwks": self.vendor_jwks,
                                "vendor_client_id": self.vendor_client_id, "own_ura": self.own_ura,
                                "own_client_id": self.own_client_id, "mtls": self.mtls}
        data.update({key: getattr(self, key) for key in SESSION_URL_FIELDS if getattr(self, key) is not None})
        if self.faults:
            data["faults"] = list(self.faults)
        if self.provoke:
            data["provoke"] = list(self.provoke)
        if self.chain:
            data["chain"] = self.chain.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SessionConfig":
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("faults", "provoke"):
            if key in values:
                values[key] = tuple(values[key])
        if isinstance(values.get("chain"), dict):
            chain_fields = {f.name for f in fields(ChainConfig)}
            values["chain"] = ChainConfig(**{k: v for k, v in values["chain"].items() if k in chain_fields})
        return cls(**values)


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    vendor_role: Role  # the role the vendor plays
    config: SessionConfig
    created_at: float

    @property
    def simulator_role(self) -> Role:
        return self.vendor_role.other

    @property
    def is_chain(self) -> bool:
        """Two vendor systems exchange through the proxy; the simulator serves and sends nothing here."""
        return self.config.chain is not None

    @property
    def not_simulated(self) -> str:
        """Why the simulator refuses to serve or act in a chain session."""
        return (f"session {self.id} is a chain session between two vendor systems: the simulator takes no part in "
                f"it (its exchanges pass through `speeltuin chain`)")


@dataclass
class Notification:
    id: str
    session_id: str
    origin: NotificationOrigin
    identifier: str  # Task.identifier value
    group_identifier: str
    authorization_base: str
    patient_bsn: str
    owner_ura: str
    period_end: float
    status: str  # the Task status: requested | cancelled
    task: dict[str, Any]
    workflow_task: dict[str, Any] | None = None
    delivery: dict[str, Any] | None = None  # what the counterpart answered to our POST (sent ones)
    pull_status: PullStatus | None = None  # received ones: how our pull went
    pull_summary: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The admin API's form; `direction` is its name there for the origin."""
        return {("direction" if f.name == "origin" else f.name): getattr(self, f.name) for f in fields(self)}


@dataclass
class Exchange:
    source: str  # proxy | simulator
    tag: Tag
    direction: FlowDirection
    method: str
    url: str
    status: int | None
    request_headers: dict[str, str]
    request_body: str
    response_headers: dict[str, str]
    response_body: str
    started_at: float
    duration_ms: float | None = None
    error: str | None = None
    session_id: str | None = None
    id: int | None = None
    findings: list[Finding] = field(default_factory=list)
    # A pull made with a token of a notification the simulator sent: that notification (the proxy knows it when it
    # judges the pull; the recorded Authorization header keeps only the token's first characters)
    notification_id: str | None = None
