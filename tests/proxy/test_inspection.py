"""The inspection of one recorded flow: JSON and XML bodies are judged alike."""
from __future__ import annotations

import json
import time

from proxy.inspection import FlowContext, FlowRecord, inspect

NOT_SEARCHSET_XML = (b'<Bundle xmlns="http://hl7.org/fhir"><type value="history"/>'
                     b'<link><relation value="self"/><url value="http://x/fhir/Condition"/></link></Bundle>')


def _search(body: bytes, content_type: str) -> FlowRecord:
    return FlowRecord(tag="search", method="GET", url="http://x/fhir/Condition", request_headers={},
                      request_body=b"", status=200, response_headers={"Content-Type": content_type},
                      response_body=body, started_at=time.time())


def test_xml_and_json_bundles_get_the_same_bundle_findings() -> None:
    as_json = json.dumps({"resourceType": "Bundle", "type": "history",
                          "link": [{"relation": "self", "url": "http://x/fhir/Condition"}]}).encode()
    from_xml = {f.rule for f in inspect(_search(NOT_SEARCHSET_XML, "application/fhir+xml"), FlowContext())}
    from_json = {f.rule for f in inspect(_search(as_json, "application/fhir+json"), FlowContext())}
    assert "BUNDLE-002" in from_xml and from_xml == from_json


def test_an_xxe_body_is_not_read() -> None:
    hostile = (b'<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<Bundle xmlns="http://hl7.org/fhir"><type value="&x;"/></Bundle>')
    findings = inspect(_search(hostile, "application/fhir+xml"), FlowContext())
    assert all("root:" not in f.message for f in findings)


def test_replayed_assertion_is_flagged_by_the_callback() -> None:
    import jwt

    seen: dict[tuple[str, str], float] = {}

    def seen_jti(iss: str, jti: str, exp: float) -> bool:
        replay = (iss, jti) in seen
        seen[(iss, jti)] = exp
        return replay

    now = int(time.time())
    assertion = jwt.encode({"iss": "c", "sub": "c", "aud": "http://x/token", "iat": now, "exp": now + 60, "jti": "j"},
                           "k" * 32, algorithm="HS256")
    flow = FlowRecord(tag="token-request", method="POST", url="http://x/token",
                      request_headers={"Content-Type": "application/x-www-form-urlencoded"},
                      request_body=f"grant_type=client_credentials&client_assertion={assertion}".encode(),
                      status=400, response_headers={}, response_body=b"{}", started_at=now)
    context = FlowContext(token_url="http://x/token", seen_jti=seen_jti)
    assert "JWT-024" not in {f.rule for f in inspect(flow, context)}
    assert "JWT-024" in {f.rule for f in inspect(flow, context)}


def test_bgz_answers_are_checked_against_their_query_and_callers_against_rfc6750() -> None:
    wrong_type = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 1,
                             "link": [{"relation": "self", "url": "http://x/fhir/Condition"}],
                             "entry": [{"fullUrl": "http://x/fhir/Observation/o1", "search": {"mode": "match"},
                                        "resource": {"resourceType": "Observation", "id": "o1"}}]}).encode()
    rules = {f.rule for f in inspect(_search(wrong_type, "application/fhir+json"), FlowContext())}
    assert "BGZ-001" in rules  # Condition asked, an Observation answered
    assert "BEAR-001" in rules  # and the caller sent no bearer token


def test_reads_and_refused_binaries_are_judged_as_fhir_answers() -> None:
    """A read's answer (and a Binary answered with an error) gets the FHIR answer checks: a body that is no FHIR is
    reported, a proper one is not."""
    def flow(tag: str, status: int, content_type: str, body: bytes) -> FlowRecord:
        return FlowRecord(tag=tag, method="GET", url="http://x/fhir/Patient/p-1",
                          request_headers={"Authorization": "Bearer t", "Accept": "application/fhir+json"},
                          request_body=b"", status=status, response_headers={"Content-Type": content_type},
                          response_body=body, started_at=time.time())

    patient = json.dumps({"resourceType": "Patient", "id": "p-1"}).encode()
    outcome = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "not-found", "diagnostics": "no such"}]}).encode()
    for tag, status, body in (("read", 200, patient), ("binary", 404, outcome)):
        good = inspect(flow(tag, status, "application/fhir+json", body), FlowContext())
        bad = inspect(flow(tag, status, "text/html", b"<html>oops</html>"), FlowContext())
        assert not [f for f in good if f.severity == "error"], good
        assert [f for f in bad if f.severity == "error"], bad


def test_a_workflow_task_read_is_judged_by_the_workflow_task_rules() -> None:
    from datetime import datetime, timezone

    from simulator.outbound.task_builder import build_workflow_task

    def read(task: dict) -> FlowRecord:
        return FlowRecord(tag="read", method="GET", url="http://x/fhir/Task/wf-1",
                          request_headers={"Authorization": "Bearer t", "Accept": "application/fhir+json"},
                          request_body=b"", status=200, response_headers={"Content-Type": "application/fhir+json"},
                          response_body=json.dumps(task).encode(), started_at=time.time())

    workflow = build_workflow_task(task_id="wf-1", bsn="999993653", patient_name="S", sender_ura="90000101",
                                   sender_name="s", receiver_ura="90000202", authored_on=datetime.now(timezone.utc))
    assert not [f for f in inspect(read(workflow), FlowContext()) if f.severity == "error"]
    nothing_listed = {**workflow, "input": []}
    assert "WF-011" in {f.rule for f in inspect(read(nothing_listed), FlowContext())}


def test_a_probes_answer_gets_its_verdict_and_only_the_probed_request_does() -> None:
    """A FHIR probe (no-token) judged on its search, not on the good token request made on its way; what it sent
    wrong on purpose is a note."""
    from validators.probe_verdict import probe_mark

    def flow(tag: str, status: int) -> FlowRecord:
        return FlowRecord(tag=tag, method="GET", url="http://x/fhir/Patient", request_headers={},
                          request_body=b"", status=status, response_headers={"Content-Type": "application/json"},
                          response_body=b'{"access_token": "t", "token_type": "Bearer", "expires_in": 60}',
                          started_at=time.time())

    probe = FlowContext(probe=probe_mark("no-token"))
    served = inspect(flow("search", 200), probe)
    assert "HTTP-006" in {f.rule for f in served if f.severity == "error"}  # served without a token: the verdict
    assert [f.severity for f in served if f.rule == "BEAR-001"] == ["info"]  # no Authorization header: on purpose
    on_the_way = inspect(flow("token-request", 200), probe)
    assert not {f.rule for f in on_the_way} & {"HTTP-006", "HTTP-007"}
