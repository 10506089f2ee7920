"""The mitmproxy addon: records every flow, and has it judged by the validators, off the flow's path.

Run it with the real mitmdump (see proxy/launcher.py):
    mitmdump -s proxy/addon.py --set speeltuin_db=sqlite:///... --set speeltuin_public_url=http://...

The hooks do little: `request` takes the simulator's session mark off its own outbound calls, `response` and `error`
take a snapshot of the flow (proxy.judge.CapturedFlow) and hand it to the writer process (proxy/writer.py), which
classifies, validates, redacts and stores it. So the vendor's round trip does not wait for validation or the
database. `GET PROXY_FLUSH_PATH` on any listener answers once every flow answered before it is recorded (scenarios ask
it before they read the evidence); it is answered by the proxy itself, never forwarded, never recorded.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding
from mitmproxy import ctx, exceptions, http

# mitmdump loads this file as a script; the project's packages come from the environment it is installed in.
from proxy.classify import classify
from proxy.inspection import request_errors
from proxy.judge import CapturedFlow, decoded
from proxy.writer import Writer
from speeltuin import error_bodies
from speeltuin.records import CLIENT_CERT_HEADER, CLIENT_CERT_PROBLEM_HEADER, PROXY_FLUSH_PATH, SESSION_HEADER
from speeltuin.store import Store
from validators.rules.certificates import check_chain, load_certificates_pem

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
INTERNAL = "speeltuin_internal"  # flow.metadata key: answered by the proxy itself, not recorded


class Recorder:
    def __init__(self) -> None:
        self.writer: Writer | None = None
        self.client_ca: list = []  # the test CA: vendors' client certificates are checked against it
        self._client_certs: dict[str, tuple[str, str]] = {}  # connection id -> the header passed on for it

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("speeltuin_db", str, "", "SQLAlchemy URL of the speeltuin store")
        loader.add_option("speeltuin_public_url", str, "",
                          "base URL at which vendors reach the simulator through this proxy")
        loader.add_option("speeltuin_block_on_error", bool, False,
                          "answer a token request, notification or cancellation with errors in itself with an OAuth "
                          "error or an OperationOutcome instead of forwarding it")
        loader.add_option("speeltuin_simulator", str, "",
                          "URL where the simulator listens: its web UI and JSON API are passed on, not recorded")
        loader.add_option("speeltuin_trusted_ca", str, "",
                          "PEM of the test CA: assertions may carry an x5c chain to it (as the simulator's --trusted-ca)")
        loader.add_option("speeltuin_client_ca", str, "",
                          "PEM of the test CA: a client certificate is checked against it and passed on to the "
                          "simulator (with request_client_cert=true)")

    def configure(self, updated: set[str]) -> None:
        if "speeltuin_client_ca" in updated:
            self.client_ca = _read_ca(ctx.options.speeltuin_client_ca, "speeltuin_client_ca") \
                if ctx.options.speeltuin_client_ca else []
        if not {"speeltuin_db", "speeltuin_public_url", "speeltuin_trusted_ca"} & updated or not ctx.options.speeltuin_db:
            return
        trusted = _read_ca(ctx.options.speeltuin_trusted_ca, "speeltuin_trusted_ca") \
            if ctx.options.speeltuin_trusted_ca else []
        url = ctx.options.speeltuin_db
        try:  # fail at the start, with a clear message, rather than in the writer at the first flow
            Store(url).close()
        except Exception as exc:
            raise exceptions.OptionsError(store_problem(url, exc)) from None
        self._stop_writer()
        pem = b"".join(cert.public_bytes(Encoding.PEM) for cert in trusted) or None
        self.writer = Writer(url, ctx.options.speeltuin_public_url, pem)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.split("?", 1)[0] == PROXY_FLUSH_PATH:
            await self._answer_flush(flow)
            return
        if _to_simulator_ui(flow, ctx.options.speeltuin_simulator):
            flow.metadata[INTERNAL] = True  # people and programs using the UI and API: not the exchange under test
            return
        # The simulator marks its own outbound calls; the vendor never needs to see the mark.
        marked = flow.request.headers.pop(SESSION_HEADER, None)
        if marked:
            flow.metadata["speeltuin_session"] = marked
        # Only the proxy says which client certificate it saw: whatever a caller wrote there itself goes.
        for name in (CLIENT_CERT_HEADER, CLIENT_CERT_PROBLEM_HEADER):
            flow.request.headers.pop(name, None)
        if self.client_ca and flow.client_conn.certificate_list:
            name, value = self._client_certificate(flow)
            flow.request.headers[name] = value
        if ctx.options.speeltuin_block_on_error:
            block_if_invalid(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._hand_over(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._hand_over(flow)

    def done(self) -> None:
        self._stop_writer()

    def client_disconnected(self, client) -> None:  # type: ignore[no-untyped-def]
        self._client_certs.pop(client.id, None)

    def _client_certificate(self, flow: http.HTTPFlow) -> tuple[str, str]:
        """The header that tells the simulator about the client's certificate: the leaf (base64 DER) when it
        chains to the test CA, else why not. Checked once per connection."""
        connection = flow.client_conn
        if connection.id not in self._client_certs:
            self._client_certs[connection.id] = client_certificate_header(
                [cert.to_pem() for cert in connection.certificate_list], self.client_ca)
        return self._client_certs[connection.id]

    def _hand_over(self, flow: http.HTTPFlow) -> None:
        if self.writer is None or flow.metadata.get(INTERNAL):
            return
        try:
            self.writer.submit(capture(flow))
        except Exception:  # recording must never break the traffic it watches
            log.exception("could not record %s %s", flow.request.method, flow.request.pretty_url)

    async def _answer_flush(self, flow: http.HTTPFlow) -> None:
        flow.metadata[INTERNAL] = True
        writer, deadline = self.writer, time.monotonic() + FLUSH_TIMEOUT_S
        target = writer.submitted if writer else 0
        while writer is not None and not writer.has_written(target) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        done = writer is None or writer.has_written(target)
        flow.response = http.Response.make(200 if done else 503, json.dumps(
            {"flushed": done, "recorded": writer.written.value if writer else 0}), {"Content-Type": "application/json"})

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def block_if_invalid(flow: http.HTTPFlow) -> None:
    """Answer the request in the proxy's stead when it carries errors in itself (proxy.inspection.request_errors):
    its sender gets the error a careful server would give, and the message is recorded (with its findings) but never
    forwarded."""
    request = flow.request
    tag = classify(request.method, request.path)
    try:
        headers = dict(request.headers)
        errors = request_errors(tag, request.method, called_url(flow), headers,
                                decoded(request.raw_content or b"", headers))
    except Exception:  # noqa: BLE001 - a failing check never stops the traffic; the writer records the failure
        log.exception("could not judge %s %s before forwarding it", request.method, request.pretty_url)
        return
    if not errors:
        return
    said = f"the validating proxy did not forward this message: {'; '.join(f'{f.rule} {f.message}' for f in errors)}"
    if tag == "token-request":
        flow.response = http.Response.make(400, json.dumps(error_bodies.oauth_error("invalid_request", said)),
                                           {"Content-Type": "application/json", **error_bodies.OAUTH_HEADERS})
    else:
        flow.response = http.Response.make(400, json.dumps(error_bodies.operation_outcome(400, said, errors)),
                                           {"Content-Type": "application/fhir+json"})


def client_certificate_header(chain_pem: list[bytes], trusted: list) -> tuple[str, str]:
    """(CLIENT_CERT_HEADER, base64 DER of the leaf) for a chain that reaches the trusted CA and is valid now;
    (CLIENT_CERT_PROBLEM_HEADER, why) otherwise."""
    import base64
    from datetime import datetime, timezone

    chain = [cert for pem in chain_pem for cert in load_certificates_pem(pem)]
    result = check_chain(chain, trusted, datetime.now(timezone.utc))
    if not result.ok or result.leaf is None:
        reason = result.malformed or result.untrusted or result.expired or "no certificate"
        shown = reason.replace("x5c[", "certificate[")[:500]
        return CLIENT_CERT_PROBLEM_HEADER, shown.encode("ascii", "replace").decode()  # a header value is ASCII
    return CLIENT_CERT_HEADER, base64.b64encode(result.leaf.public_bytes(Encoding.DER)).decode("ascii")


def _read_ca(path: str, option: str) -> list:
    try:
        found = load_certificates_pem(open(path, "rb").read())
    except OSError as exc:
        raise exceptions.OptionsError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    if not found:
        raise exceptions.OptionsError(f"{option}: {path} holds no PEM certificate")
    return found


def _to_simulator_ui(flow: http.HTTPFlow, simulator: str) -> bool:
    """A request for the simulator's web UI or JSON API (its pages carry the UI's cookie)."""
    if not simulator:
        return False
    path = flow.request.path
    if not (path == "/ui" or path.startswith(("/ui/", "/ui?", "/api/"))):
        return False
    upstream = urlsplit(simulator)
    return (flow.request.host, flow.request.port) == (upstream.hostname, upstream.port or 80)


def store_problem(url: str, exc: Exception) -> str:
    """Why the store cannot be opened, in one line without the URL's password."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"speeltuin_db: cannot open the store at {shown_url(url)}: {type(exc).__name__}: {reason}"


