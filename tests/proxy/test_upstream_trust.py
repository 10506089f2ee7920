"""Under `speeltuin service` the simulator's calls to https:// vendors go through the proxy, which speaks TLS to the
vendor: before any request byte reaches it, the vendor's server certificate must chain to the test CA and carry the
session's vendor URA (issue 14), as `speeltuin serve` checks by itself (tests/simulator/test_vendor_server_trust.py).
Real mitmdump, real TLS on loopback, certificates from the test PKI; the vendor is a plain HTTPS server that keeps
every request it gets."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
import requests
from mitmproxy import connection, http
from mitmproxy.test import taddons, tflow

from proxy import addon as addon_module
from proxy.launcher import ServicePlan, service_command
from speeltuin.defaults import sqlite_url
from speeltuin.records import SESSION_HEADER, Role, Session, SessionConfig
from speeltuin.store import Store
from testdata.pki import init_ca, issue
from tests.conftest import run_async
from tests.simulator.test_vendor_server_trust import RecordingVendor
from tests.test_cli_service import TlsService, tls_service  # noqa: F401 - the fixture: the service over HTTPS

VENDOR_URA = "90000202"
ADMIN = {"X-Admin-Key": "test-admin-key-of-the-service"}


def _notify(service: TlsService, session_id: str, vendor: RecordingVendor) -> dict:
    created = requests.post(f"{service.public}/api/sessions", headers=ADMIN, verify=str(service.ca), timeout=10, json={
        "id": session_id, "vendor_role": "receiver", "vendor_ura": VENDOR_URA, "mtls": False,
        "vendor_jwks": vendor.jwks, "vendor_token_url": f"{vendor.url}/token",
        "vendor_notification_base": f"{vendor.url}/notify"})
    assert created.status_code == 201, created.text
    sent = requests.post(f"{service.public}/api/sessions/{session_id}/notify", headers=ADMIN, verify=str(service.ca),
                         timeout=60, json={"bsn": "999993653"})
    assert sent.status_code == 200, sent.text
    return sent.json()


def _notifications(service: TlsService, session_id: str) -> list[dict]:
    listed = requests.get(f"{service.public}/api/sessions/{session_id}/notifications", headers=ADMIN,
                          verify=str(service.ca), timeout=10)
    assert listed.status_code == 200, listed.text
    return listed.json()


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA the service does not trust."""
    root = tmp_path_factory.mktemp("other-pki")
    init_ca(root, name="another CA")
    return root


def _vendor(service: TlsService, other_pki: Path, case: str) -> RecordingVendor:
    if case == "another URA":  # the test CA, another organisation
        cert = issue(service.pki, name="impostor", ura="87654321")
    elif case == "another CA":  # the right URA, from a CA the service does not trust
        cert = issue(other_pki, name="impostor", ura=VENDOR_URA)
    else:
        cert = issue(service.pki, name="vendor", ura=VENDOR_URA)
    return RecordingVendor(cert.cert_path, cert.key_path)


def test_the_sessions_vendor_receives_the_notification_through_the_proxy(tls_service: TlsService,
                                                                         other_pki: Path) -> None:
    vendor = _vendor(tls_service, other_pki, "the right URA")
    try:
        sent = _notify(tls_service, "upstream-right", vendor)
    finally:
        vendor.close()
    assert sent["delivery"].get("status") == 201, sent
    assert [(method, path.rsplit("/", 1)[-1]) for method, path, _ in vendor.requests] == [("POST", "token"),
                                                                                         ("POST", "Task")]
    recorded = tls_service.recorded("upstream-right")
    assert {(ex.tag, ex.status) for ex in recorded if ex.direction == "to-vendor"} == {("token-request", 200),
                                                                                      ("notification", 201)}


@pytest.mark.parametrize("case, said", [
    ("another URA", "names URA 87654321"),
    ("another CA", "not trusted")])
