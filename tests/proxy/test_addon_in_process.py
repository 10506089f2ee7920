"""The addon in process, with mitmproxy's own test helpers (taddons, tflow): options checked at the start, flows
handed to the writer process and recorded as received, the flush answered by the proxy itself, a validator that
raises leaving the exchange recorded with a finding that names it, and everything written before the addon is done."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from proxy import addon as addon_module
from proxy.judge import CapturedFlow, Judge
from speeltuin.defaults import sqlite_url
from speeltuin.records import PROXY_FLUSH_PATH, Role, Session, SessionConfig
from speeltuin.store import Store
from tests.conftest import run_async

SESSION = "inproc-1"


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    url = sqlite_url(tmp_path / "proxy.sqlite")
    store = Store(url)
    store.create_session(Session(SESSION, "in process", Role.SENDER, SessionConfig(
        vendor_ura="12345678", vendor_client_id="v", own_ura="90000101", own_client_id="sim"), time.time()))
    store.close()
    yield url


def _search_flow(body: bytes, *, path: str = f"/s/{SESSION}/fhir/Condition?_count=2") -> http.HTTPFlow:
    flow = tflow.tflow(req=http.Request.make("GET", f"http://127.0.0.1:8080{path}",
                                             headers={"Authorization": "Bearer " + "T" * 40}),
                       resp=http.Response.make(200, body, {"Content-Type": "application/fhir+json"}))
    flow.request.timestamp_start = time.time()
    flow.response.timestamp_end = time.time() + 0.01  # type: ignore[union-attr]
    return flow


def _flush(recorder: Any) -> dict[str, Any]:
    flow = tflow.tflow(req=http.Request.make("GET", f"http://127.0.0.1:8080{PROXY_FLUSH_PATH}"))
    run_async(recorder.request(flow))
    assert flow.response is not None and flow.metadata.get(addon_module.INTERNAL)
    return {"status": flow.response.status_code, **json.loads(flow.response.get_text() or "{}")}


def test_a_store_that_cannot_be_opened_is_refused_at_the_start_without_its_password() -> None:
    recorder = addon_module.Recorder()
    with taddons.context(recorder) as tctx:
        with pytest.raises(exceptions.OptionsError, match="speeltuin_db: cannot open the store") as refused:
            tctx.configure(recorder, speeltuin_db="postgresql+psycopg://someone:s3cret@127.0.0.1:1/none")
        assert "s3cret" not in str(refused.value) and "***" in str(refused.value)
        assert recorder.writer is None


def test_flows_are_recorded_off_their_path_as_received(store_url: str) -> None:
    recorder = addon_module.Recorder()
    # bodies as received: compact JSON stays compact (no indentation added), gzip is undone
    bundle = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}, separators=(",", ":")).encode()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, speeltuin_db=store_url, speeltuin_public_url="http://127.0.0.1:8080")
        flows = [_search_flow(bundle) for _ in range(3)]
        flows[1].response.headers["content-encoding"] = "gzip"  # type: ignore[union-attr]
        flows[1].response.raw_content = __import__("gzip").compress(bundle)  # type: ignore[union-attr]
        started = time.perf_counter()
        for flow in flows:
            recorder.response(flow)
        handed_over_ms = (time.perf_counter() - started) * 1000
        answer = _flush(recorder)
        assert answer == {"status": 200, "flushed": True, "recorded": 3}
        writer = recorder.writer
        recorder.done()
    assert writer is not None and not writer._process.is_alive()  # done(): the writer finished and stopped
    store = Store(store_url)
    try:
        recorded = store.list_exchanges([SESSION])
    finally:
        store.close()
    assert len(recorded) == 3 and {ex.response_body for ex in recorded} == {bundle.decode()}
    assert all("T" * 40 not in ex.request_headers["Authorization"] for ex in recorded)
    assert all(ex.tag == "search" and ex.direction == "to-simulator" for ex in recorded)
    assert handed_over_ms < 1000  # the hooks only queued (the figures are benchmarks/proxy_overhead.py's)


def test_the_flush_and_flows_of_no_store_are_never_forwarded_or_recorded() -> None:
    recorder = addon_module.Recorder()
    with taddons.context(recorder):
        assert _flush(recorder) == {"status": 200, "flushed": True, "recorded": 0}  # no store: nothing to wait for
        recorder.response(_search_flow(b"{}"))  # no store configured: nothing happens, nothing breaks


def test_a_validator_that_raises_leaves_the_exchange_recorded_with_a_finding_naming_it(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import validators.rules.bundle as bundle_rules

    def broken(*_args: Any, **_kwargs: Any) -> dict:
        raise KeyError("entry")

    monkeypatch.setattr(bundle_rules, "_build_index", broken)  # a helper deep inside the searchset rules
    store = Store(store_url)
    try:
        judge = Judge(store, "http://127.0.0.1:8080")
        body = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()
        captured = CapturedFlow(method="GET", url=f"http://127.0.0.1:8080/s/{SESSION}/fhir/Condition",
                                path=f"/s/{SESSION}/fhir/Condition", request_headers={"Accept": "application/fhir+json"},
                                request_body=b"", status=200, response_headers={"Content-Type": "application/fhir+json"},
                                response_body=body, started_at=time.time(), ended_at=None)
        exchange = judge.exchange(captured)
    finally:
        store.close()
    internal = [f for f in exchange.findings if f.rule == "INTERNAL-001"]
    assert len(internal) == 1 and internal[0].message.startswith("validators.rules.bundle raised KeyError")
    assert exchange.response_body == body.decode() and exchange.session_id == SESSION


def test_the_client_certificate_header_names_a_chain_to_the_test_ca_and_refuses_another(tmp_path: Path) -> None:
    import base64

    from cryptography import x509

    from speeltuin.records import CLIENT_CERT_HEADER, CLIENT_CERT_PROBLEM_HEADER
    from testdata.pki import init_ca, issue

    ca = x509.load_pem_x509_certificates(init_ca(tmp_path / "ours").read_bytes())
    init_ca(tmp_path / "theirs", name="another CA")
    ours, theirs = (issue(tmp_path / where, name="ven", ura="90000202") for where in ("ours", "theirs"))
    name, value = addon_module.client_certificate_header([ours.cert_path.read_bytes()], ca)
    leaf = x509.load_pem_x509_certificates(ours.cert_path.read_bytes())[0]
    assert name == CLIENT_CERT_HEADER and x509.load_der_x509_certificate(base64.b64decode(value)) == leaf
    name, value = addon_module.client_certificate_header([theirs.cert_path.read_bytes()], ca)
    assert name == CLIENT_CERT_PROBLEM_HEADER and "another CA" in value and "x5c" not in value
    assert addon_module.client_certificate_header([b"not a certificate"], ca)[0] == CLIENT_CERT_PROBLEM_HEADER


def test_chain_routes_attribute_by_port_and_by_address_on_the_forward_listener() -> None:
    from proxy.judge import ChainRoutes
    from speeltuin.records import ChainConfig, FlowDirection

    session = Session("chain-1", "chain", Role.RECEIVER, SessionConfig(
        vendor_ura="90000602", vendor_client_id="b", own_ura="90000501", own_client_id="a",
        chain=ChainConfig(vendor_upstream="http://Receiver.test:80", peer_upstream="https://sender.test",
                          vendor_port=9102)), time.time())
    routes = ChainRoutes.of([session])

    def flow(listen_port: int, upstream: str, forwarded: bool) -> CapturedFlow:
        return CapturedFlow("GET", f"{upstream}/x", "/x", {}, b"", 200, {}, b"", time.time(), None,
                            listen_port=listen_port, forwarded=forwarded, upstream=upstream)

    assert routes.find(flow(9102, "http://receiver.test:80", False)) == ("chain-1", FlowDirection.TO_VENDOR)
    assert routes.find(flow(9100, "https://sender.test:443", True)) == ("chain-1", FlowDirection.TO_PEER)
    assert routes.find(flow(9100, "http://receiver.test:80", True)) is None  # it has a port: not by address
    assert routes.find(flow(9101, "https://sender.test:443", False)) is None  # no chain port
    assert routes.find(flow(9100, "http://sender.test:443", True)) is None  # another scheme


def test_the_judge_checks_x5c_assertions_against_the_trusted_ca(store_url: str, tmp_path: Path) -> None:
    """Like the simulator's AS with --trusted-ca: an x5c chain to the test CA is verified (no JWT-023 'not
    checked'), one from another CA is an error (JWT-026)."""
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization

    from testdata.pki import init_ca, issue

    ours, theirs = init_ca(tmp_path / "ours"), init_ca(tmp_path / "theirs")
    token_url = f"http://127.0.0.1:8080/s/{SESSION}/token"

    def flow(pki: Path) -> CapturedFlow:
        issued = issue(pki, name="vendor", ura="12345678")
        key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
        x5c = json.loads(issued.jwks_path.read_text())["keys"][0]["x5c"]
        now = int(time.time())

        def signed(sub: str, jti: str) -> str:
            return pyjwt.encode({"iss": "v", "sub": sub, "aud": token_url, "iat": now, "exp": now + 60,
                                 "jti": jti}, key, algorithm="ES256", headers={"typ": "JWT", "x5c": x5c})
        form = (f"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={signed('12345678', 'a')}"
                f"&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                f"&client_assertion={signed('v', 'c')}").encode()
        return CapturedFlow("POST", token_url, f"/s/{SESSION}/token",
                            {"Content-Type": "application/x-www-form-urlencoded"}, form, 400,
                            {"Content-Type": "application/json"}, b'{"error": "invalid_grant"}', time.time(),
                            time.time() + 0.01)

    store = Store(store_url)
    try:
        trusting = Judge(store, "http://127.0.0.1:8080", ours.read_bytes())
        rules = {f.rule for f in trusting.exchange(flow(tmp_path / "ours")).findings}
        assert "JWT-023" not in rules and "JWT-026" not in rules, rules
        assert "JWT-026" in {f.rule for f in trusting.exchange(flow(tmp_path / "theirs")).findings}
        untrusting = Judge(store, "http://127.0.0.1:8080")
        assert "JWT-023" in {f.rule for f in untrusting.exchange(flow(tmp_path / "ours")).findings}
        assert theirs.exists()
    finally:
        store.close()


def test_a_trusted_ca_file_that_is_not_there_is_an_options_error(store_url: str, tmp_path: Path) -> None:
    recorder = addon_module.Recorder()
    with taddons.context(recorder) as tctx:
        with pytest.raises(exceptions.OptionsError, match="speeltuin_trusted_ca: cannot read"):
            tctx.configure(recorder, speeltuin_db=store_url, speeltuin_trusted_ca=str(tmp_path / "missing.pem"))
