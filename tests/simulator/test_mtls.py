"""Mutual TLS per session (SPEC §5.1): both nodes serve HTTPS with test-PKI certificates; an mTLS session
needs the vendor's client certificate carrying its URA, and the simulator presents its own when calling."""
from __future__ import annotations

import time
from dataclasses import replace

import requests

from scenarios.pairing import pair_sessions
from speeltuin.records import Notification, NotificationOrigin
from tests.simulator.helpers import wait_for_pull


def _mtls(node, session_id: str) -> None:  # type: ignore[no-untyped-def]
    session = node.runtime.store.get_session(session_id)
    session = replace(session, config=replace(session.config, mtls=True))
    node.runtime.store.delete_session(session_id)
    node.runtime.store.create_session(session)


def test_exchange_over_mutual_tls(tls_node_pair) -> None:
    sim, ven = tls_node_pair
    pair_sessions(sim, ven, vendor_role="receiver", sim_id="sim-1", ven_id="ven-1")
    _mtls(sim, "sim-1")
    _mtls(ven, "ven-1")
    sent = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": "999993653"})
    assert sent.json()["delivery"]["status"] == 201, sent.text
    received = wait_for_pull(ven, "ven-1")
    assert received.pull_status == "done", received.pull_summary


def test_mtls_session_refuses_missing_or_foreign_certificates(tls_node_pair) -> None:
    sim, ven = tls_node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver", sim_id="sim-1", ven_id="ven-1")
    _mtls(sim, "sim-1")
    sim.runtime.store.add_notification(Notification(
        id="n-1", session_id="sim-1", origin=NotificationOrigin.SENT, identifier="urn:uuid:1", group_identifier="urn:uuid:2",
        authorization_base="b-1", patient_bsn="999993653", owner_ura="90000202", period_end=time.time() + 600,
        status="requested", task={}))
    url, ca = endpoints["token_url"], sim.verify
    pki = ven.config.tls.cert.parent

    def token(cert: tuple[str, str] | None) -> requests.Response:
        form = ven.runtime.signer.token_request_form("ven", "90000202", url, "b-1")
        return requests.post(url, data=form, verify=ca, cert=cert)

    missing = token(None)
    assert (missing.status_code, missing.json()["error"]) == (401, "invalid_client")
    assert "requires mutual TLS" in missing.json()["error_description"]
    foreign = token((str(pki / "other.cert.pem"), str(pki / "other.key.pem")))
    assert foreign.status_code == 401 and "URA 90000303" in foreign.json()["error_description"]
    granted = token((str(pki / "ven.cert.pem"), str(pki / "ven.key.pem")))
    assert granted.status_code == 200, granted.text
    fhir = requests.get(f"{endpoints['fhir_base']}/Condition", verify=ca,
                        headers={"Authorization": f"Bearer {granted.json()['access_token']}"})
    assert fhir.status_code == 403 and fhir.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{sim.url}/s/sim-1/jwks", verify=ca).status_code == 200  # public keys need no certificate
