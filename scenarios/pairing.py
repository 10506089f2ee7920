"""Pairs the simulator with the reference vendor: a session on each side, each pointing at the other."""
from __future__ import annotations

from typing import Any, Protocol

import requests


class NodeLike(Protocol):
    ura: str
    client_id: str
    public_url: str  # where the other node reaches this one (through the proxy in the demo)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response: ...

    def jwks(self) -> dict: ...


class PairingError(Exception):
    """A session could not be created; the message carries the node's answer."""


def pair_sessions(sim: NodeLike, ven: NodeLike, *, vendor_role: str, sim_id: str, ven_id: str,
                  name: str = "", ven_faults: tuple[str, ...] = ()) -> dict[str, str]:
    """Create the simulator's session for `ven` playing `vendor_role`, and its mirror on `ven`.

    The reference vendor is configured the way a vendor would be: with the simulator's endpoints.
    `ven_faults`: fault switches of the reference vendor in its session (simulator/faults.py).
    Returns the simulator session's endpoints.
    """
    ven_base = f"{ven.public_url}/s/{ven_id}"
    sim_request = {"id": sim_id, "name": name or sim_id, "vendor_role": vendor_role, "vendor_ura": ven.ura,
                   "vendor_jwks": ven.jwks(), "vendor_client_id": ven.client_id,
                   "vendor_token_url": f"{ven_base}/token"}
    if vendor_role == "receiver":
        sim_request["vendor_notification_base"] = f"{ven_base}/notify"
    else:
        sim_request["vendor_fhir_base"] = f"{ven_base}/fhir"
    endpoints = _create(sim, sim_request)["endpoints"]
    ven_request = {"id": ven_id, "vendor_role": "sender" if vendor_role == "receiver" else "receiver",
                   "vendor_ura": sim.ura, "vendor_jwks": sim.jwks(), "vendor_client_id": sim.client_id,
                   "own_client_id": ven.client_id, "vendor_token_url": endpoints["token_url"]}
    if vendor_role == "receiver":
        ven_request["vendor_fhir_base"] = endpoints["fhir_base"]
    else:
        ven_request["vendor_notification_base"] = endpoints["notification_base"]
    if ven_faults:
        ven_request["faults"] = list(ven_faults)
    _create(ven, ven_request)
    return endpoints


def _create(node: NodeLike, body: dict[str, Any]) -> dict[str, Any]:
    response = node.api("POST", "/sessions", json=body)
    if response.status_code != 201:
        raise PairingError(f"creating session {body['id']}: {response.status_code} {response.text[:300]}")
    return response.json()