def test_a_server_that_is_not_the_sessions_vendor_gets_nothing_through_the_proxy(
        tls_service: TlsService, other_pki: Path, case: str, said: str) -> None:
    session_id = f"upstream-{case.split()[1].lower()}"
    vendor = _vendor(tls_service, other_pki, case)
    try:
        sent = _notify(tls_service, session_id, vendor)
    finally:
        vendor.close()
    assert vendor.requests == []  # not a token request, not a BSN, not an authorization base
    error = sent["delivery"].get("error", "")
    assert "the validating proxy could not reach" in error and said in error, sent  # its 502 names what it found
    if case == "another URA":
        assert "90000202" in error and "87654321" in error
    # the session shows why: the notification as listed, and the refused call on the record
    assert _notifications(tls_service, session_id)[-1]["delivery"]["error"] == error
    [refused] = [ex for ex in tls_service.recorded(session_id) if ex.direction == "to-vendor"]
    assert refused.tag == "token-request" and refused.status is None and refused.url.startswith("https://")
    assert said in (refused.error or "") and "not forwarded" in (refused.error or ""), refused.error


# --- in process: what the addon decides before mitmproxy opens a connection to the vendor ----------------------


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[addon_module.Recorder]:
    url = sqlite_url(tmp_path / "proxy.sqlite")
    store = Store(url)
    for session_id, ura in (("ura-a", "90000202"), ("ura-b", "90000303"), ("ura-a2", "90000202")):
        store.create_session(Session(session_id, session_id, Role.RECEIVER, SessionConfig(
            vendor_ura=ura, vendor_client_id="v", own_ura="90000101", own_client_id="sim"), 0.0))
    store.close()
    recorder = addon_module.Recorder()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, speeltuin_db=url, speeltuin_vendor_ura=True)
        yield recorder
        recorder.done()


def _outbound(session_id: str, client: connection.Client | None = None, scheme: str = "https") -> http.HTTPFlow:
    """The simulator's call to a vendor as the forward listener gets it: marked with its session."""
    flow = tflow.tflow(req=http.Request.make("POST", f"{scheme}://127.0.0.1:9443/token", b"bsn=999993653",
                                             {SESSION_HEADER: session_id}))
    if client is not None:
        flow.client_conn = client
    return flow


def test_a_flow_of_an_unknown_session_is_answered_502_and_not_forwarded(recorder: addon_module.Recorder) -> None:
    flow = _outbound("no-such-session")
    run_async(recorder.request(flow))
    assert flow.response is not None and flow.response.status_code == 502
    said = flow.response.json()["issue"][0]["diagnostics"]
    assert said.startswith("the validating proxy did not forward this request: session no-such-session is unknown")


def test_one_connection_carries_one_vendor(recorder: addon_module.Recorder) -> None:
    """An upstream connection checked for one vendor URA may be reused by mitmproxy for the next request on the same
    client connection: a request for a session of another vendor URA there is refused, one of the same URA is not."""
    first = _outbound("ura-a")
    run_async(recorder.request(first))
    assert first.response is None and "X-Speeltuin-Session" not in first.request.headers  # forwarded, mark removed
    same_vendor = _outbound("ura-a2", first.client_conn)
    run_async(recorder.request(same_vendor))
    assert same_vendor.response is None
    other_vendor = _outbound("ura-b", first.client_conn)
    run_async(recorder.request(other_vendor))
    assert other_vendor.response is not None and other_vendor.response.status_code == 502
    assert "vendor URA 90000202" in other_vendor.response.text and "vendor URA 90000303" in other_vendor.response.text
    fresh = _outbound("ura-b")  # a new client connection
    run_async(recorder.request(fresh))
    assert fresh.response is None


def test_plain_http_and_unmarked_flows_are_left_alone(recorder: addon_module.Recorder) -> None:
    for flow in (_outbound("no-such-session", scheme="http"), _outbound("")):
        run_async(recorder.request(flow))
        assert flow.response is None


def test_the_service_asks_the_proxy_for_the_ura_check_with_a_test_ca(tmp_path: Path) -> None:
    plan = ServicePlan(simulator_url="http://127.0.0.1:1", public_host="127.0.0.1", public_port=2,
                       public_url="https://127.0.0.1:2", forward_port=3, database_url="sqlite://", confdir=tmp_path)
    assert "speeltuin_vendor_ura=true" not in service_command(plan)  # no test CA: vendors' CAs are the system's
    with_ca = service_command(replace(plan, vendor_ca=tmp_path / "ca.pem"))
    assert "speeltuin_vendor_ura=true" in with_ca and f"ssl_verify_upstream_trusted_ca={tmp_path / 'ca.pem'}" in with_ca
