"""The Flask app factory: one simulator node that plays the sending or receiving GtK per session."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

from simulator.fhir_format import UnsupportedFormat
from simulator.http_errors import FhirError, oauth_error, operation_outcome, unsupported_format
from simulator.jwks_cache import JwksCache
from simulator.keys import Signer
from simulator.mtls import TlsFiles, client_certificate_problem
from simulator.patient_data import PatientData
from simulator.store import Store

MAX_REQUEST_BYTES = 2 * 1024 * 1024
_VENDOR_FACING = {"auth_server", "fhir_server", "notification_endpoint"}  # what mTLS sessions protect


@dataclass
class SimulatorConfig:
    database_url: str
    public_url: str | None = None  # base URL counterparties use (the proxy's); None: as requested
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ura: str = "90000101"  # this node's care organisation
    client_id: str = "speeltuin-simulator"
    name: str = "speeltuin simulator"
    auto_pull: bool = True  # as receiver, pull as soon as a valid notification arrives
    http_timeout_s: float = 15.0
    token_lifetime_s: int = 300
    trusted_ca_pem: bytes | None = None  # the test CA: assertions may carry an x5c chain to it (SPEC §5.1)
    tls: TlsFiles | None = None  # serve HTTPS; sessions may then require mutual TLS


@dataclass
class Runtime:
    """Everything a request handler needs, built once per app (no module-level state)."""

    config: SimulatorConfig
    store: Store
    signer: Signer
    patients: PatientData
    vendor_keys: JwksCache = field(default_factory=JwksCache)
    background: list[Any] = field(default_factory=list)

    def public_base(self) -> str:
        return (self.config.public_url or request.host_url).rstrip("/")


def runtime() -> Runtime:
    return current_app.extensions["speeltuin"]


def create_app(config: SimulatorConfig) -> Flask:
    from simulator.admin_api import admin_api
    from simulator.auth_server import auth_server
    from simulator.fhir_server import ResourceTypeConverter, fhir_server
    from simulator.notification_endpoint import notification_endpoint

    app = Flask("speeltuin.simulator")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.url_map.converters["fhirtype"] = ResourceTypeConverter
    store = Store(config.database_url)
    app.extensions["speeltuin"] = Runtime(config, store, Signer.load_or_create(store), PatientData(store))
    for blueprint in (admin_api, auth_server, fhir_server, notification_endpoint):
        app.register_blueprint(blueprint)

    @app.before_request
    def require_client_certificate() -> Any:
        # Every session endpoint (token, FHIR, notification) of an mTLS session needs the vendor's certificate.
        session_id = (request.view_args or {}).get("session_id")
        if not session_id or request.blueprint not in _VENDOR_FACING:  # admin API and public keys: no
            return None
        session = runtime().store.get_session(session_id)
        problem = client_certificate_problem(session) if session else None
        if problem is None:
            return None
        if request.path.endswith("/token"):
            return oauth_error("invalid_client", problem)
        return operation_outcome(403, problem)

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"name": config.name, "ura": config.ura, "client_id": config.client_id,
                "jwks_url": f"{runtime().public_base()}/jwks"}

    @app.get("/jwks")
    @app.get("/s/<session_id>/jwks")
    def jwks(session_id: str | None = None) -> Any:
        if session_id is not None and runtime().store.get_session(session_id) is None:
            return operation_outcome(404, f"no session {session_id!r}")
        return runtime().signer.jwks()

    app.register_error_handler(FhirError, lambda exc: exc.response())
    app.register_error_handler(UnsupportedFormat, unsupported_format)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        # Client mistakes get the error format of the endpoint they called, never an HTML page.
        message = exc.description or exc.name
        if request.path.startswith("/api/"):
            return {"error": message}, exc.code
        if request.path.endswith("/token"):
            return oauth_error("invalid_request", message, status=exc.code)
        return operation_outcome(exc.code or 400, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return operation_outcome(500, f"internal error: {type(exc).__name__}")

    return app
