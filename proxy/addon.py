"""The mitmproxy addon: records every flow, and has it judged by the validators, off the flow's path.

Run it with the real mitmdump (see proxy/launcher.py):
    mitmdump -s proxy/addon.py --set speeltuin_db=sqlite:///... --set speeltuin_public_url=http://...

The hooks do little: `request` takes the simulator's session mark off its own outbound calls, `response` and `error`
take a snapshot of the flow (proxy.judge.CapturedFlow) and hand it to the writer process (proxy/writer.py), which
classifies, validates, redacts and stores it. So the vendor's round trip does not wait for validation or the
database. `GET PROXY_FLUSH_PATH` on any listener answers once every flow answered before it is recorded (scenarios ask
it before they read the evidence); it is answered by the proxy itself, never forwarded, never recorded.

With `speeltuin_vendor_ura` (the service, with a test CA) the simulator's calls to https:// vendors are held to what
`speeltuin serve` checks by itself (SPEC §5.1): the server certificate must chain to the test CA and carry the
session's vendor URA, checked inside the TLS handshake, before a request byte is written (VendorTrust).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from typing import NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from mitmproxy import ctx, exceptions, http
from mitmproxy.flow import Error
from mitmproxy.tls import TlsData
from OpenSSL import SSL, crypto

# mitmdump loads this file as a script; the project's packages come from the environment it is installed in.
from proxy.classify import classify
from proxy.inspection import request_errors
from proxy.judge import CapturedFlow, decoded
from proxy.writer import Writer
from speeltuin import error_bodies
from speeltuin.records import (
    CLIENT_CERT_HEADER,
    CLIENT_CERT_PROBLEM_HEADER,
    PROBE_HEADER,
    PROXY_FLUSH_PATH,
    PULL_HEADER,
    SESSION_HEADER,
)
from speeltuin.store import Store
from validators.rules.certificates import check_chain, load_certificates_pem, ura_mismatch

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
INTERNAL = "speeltuin_internal"  # flow.metadata key: answered by the proxy itself, not recorded


class Recorder:
    def __init__(self) -> None:
        self.writer: Writer | None = None
        self.client_ca: list = []  # the test CA: vendors' client certificates are checked against it
        self._client_certs: dict[str, tuple[str, str]] = {}  # connection id -> the header passed on for it
        self.store: Store | None = None  # the sessions: whose URA a vendor's server certificate must carry
        self.vendor_trust = VendorTrust()

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
        loader.add_option("speeltuin_vendor_ura", bool, False,
                          "the simulator's calls to https:// vendors: the server certificate must chain to "
                          "ssl_verify_upstream_trusted_ca and carry the session's vendor URA, else nothing is sent")

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
            store = Store(url)
        except Exception as exc:
            raise exceptions.OptionsError(store_problem(url, exc)) from None
        self._stop_writer()
        self.store = store
        pem = b"".join(cert.public_bytes(Encoding.PEM) for cert in trusted) or None
        self.writer = Writer(url, ctx.options.speeltuin_public_url, pem,
                             vendor_ca=ctx.options.ssl_verify_upstream_trusted_ca or None)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.split("?", 1)[0] == PROXY_FLUSH_PATH:
            await self._answer_flush(flow)
            return
        if _to_simulator_ui(flow, ctx.options.speeltuin_simulator):
            flow.metadata[INTERNAL] = True  # people and programs using the UI and API: not the exchange under test
            return
        # The simulator marks its own outbound calls; the vendor never needs to see the mark.
        marked = flow.request.headers.pop(SESSION_HEADER, None)
        pulled_for = flow.request.headers.pop(PULL_HEADER, None)
        probe = flow.request.headers.pop(PROBE_HEADER, None)
        if marked:
            flow.metadata["speeltuin_session"] = marked
            flow.metadata["speeltuin_pull"] = pulled_for
            flow.metadata["speeltuin_probe"] = probe
            if ctx.options.speeltuin_vendor_ura and flow.request.scheme == "https":
                await self._expect_vendor(flow, marked)
                if flow.response is not None:
                    return
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
        refused = self.vendor_trust.refusal(flow.client_conn.id)
        if refused and flow.error:  # the record says why in our words, not OpenSSL's
            flow.error = Error(f"not forwarded to the vendor: {refused}")
        self._hand_over(flow)

    def tls_start_server(self, data: TlsData) -> None:
        if ctx.options.speeltuin_vendor_ura and self.vendor_trust.expects(data.context.client.id):
            # Scripts run before mitmproxy's own TLS addon: have it make the OpenSSL connection now (it then leaves
            # it as it is), so the check is added to the connection that is used. Without it, no connection is made.
            tlsconfig = ctx.master.addons.get("tlsconfig")
            if tlsconfig is not None:
                tlsconfig.tls_start_server(data)
                self.vendor_trust.watch(data)

    def done(self) -> None:
        self._stop_writer()

    def client_disconnected(self, client) -> None:  # type: ignore[no-untyped-def]
        self._client_certs.pop(client.id, None)
        self.vendor_trust.forget(client.id)

    async def _expect_vendor(self, flow: http.HTTPFlow, session_id: str) -> None:
        """Tell VendorTrust whose certificate the connection for this flow must meet; answer 502 in the vendor's
        stead when that cannot be known."""
        store = self.store
        session = await asyncio.to_thread(store.get_session, session_id) if store else None
        ura = session.config.vendor_ura if session else ""
        problem = self.vendor_trust.expect(flow.client_conn.id, session_id, ura)
        if problem:
            refuse_upstream(flow, problem)

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
        if self.store is not None:
            self.store.close()
            self.store = None


class Expected(NamedTuple):  # not a dataclass: mitmdump loads this file as a script, outside sys.modules
    """Whose server certificate the upstream connections of one client connection must meet."""

    client_id: str
    session_id: str
    ura: str


class RefusedVendor(SSL.Error):
    """Raised in the verify callback: the handshake fails with this message, so mitmproxy answers the caller 502 with
    it (mitmproxy shows an unknown SSL.Error as `OpenSSL {error!r}`) and never writes the request."""

    def __repr__(self) -> str:
        return f"handshake stopped by the speeltuin proxy: {self.args[0]}"


class VendorTrust:
    """The URA check of the simulator's TLS connections to vendors, inside the handshake.

    The `request` hook names the session of a client connection (the simulator's mark) before mitmproxy opens the
    upstream connection for it (connection_strategy=lazy); `tls_start_server` ties that expectation to the new
    OpenSSL connection; OpenSSL's verify callback refuses a certificate that does not chain to the trusted CA or
    names another URA. A refused handshake sends nothing: not the token request, not the BSN, not the authorization
    base. The callback sits on mitmproxy's (shared, cached) client context and leaves connections it has no
    expectation for to OpenSSL's own verdict.
    """

    def __init__(self) -> None:
        self._expected: dict[str, Expected] = {}  # client connection id -> expectation
        self._by_tls: weakref.WeakKeyDictionary[SSL.Connection, tuple[Expected, str]] = weakref.WeakKeyDictionary()
        self._contexts: weakref.WeakSet[SSL.Context] = weakref.WeakSet()
        self._refused: dict[str, str] = {}  # client connection id -> why its upstream handshake was stopped

    def expect(self, client_id: str, session_id: str, ura: str) -> str | None:
        """Record the expectation; why the flow cannot be forwarded, if it cannot."""
        if not ura:
            return f"session {session_id} is unknown or names no vendor URA; nothing was sent"
        known = self._expected.get(client_id)
        if known is not None and known.ura != ura:  # its open upstream connection was checked for another vendor
            return (f"this connection was opened for session {known.session_id} (vendor URA {known.ura}), not for "
                    f"session {session_id} (vendor URA {ura}): use a new connection; nothing was sent")
        self._expected[client_id] = Expected(client_id, session_id, ura)
        return None

    def expects(self, client_id: str) -> bool:
        return client_id in self._expected

    def watch(self, data: TlsData) -> None:
        expected = self._expected.get(data.context.client.id)
        if expected is None or data.ssl_conn is None:
            return
        host = data.conn.sni or (data.conn.address[0] if data.conn.address else "the vendor")
        self._by_tls[data.ssl_conn] = (expected, str(host))
        context, mode = data.ssl_conn.get_context(), data.ssl_conn.get_context().get_verify_mode()
        if context not in self._contexts:
            context.set_verify(mode, self._verify)
            self._contexts.add(context)
        # OpenSSL copied the context's callback when this connection was made: it gets ours by hand. Ours as the
        # context's, because pyOpenSSL raises a callback's exception (our reason) only for the context's callback.
        SSL._lib.SSL_set_verify(data.ssl_conn._ssl, mode, context._verify_callback)  # type: ignore[attr-defined]

    def refusal(self, client_id: str) -> str | None:
        return self._refused.pop(client_id, None)

    def forget(self, client_id: str) -> None:
        self._expected.pop(client_id, None)
        self._refused.pop(client_id, None)

    def _verify(self, connection: SSL.Connection, cert: crypto.X509, error: int, depth: int, ok: int) -> bool:
        found = self._by_tls.get(connection)
        if found is None:
            return bool(ok)
        expected, host = found
        if not ok:
            problem = (f"the server certificate of {host} is not trusted ({_verify_error(error)}); vendors are "
                       "checked against the test CA")
        elif depth == 0:
            problem = server_certificate_problem(cert.to_cryptography(), expected, host)
        else:
            return True
        if problem is None:
            return True
        self._refused[expected.client_id] = f"{problem}; nothing was sent to it"
        raise RefusedVendor(self._refused[expected.client_id])


def server_certificate_problem(cert: x509.Certificate, expected: Expected, host: str) -> str | None:
    """Why a vendor's server certificate is not the session's vendor's (SPEC §5.1), in words without quotes (the
    message ends up in an HTML error page); None when it is."""
    mismatch = ura_mismatch(cert, expected.ura)
    if mismatch is None:
        return None
    return (f"the server certificate of {host} {mismatch}, but session {expected.session_id} expects the vendor URA "
            f"{expected.ura}")


def refuse_upstream(flow: http.HTTPFlow, problem: str) -> None:
    """Answer 502 in the vendor's stead, with why; the flow is recorded (with its answer), never forwarded."""
    said = f"the validating proxy did not forward this request: {problem}"
    flow.response = http.Response.make(502, json.dumps(error_bodies.operation_outcome(502, said)),
                                       {"Content-Type": "application/fhir+json"})


def _verify_error(code: int) -> str:
    """OpenSSL's words for a verification error code (as mitmproxy reports them)."""
    try:
        return SSL._ffi.string(SSL._lib.X509_verify_cert_error_string(code)).decode()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the code alone still says which
        return f"OpenSSL verify error {code}"


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
        marked_pull=flow.metadata.get("speeltuin_pull"), marked_probe=flow.metadata.get("speeltuin_probe"),
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
