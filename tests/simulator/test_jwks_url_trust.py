"""A vendor's keys at an https:// JWKS URL are fetched with the trust the simulator has for vendors (the test CA),
and when they cannot be fetched the token endpoint says why, naming the URL. The JWKS is served by a real HTTPS
server on loopback with certificates from the test PKI."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from simulator.app import create_app
from simulator.mtls import server_context
from simulator.runtime import SimulatorConfig
from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer
from speeltuin.records import TlsFiles
from testdata.pki import init_ca, issue

ADMIN = {"X-Admin-Key": "jwks-trust-admin-key-0123456789"}
VENDOR_URA, VENDOR_CLIENT = "12345678", "acme"
PUBLIC = "http://sim.test"


def vendor_signer() -> Signer:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return Signer("acme-key-1", pem)


class JwksServer:
    """The vendor's JWKS over HTTPS with a certificate of `tls`."""

    def __init__(self, jwks: dict[str, Any], tls: TlsFiles) -> None:
        @Request.application
        def app(request: Request) -> Response:
            return Response(json.dumps(jwks), content_type="application/json")

        self.server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=server_context(tls))
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.server.port}/jwks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("jwks-trust")
    ca = init_ca(work / "pki")
    other_ca = init_ca(work / "other", name="another CA")
    ours, theirs = issue(work / "pki", name="acme", ura=VENDOR_URA), issue(work / "other", name="acme", ura=VENDOR_URA)
    signer = vendor_signer()
    trusted = JwksServer(signer.jwks(), TlsFiles(ours.cert_path, ours.key_path, ca))
    untrusted = JwksServer(signer.jwks(), TlsFiles(theirs.cert_path, theirs.key_path, other_ca))
    app = create_app(SimulatorConfig(database_url=sqlite_url(work / "sim.sqlite"), admin_key=ADMIN["X-Admin-Key"],
                                     public_url=PUBLIC, vendor_ca=str(ca)))
    client = app.test_client()
    for session_id, jwks_url in (("by-test-ca", trusted.url), ("by-other-ca", untrusted.url)):
        created = client.post("/api/sessions", headers=ADMIN, json={
            "id": session_id, "vendor_role": "sender", "vendor_ura": VENDOR_URA, "vendor_client_id": VENDOR_CLIENT,
            "vendor_jwks_url": jwks_url, "vendor_token_url": "http://127.0.0.1:9/token",
            "vendor_fhir_base": "http://127.0.0.1:9/fhir"})
        assert created.status_code == 201, created.text
    yield {"client": client, "signer": signer, "untrusted": untrusted.url}
    trusted.close()
    untrusted.close()


def token(world: dict[str, Any], session_id: str) -> Any:
    form = world["signer"].token_request_form(VENDOR_CLIENT, VENDOR_URA, f"{PUBLIC}/s/{session_id}/token")
    return world["client"].post(f"/s/{session_id}/token", data=form)


def test_keys_at_an_https_url_of_the_test_ca_verify_the_assertion(world: dict[str, Any]) -> None:
    answer = token(world, "by-test-ca")
    assert answer.status_code == 200, answer.text
    assert answer.json["access_token"]


def test_keys_behind_another_ca_are_not_fetched_and_the_refusal_says_why(world: dict[str, Any]) -> None:
    answer = token(world, "by-other-ca")
    assert answer.status_code == 401 and answer.json["error"] == "invalid_client", answer.text
    said = answer.json["error_description"]
    assert world["untrusted"] in said and "TLS failed" in said and "test CA" in said, said
