"""The Flask app factory: one simulator node that plays the sending or receiving GtK per session."""
from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, InternalServerError

from simulator.endpoints.admin_api import admin_api
from simulator.endpoints.auth_server import auth_server
from simulator.endpoints.bearer import pull_access
from simulator.endpoints.evidence_api import evidence_api
from simulator.endpoints.fhir_server import ResourceTypeConverter, fhir_server
from simulator.endpoints.http_errors import FhirError, oauth_error, operation_outcome, unsupported_format
from simulator.endpoints.notification_endpoint import notification_endpoint
from simulator.faults import check_faults
from simulator.fhir.format import UnsupportedFormat
from simulator.fhir.patient_data import PatientData
from simulator.http_server import endpoint_format
from simulator.mtls import client_certificate_problem
from simulator.outbound.puller import recover_interrupted_pulls
from simulator.runtime import EXTENSION, Runtime, SimulatorConfig, runtime
from simulator.web import TEMPLATE_DIR, error_page, init_web
from speeltuin.jwks_cache import JwksCache
from speeltuin.keys import Signer
from speeltuin.records import Session
from speeltuin.store import Store
from validators import safe_json

MAX_REQUEST_BYTES = 2 * 1024 * 1024


class SafeJSONProvider(DefaultJSONProvider):
    """request.get_json reads with validators.safe_json: too deep a body is malformed JSON (400), never a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return safe_json.loads(s)
_VENDOR_FACING = {"auth_server", "fhir_server", "notification_endpoint"}  # what mTLS sessions protect


def _session_of_request(session_id: str) -> Session | None:
    """The session a vendor-facing request names. A FHIR request's bearer token is read now with its session in one
    statement (bearer.pull_access), and kept for the handler: a search then costs one statement, not two."""
    rt = runtime()
    if request.blueprint == fhir_server.name:
        access = pull_access(rt)
        g.speeltuin_pull_access = access
        if access is not None and access.session.id == session_id:
            return access.session
    return rt.store.get_session(session_id)


def create_app(config: SimulatorConfig) -> Flask:
    """Build the runtime, register the endpoints, and answer every error in the caller's format."""
    config.faults = check_faults(config.faults)  # UnknownFault (a ValueError) for a name not in FAULTS
    # templates/ is the package's, never the working directory's; static files only under /ui/static (web UI)
    app = Flask("speeltuin.simulator", template_folder=str(TEMPLATE_DIR), static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json = SafeJSONProvider(app)
    app.url_map.converters["fhirtype"] = ResourceTypeConverter
    store = Store(config.database_url)
    # a vendor's JWKS URL is fetched with the trust its other servers get (the test CA)
    vendor_keys = JwksCache(verify=config.transport.fetch_trust or True)
    app.extensions[EXTENSION] = Runtime(config, store, Signer.load_or_create(store), PatientData(store),
                                        vendor_keys=vendor_keys)
    for notification_id in recover_interrupted_pulls(store):  # a predecessor killed while it pulled
        app.logger.warning("pull of notification %s was interrupted when the simulator stopped: marked failed",
                           notification_id)
    for blueprint in (admin_api, evidence_api, auth_server, fhir_server, notification_endpoint):
        app.register_blueprint(blueprint)
    # The web UI under /ui/ (its cookie, and CSRF for its forms only: the APIs and vendor endpoints take none)
    init_web(app, store, https=config.tls is not None or (config.public_url or "").startswith("https://"))

    @app.before_request
    def require_client_certificate() -> Any:
        # Every session endpoint (token, FHIR, notification) of an mTLS session needs the vendor's certificate.
        session_id = (request.view_args or {}).get("session_id")
        if not session_id or request.blueprint not in _VENDOR_FACING:  # admin API and public keys: no
            return None
        session = _session_of_request(session_id)
        if session is not None and session.is_chain:  # not ours to serve: the two vendor systems talk directly
            return oauth_error("invalid_client", session.not_simulated) if request.path.endswith("/token") \
                else operation_outcome(404, session.not_simulated)
        problem = client_certificate_problem(session, from_proxy=runtime().config.client_cert_from_proxy) \
            if session else None
        if problem is None:
            return None
        if request.path.endswith("/token"):
            return oauth_error("invalid_client", problem)
        return operation_outcome(403, problem)

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"name": config.name, "ura": config.ura, "client_id": config.client_id,
                "jwks_url": f"{runtime().public_base()}/jwks", "faults": sorted(config.faults)}

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
        # Client mistakes get the error format of the endpoint they called: a page only in the web UI (/ui).
        message = exc.description or exc.name
        kind = endpoint_format(request.path)
        if kind == "page":  # the web UI answers with a page
            return error_page(exc)
        if kind == "api":
            return {"error": message}, exc.code
        if kind == "oauth":
            return oauth_error("invalid_request", message, status=exc.code)
        return operation_outcome(exc.code or 400, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        said = f"internal error: {type(exc).__name__}"
        kind = endpoint_format(request.path)
        if kind == "page":
            return error_page(InternalServerError())
        if kind == "api":
            return {"error": said}, 500
        if kind == "oauth":  # RFC 6749 §5.2 has a code for it
            return oauth_error("server_error", said, status=500)
        return operation_outcome(500, said)

    return app
