"""The driver of a vendor.toml system: its session is named after the vendor, its endpoints pass the proxy, and its
endpoints must share one origin for the proxy to stand in front of them."""
from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.drivers import ConfiguredVendor, vendor_origin
from scenarios.vendor_config import VendorConfigError, load_vendor_config

TOML = '''\
name = "Acme GtK (test) 2"
roles = ["sender", "receiver"]
ura = "12345678"

[keys]
jwks_url = "https://keys.acme.test/jwks.json"

[endpoints]
token_url = "https://gtk.acme.test:8443/oauth/token"
fhir_base = "https://gtk.acme.test:8443/fhir"
notification_base = "https://gtk.acme.test:8443/twiin"
'''


def _driver(tmp_path: Path, text: str = TOML) -> ConfiguredVendor:
    path = tmp_path / "vendor.toml"
    path.write_text(text)
    return ConfiguredVendor(load_vendor_config(path), "http://127.0.0.1:8082")


def test_the_session_is_named_after_the_vendor_and_its_role(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    assert driver.session_id("receiver") == "acme-gtk-test-2-receiver"
    assert driver.label.startswith("Acme GtK (test) 2 (") and str(tmp_path) in driver.label


def test_the_simulator_reaches_the_vendor_through_the_proxy_but_fetches_its_jwks_directly(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    assert driver._through_proxy("https://gtk.acme.test:8443/fhir?x=1") == "http://127.0.0.1:8082/fhir?x=1"
    body = driver.config.session_request("sender", session_id="s-1", name="n")
    assert body["vendor_jwks_url"] == "https://keys.acme.test/jwks.json"
    assert vendor_origin(driver.config) == "https://gtk.acme.test:8443"


def test_endpoints_on_two_origins_cannot_stand_behind_one_proxy(tmp_path: Path) -> None:
    text = TOML.replace('fhir_base = "https://gtk.acme.test:8443/fhir"', 'fhir_base = "https://fhir.acme.test/r3"')
    config = _driver(tmp_path, text).config
    with pytest.raises(VendorConfigError, match="must share one origin.*https://fhir.acme.test, "
                                                "https://gtk.acme.test:8443"):
        vendor_origin(config)
