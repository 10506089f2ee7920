"""A session's vendor as a vendor.toml (the web UI's download): read back by the test manager's own reader."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios.vendor_config import VendorConfigError, load_vendor_config
from speeltuin.records import Role, Session, SessionConfig
from speeltuin.vendor_config import vendor_toml


def _session(role: Role, **config: object) -> Session:
    return Session("s-1", 'Çelik "quoted" \\ GtK', role, SessionConfig(
        vendor_ura="12345678", vendor_client_id="acme", own_ura="90000101", own_client_id="sim", **config), 0.0)


def test_a_sender_with_a_jwks_url_reads_back_as_it_was(tmp_path: Path) -> None:
    session = _session(Role.SENDER, mtls=True, vendor_jwks_url="https://acme.test/jwks",
                       vendor_token_url="https://acme.test/token", vendor_fhir_base="https://acme.test/fhir")
    (tmp_path / "vendor.toml").write_text(vendor_toml(session, jwks_file=None))
    config = load_vendor_config(tmp_path / "vendor.toml")
    assert (config.name, config.roles, config.ura, config.client_id, config.mtls) == (
        session.name, ("sender",), "12345678", "acme", True)
    assert (config.jwks_url, config.token_url, config.fhir_base) == (
        "https://acme.test/jwks", "https://acme.test/token", "https://acme.test/fhir")


def test_a_registered_jwks_is_named_as_a_file_beside_it(tmp_path: Path) -> None:
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1"}]}
    session = _session(Role.RECEIVER, vendor_jwks=jwks, vendor_token_url="https://acme.test/token",
                       vendor_notification_base="https://acme.test/notify")
    (tmp_path / "vendor.toml").write_text(vendor_toml(session, jwks_file="s-1-jwks.json"))
    with pytest.raises(VendorConfigError, match="s-1-jwks.json"):
        load_vendor_config(tmp_path / "vendor.toml")  # the JWKS is a second download
    (tmp_path / "s-1-jwks.json").write_text(json.dumps(jwks))
    config = load_vendor_config(tmp_path / "vendor.toml")
    assert config.jwks == jwks and config.notification_base == "https://acme.test/notify"


def test_an_endpoint_the_role_needs_but_the_session_lacks_is_left_for_the_vendor(tmp_path: Path) -> None:
    text = vendor_toml(_session(Role.RECEIVER, vendor_jwks_url="https://acme.test/jwks"), jwks_file=None)
    assert '# notification_base = "https://..."  # needed when the system is the receiver' in text
    (tmp_path / "vendor.toml").write_text(text)
    with pytest.raises(VendorConfigError, match="endpoints.token_url: missing"):
        load_vendor_config(tmp_path / "vendor.toml")
