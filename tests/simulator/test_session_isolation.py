"""Two sessions used at once never see each other's patients, tokens or notifications (issue 4)."""
from __future__ import annotations

import requests

from scenarios.pairing import pair_sessions

BSN_A, BSN_B = "999993653", "999990639"


def _pull_token(ven, endpoints: dict, base: str) -> str:  # type: ignore[no-untyped-def]
    url = endpoints["token_url"]
    response = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url, base))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_parallel_sessions_are_isolated(node_pair) -> None:
    sim, ven = node_pair
    ven.runtime.config.auto_pull = False
    a = pair_sessions(sim, ven, vendor_role="receiver", sim_id="sim-a", ven_id="ven-a")
    b = pair_sessions(sim, ven, vendor_role="receiver", sim_id="sim-b", ven_id="ven-b")
    base_a = sim.api("POST", "/sessions/sim-a/notify", json={"bsn": BSN_A}).json()["task"]["input"][0]["valueString"]
    base_b = sim.api("POST", "/sessions/sim-b/notify", json={"bsn": BSN_B}).json()["task"]["input"][0]["valueString"]
    token_a, token_b = _pull_token(ven, a, base_a), _pull_token(ven, b, base_b)

    def patients(endpoints: dict, token: str) -> list[str]:
        bundle = requests.get(f"{endpoints['fhir_base']}/Patient", headers={"Authorization": f"Bearer {token}"}).json()
        return [e["resource"]["identifier"][0]["value"] for e in bundle["entry"] if e["search"]["mode"] == "match"]

    assert patients(a, token_a) == [BSN_A] and patients(b, token_b) == [BSN_B]
    # a token of one session is worthless in the other
    crossed = requests.get(f"{b['fhir_base']}/Patient", headers={"Authorization": f"Bearer {token_a}"})
    assert crossed.status_code == 401
    # an authorization base of one session is unknown in the other
    url = b["token_url"]
    refused = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url, base_a))
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    # each session lists only its own notifications
    listed_a = sim.api("GET", "/sessions/sim-a/notifications").json()
    listed_b = sim.api("GET", "/sessions/sim-b/notifications").json()
    assert [n["patient_bsn"] for n in listed_a] == [BSN_A] and [n["patient_bsn"] for n in listed_b] == [BSN_B]
