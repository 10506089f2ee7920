"""Shared fixtures: real Flask apps on loopback ports, and the whole stack with a real mitmdump."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from simulator.app import SimulatorConfig, create_app
from simulator.store import sqlite_url


@dataclass
class LiveNode:
    url: str
    config: SimulatorConfig
    app: object

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, f"{self.url}/api{path}", headers={"X-Admin-Key": self.config.admin_key},
                                timeout=30, **kwargs)  # type: ignore[arg-type]

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


def start_live_node(db_path: Path, *, ura: str, client_id: str, name: str) -> tuple[LiveNode, object]:
    config = SimulatorConfig(database_url=sqlite_url(db_path), ura=ura, client_id=client_id, name=name)
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    config.public_url = url
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return LiveNode(url, config, app), server


@pytest.fixture
def node_pair(tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    """Two real simulator apps on loopback: 'simulator' and a reference 'vendor'."""
    sim, sim_server = start_live_node(tmp_path / "sim.sqlite", ura="90000101", client_id="sim", name="sim")
    ven, ven_server = start_live_node(tmp_path / "ven.sqlite", ura="90000202", client_id="ven", name="ven")
    yield sim, ven
    for server in (sim_server, ven_server):
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
