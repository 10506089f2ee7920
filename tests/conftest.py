"""Shared fixtures: real Flask apps on loopback ports, and the whole stack with a real mitmdump."""
from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Coroutine, Iterator

import pytest
import requests

from simulator.app import create_app
from simulator.http_server import simulator_server
from simulator.mtls import server_context
from simulator.runtime import SimulatorConfig
from speeltuin import defaults
from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer
from speeltuin.records import TlsFiles
from testdata.pki import init_ca, issue
from tests.db import postgres_database


NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, a call there fails at once


@functools.cache
def _placeholder_signer() -> Signer:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return Signer("placeholder-vendor", pem)


def placeholder_jwks() -> dict[str, Any]:
    """The public key of a key pair made for the test run and thrown away: for a session whose vendor never signs."""
    return _placeholder_signer().jwks()


def complete_session(vendor_role: str, **fields: Any) -> dict[str, Any]:
    """A session request with what a vendor in `vendor_role` needs (simulator/sessions.py refuses a session without
    it): its keys (a placeholder JWKS, unless `fields` give vendor_jwks_url) and the endpoints of its role, at
    NOWHERE. `fields` add to it or replace any of it (id, name, vendor_ura, the vendor's real keys or URLs, ...)."""
    request: dict[str, Any] = {"vendor_role": vendor_role, "vendor_token_url": f"{NOWHERE}/token"}
    if "vendor_jwks_url" not in fields:
        request["vendor_jwks"] = placeholder_jwks()
    if vendor_role == "receiver":
        request["vendor_notification_base"] = f"{NOWHERE}/notify"
    else:
        request["vendor_fhir_base"] = f"{NOWHERE}/fhir"
    return request | fields


def complete_session_options(vendor_role: str, *, keys: bool = True) -> list[str]:
    """The same for `speeltuin session create`: --vendor-role, the vendor's JWKS URL (not with `keys` False: the test
    gives --vendor-jwks or --vendor-cert itself) and the endpoints of its role, at NOWHERE; no file written."""
    endpoint = ["--vendor-notification-url", f"{NOWHERE}/notify"] if vendor_role == "receiver" else \
        ["--vendor-fhir-base", f"{NOWHERE}/fhir"]
    return ["--vendor-role", vendor_role, *(["--vendor-jwks-url", f"{NOWHERE}/jwks"] if keys else []),
            "--vendor-token-url", f"{NOWHERE}/token", *endpoint]


@pytest.fixture(autouse=True, scope="session")
def _own_instance_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test (nor a command it starts) touches the user's instance folder."""
    previous = os.environ.get(defaults.INSTANCE_ENV)
    os.environ[defaults.INSTANCE_ENV] = str(tmp_path_factory.mktemp("instance"))
    yield
    if previous is None:
        del os.environ[defaults.INSTANCE_ENV]
    else:
        os.environ[defaults.INSTANCE_ENV] = previous


@dataclass
class LiveNode:
    url: str
    config: SimulatorConfig
    app: object
    verify: str | bool = True  # the CA file when the node serves HTTPS

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, f"{self.url}/api{path}", headers={"X-Admin-Key": self.config.admin_key},
                                timeout=30, verify=self.verify, **kwargs)  # type: ignore[arg-type]

    @property
    def runtime(self):  # type: ignore[no-untyped-def]
        return self.app.extensions["speeltuin"]  # type: ignore[attr-defined]

    @property
    def ura(self) -> str:
        return self.config.ura

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def public_url(self) -> str:
        return self.url

    def jwks(self) -> dict:
        return self.runtime.signer.jwks()


def start_live_node(database_url: str, *, ura: str, client_id: str, name: str,
                    tls: TlsFiles | None = None) -> tuple[LiveNode, object]:
    config = SimulatorConfig(database_url=database_url, ura=ura, client_id=client_id, name=name, tls=tls)
    app = create_app(config)
    server = simulator_server("127.0.0.1", 0, app, ssl_context=server_context(tls) if tls else None)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"
    config.public_url = url
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return LiveNode(url, config, app, str(tls.ca) if tls else True), server


def _pair(sim_db: str, ven_db: str, sim_tls: TlsFiles | None = None,
          ven_tls: TlsFiles | None = None) -> Iterator[tuple[LiveNode, LiveNode]]:
    sim, sim_server = start_live_node(sim_db, ura="90000101", client_id="sim", name="sim", tls=sim_tls)
    ven, ven_server = start_live_node(ven_db, ura="90000202", client_id="ven", name="ven", tls=ven_tls)
    yield sim, ven
    for node, server in ((sim, sim_server), (ven, ven_server)):
        stop_live_node(node, server)


def stop_live_node(node: LiveNode, server: object) -> None:
    """Stop what start_live_node started: its server, its background work (pulls), its store."""
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]
    for thread in node.runtime.background:
        thread.join(timeout=10)
    node.runtime.store.close()


@pytest.fixture
def node_pair(tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    """Two real simulator apps on loopback: 'simulator' and a reference 'vendor', each with a SQLite file."""
    yield from _pair(sqlite_url(tmp_path / "sim.sqlite"), sqlite_url(tmp_path / "ven.sqlite"))


@pytest.fixture
def tls_node_pair(tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    """The same pair serving HTTPS with certificates of the test PKI (sim URA 90000101, ven 90000202)."""
    ca = init_ca(tmp_path / "pki")
    files = {}
    for name, ura in (("sim", "90000101"), ("ven", "90000202"), ("other", "90000303")):
        issued = issue(tmp_path / "pki", name=name, ura=ura)
        files[name] = TlsFiles(issued.cert_path, issued.key_path, ca)
    yield from _pair(sqlite_url(tmp_path / "sim.sqlite"), sqlite_url(tmp_path / "ven.sqlite"), files["sim"],
                     files["ven"])


@pytest.fixture
def postgres_node_pair() -> Iterator[tuple[LiveNode, LiveNode]]:
    """The same pair, each node on its own fresh PostgreSQL database."""
    for sim_db in postgres_database():
        for ven_db in postgres_database():
            yield from _pair(sim_db, ven_db)


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end on a fresh event loop in a thread of its own: the test's thread may already run a
    loop (Playwright's sync API keeps one there once a browser test has run in this process)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
