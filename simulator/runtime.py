"""What every endpoint needs, built once per app: configuration, store, signing key, patients' data.

A leaf: endpoints import `runtime()` from here; the factory (app.py) builds the Runtime and wires them.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request

from simulator.fhir.patient_data import PatientData
from simulator.outbound.client import Transport
from speeltuin import defaults
from speeltuin.jwks_cache import JwksCache
from speeltuin.keys import Signer
from speeltuin.records import Session, TlsFiles
from speeltuin.store import Store

EXTENSION = "speeltuin"  # the key of the Runtime in app.extensions


@dataclass
class SimulatorConfig:
    database_url: str
    public_url: str | None = None  # base URL counterparties use (the proxy's); None: as requested
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ura: str = defaults.OWN_URA  # this node's care organisation
    client_id: str = defaults.OWN_CLIENT_ID
    name: str = defaults.SIMULATOR_NAME
    auto_pull: bool = True  # as receiver, pull as soon as a valid notification arrives
    http_timeout_s: float = 15.0
    token_lifetime_s: int = 300
    trusted_ca_pem: bytes | None = None  # the test CA: assertions may carry an x5c chain to it (SPEC §5.1)
    tls: TlsFiles | None = None  # serve HTTPS; sessions may then require mutual TLS
    faults: frozenset[str] = frozenset()  # misbehave on purpose (simulator.faults.FAULTS): the reference vendor
    outbound_proxy: str | None = None  # the validating proxy the calls to vendors go through (the service)
    outbound_proxy_ca: str | None = None  # its CA: with it, calls to https:// vendors go through the proxy too
    vendor_ca: str | None = None  # what vendors' server certificates must chain to (default: the --tls-ca)
    # TLS ends at the validating proxy in front (the service): believe the client certificate it passes on
    # (records.CLIENT_CERT_HEADER). Only for a simulator that nobody but that proxy can reach.
    client_cert_from_proxy: bool = False

    @property
    def transport(self) -> Transport:
        return Transport(self.tls, self.outbound_proxy, self.outbound_proxy_ca, self.vendor_ca)

    def has_fault(self, name: str) -> bool:
        return name in self.faults


class FirstTimes:
    """Keys met before, kept in the store so that every worker process and every simulator on it agree:
    `first(key)` is True for the first call with a key and False ever after."""

    def __init__(self, store: Store, kind: str) -> None:
        self._store = store
        self._kind = kind

    def first(self, key: str) -> bool:
        return self._store.mark_once(f"{self._kind}:{key}")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._store.marked(f"{self._kind}:{key}")


@dataclass
class Runtime:
    """Everything a request handler needs, built once per app (no module-level state)."""

    config: SimulatorConfig
    store: Store
    signer: Signer
    patients: PatientData
    vendor_keys: JwksCache = field(default_factory=JwksCache)
    background: list[Any] = field(default_factory=list)
    # The notifications whose first FHIR request was answered 503 (provocation unavailable-once)
    made_unavailable: FirstTimes = field(init=False)

    def __post_init__(self) -> None:
        self.made_unavailable = FirstTimes(self.store, "unavailable-once")

    def faults_for(self, session: Session | None) -> frozenset[str]:
        """The fault switches in force for a session: the node's (`serve --fault`) and the session's own."""
        return self.config.faults | frozenset(session.config.faults if session is not None else ())

    def has_fault(self, session: Session | None, name: str) -> bool:
        return name in self.faults_for(session)

    def public_base(self) -> str:
        return (self.config.public_url or request.host_url).rstrip("/")


def runtime() -> Runtime:
    """The Runtime of the app handling the current request."""
    return current_app.extensions[EXTENSION]