def shown_url(url: str) -> str:
    """A database URL fit for a message: without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: it is shown as given
        return repr(url)


def capture(flow: http.HTTPFlow) -> CapturedFlow:
    """The snapshot of a flow the writer judges (bodies as received: the writer decodes them)."""
    request, response = flow.request, flow.response
    return CapturedFlow(
        method=request.method, url=called_url(flow), path=request.path, request_headers=dict(request.headers),
        request_body=request.raw_content or b"", status=response.status_code if response else None,
        response_headers=dict(response.headers) if response else {},
        response_body=(response.raw_content or b"") if response else b"", started_at=request.timestamp_start,
        ended_at=response.timestamp_end if response and response.timestamp_end else None,
        error=str(flow.error) if flow.error else None, marked_session=flow.metadata.get("speeltuin_session"),
        listen_port=listen_port(flow), forwarded=is_forwarded(flow),
        upstream=f"{request.scheme}://{request.host}:{request.port}")


def is_forwarded(flow: http.HTTPFlow) -> bool:
    """Came through a forward (regular) listener: the caller named the target itself."""
    mode = getattr(flow.client_conn, "proxy_mode", None)
    return getattr(mode, "type_name", "") == "regular"


def listen_port(flow: http.HTTPFlow) -> int | None:
    sockname = getattr(flow.client_conn, "sockname", None)
    return sockname[1] if sockname else None


def called_url(flow: http.HTTPFlow) -> str:
    """The URL as the caller used it: the proxy's listener in reverse mode (not the upstream it was forwarded to),
    the target itself through a forward listener."""
    sockname = getattr(flow.client_conn, "sockname", None)
    if not sockname or is_forwarded(flow):
        return flow.request.pretty_url
    host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
    scheme = "https" if flow.client_conn.tls_established else "http"
    return f"{scheme}://{host}:{sockname[1]}{flow.request.path}"


addons = [Recorder()]
