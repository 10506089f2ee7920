"""Optional mutual TLS per session (SPEC §5.1): the vendor's client certificate must chain to the test CA
and carry the session's vendor URA; the simulator presents its own certificate when it calls the vendor.

The listener asks for a client certificate but does not demand one (CERT_OPTIONAL), so a session without
mTLS still works on the same port and a session with it gets a clear error instead of a failed handshake.
"""
from __future__ import annotations

import base64
import binascii
import ssl

from flask import request

from speeltuin.records import CLIENT_CERT_HEADER, CLIENT_CERT_PROBLEM_HEADER, Session, TlsFiles
from validators.rules.certificates import load_certificate, ura_mismatch


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key)
    context.load_verify_locations(files.ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_certificate_problem(session: Session, *, from_proxy: bool = False) -> str | None:
    """Why the current request may not use this mTLS session; None when it may (or mTLS is off).

    `from_proxy`: TLS ends at the validating proxy in front (`speeltuin service`), which checked the certificate's
    chain to the test CA and passes on the leaf, or why it refused it (records.CLIENT_CERT_HEADER)."""
    if not session.config.mtls:
        return None
    pem: str | bytes | None = request.environ.get("SSL_CLIENT_CERT")
    if not pem and from_proxy:
        refused = request.headers.get(CLIENT_CERT_PROBLEM_HEADER)
        if refused:
            return f"the client certificate does not chain to the test CA: {refused}"
        try:
            pem = base64.b64decode(request.headers.get(CLIENT_CERT_HEADER, ""), validate=True) or None
        except (binascii.Error, ValueError):
            pem = None
    if not pem:
        return "this session requires mutual TLS: present a client certificate issued by the test CA"
    cert = load_certificate(pem)
    mismatch = ura_mismatch(cert, session.config.vendor_ura) if cert is not None else "cannot be read"
    if mismatch:
        return f"the client certificate {mismatch}, not the session's vendor {session.config.vendor_ura}"
    return None
