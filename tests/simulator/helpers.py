"""Session set-up shared by the simulator tests: the same pairing the scenarios make, over real HTTP."""
from __future__ import annotations

from tests.conftest import LiveNode


def pair_sessions(sim: LiveNode, ven: LiveNode, *, vendor_role: str, sid: str = "sim-1",
                  vid: str = "ven-1") -> dict:
    """Create matching sessions on both nodes; `vendor_role` is the role `ven` plays for `sim`."""
    sim_side = {"id": sid, "vendor_role": vendor_role, "vendor_ura": ven.config.ura,
                "vendor_jwks": ven.runtime.signer.jwks(), "vendor_client_id": ven.config.client_id,
                "vendor_token_url": f"{ven.url}/s/{vid}/token"}
    if vendor_role == "receiver":
        sim_side["vendor_notification_base"] = f"{ven.url}/s/{vid}/notify"
    else:
        sim_side["vendor_fhir_base"] = f"{ven.url}/s/{vid}/fhir"
    created = sim.api("POST", "/sessions", json=sim_side)
    assert created.status_code == 201, created.text
    endpoints = created.json()["endpoints"]
    ven_side = {"id": vid, "vendor_role": "sender" if vendor_role == "receiver" else "receiver",
                "vendor_ura": sim.config.ura, "vendor_jwks": sim.runtime.signer.jwks(),
                "vendor_client_id": sim.config.client_id, "own_client_id": ven.config.client_id,
                "vendor_token_url": endpoints["token_url"]}
    if vendor_role == "receiver":
        ven_side["vendor_fhir_base"] = endpoints["fhir_base"]
    else:
        ven_side["vendor_notification_base"] = endpoints["notification_base"]
    assert ven.api("POST", "/sessions", json=ven_side).status_code == 201
    return endpoints
