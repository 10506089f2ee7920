"""The proxy judges a Notification Task or cancellation in FHIR XML as it judges the same Task in JSON (SPEC §3 steps 3
and 8, §6.4): in process, with mitmproxy's own test flows, through the addon's writer into the store."""
from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from proxy import addon as addon_module
from simulator.fhir.format import to_xml
from simulator.outbound.task_builder import build_notification_task
from speeltuin.store import Store
from tests.proxy.test_addon_in_process import SESSION, _flush, store_url  # noqa: F401 - store_url: the fixture
from tests.simulator.test_notification_xml import hand_written_task
from validators.rules.structure import parse_fhir

BASE = "http://127.0.0.1:8080"
TASK_URL = f"{BASE}/s/{SESSION}/notify/Task"
JSON, XML = "application/fhir+json", "application/fhir+xml"
AUTHORED = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)


def _task(**changes: Any) -> dict[str, Any]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    task = build_notification_task(bsn="999993653", patient_name="Suzanne Moulin", sender_ura="90000202",
                                   sender_name="vendor", receiver_ura="90000101", authorization_base="base-1",
                                   authored_on=now, period_end=now + timedelta(days=30))
    return {**task, **changes}


def _defective() -> dict[str, Any]:
    """Known defects of published examples (SPEC §4), each one expressible in XML as in JSON."""
    task = _task(groupIdentifier={"system": "urn:ietf:rfc:3986", "value": "not-a-uuid"}, intent="order")
    task["owner"] = {"identifier": {"system": "urn:oid:2.16.528.1.1007.3.3", "value": "00000000"}}
    task["code"] = {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskCodes", "code": "pull-notification"}]}
    task["restriction"] = {"period": {"end": task["authoredOn"]}}
    task["input"] = copy.deepcopy(task["input"])
    task["input"][1]["valueString"] = "Patient?_include=Patient%hlgeneral-practitioner"
    task["input"][2]["valueString"] = "Frobnicate?x=1"
    return task


def _flow(method: str, url: str, body: bytes, content_type: str, status: int, answer: bytes,
          case: str) -> http.HTTPFlow:
    flow = tflow.tflow(req=http.Request.make(method, url, body, {
        "Content-Type": content_type, "Authorization": "Bearer " + "T" * 40, "X-Case": case}),
        resp=http.Response.make(status, answer, {"Content-Type": content_type, "Location": f"{TASK_URL}/t-1"}))
    flow.request.timestamp_start = time.time()
    flow.response.timestamp_end = time.time() + 0.01  # type: ignore[union-attr]
    return flow


def _twins(case: str, task: dict[str, Any], *, method: str = "POST", url: str = TASK_URL,
           status: int = 201) -> list[http.HTTPFlow]:
    """The same exchange twice: the Task and its answer in JSON, then both in XML."""
    answer = {**task, "id": "t-1"}
    return [_flow(method, url, json.dumps(task).encode(), JSON, status, json.dumps(answer).encode(), f"{case}/json"),
            _flow(method, url, to_xml(task), XML, status, to_xml(answer), f"{case}/xml")]


def _judged(store_url: str, flows: list[http.HTTPFlow]) -> dict[str, list[str]]:
    """Each flow through the addon (writer process, judge, store): the rule ids recorded, by the flow's X-Case."""
    recorder = addon_module.Recorder()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, speeltuin_db=store_url, speeltuin_public_url=BASE)
        for flow in flows:
            recorder.response(flow)
        assert _flush(recorder)["status"] == 200
        recorder.done()
    store = Store(store_url)
    try:
        recorded = store.list_exchanges([SESSION])
    finally:
        store.close()
    assert len(recorded) == len(flows)
    return {ex.request_headers["X-Case"]: sorted(f.rule for f in ex.findings) for ex in recorded}


def test_xml_tasks_get_the_rule_findings_of_their_json_twins(store_url: str) -> None:
    identifier = _task()["identifier"][0]["value"]
    cancel = _task(status="cancelled")
    cancel["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": identifier}]
    flows = (_twins("valid", _task()) + _twins("defective", _defective())
             + _twins("cancel", cancel, method="PUT", url=f"{TASK_URL}?identifier=urn:ietf:rfc:3986|{identifier}",
                      status=200)
             + _twins("bad-cancel", _task(), method="PUT", status=200))  # not cancelled, not conditional
    judged = _judged(store_url, flows)
    for case in ("valid", "defective", "cancel", "bad-cancel"):
        assert judged[f"{case}/xml"] == judged[f"{case}/json"], case
    assert judged["valid/json"] == [] and judged["cancel/json"] == []
    defects = {"ID-SYS-001", "NOTIF-007", "NOTIF-009", "NOTIF-011", "NOTIF-015", "NOTIF-016", "NOTIF-031", "NOTIF-039"}
    assert defects <= set(judged["defective/xml"]), judged["defective/xml"]
    assert {"NOTIF-033", "NOTIF-037"} <= set(judged["bad-cancel/xml"]), judged["bad-cancel/xml"]


def _hand_written_twin(identifier: str, group: str) -> dict[str, Any]:
    """What hand_written_task says, written out by hand in FHIR JSON."""
    ura = "http://fhir.nl/fhir/NamingSystem/ura"

    def org(value: str) -> dict[str, Any]:
        return {"identifier": {"system": ura, "value": value}}

    def param(system: str, code: str, value: str, display: str | None = None) -> dict[str, Any]:
        coding = {"system": system, "code": code, **({"display": display} if display else {})}
        return {"type": {"coding": [coding]}, "valueString": value}

    parameter = "http://fhir.nl/fhir/NamingSystem/TaskParameter"
    return {
        "resourceType": "Task",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": identifier}],
        "groupIdentifier": {"system": "urn:ietf:rfc:3986", "value": group},
        "status": "requested", "intent": "proposal",
        "code": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskCode", "code": "pull-notification"}]},
        "for": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999993653"},
                "display": "Suzanne Moulin"},
        "authoredOn": "2026-01-05T09:30:00+00:00",
        "requester": {"agent": org("90000202"), "onBehalfOf": org("90000202")},
        "owner": org("90000101"),
        "restriction": {"period": {"end": "2026-02-04T09:30:00+00:00"}},
        "input": [param(parameter, "authorization-base", "hand-base-1"),
                  param("http://loinc.org", "79191-3", "Patient?_include=Patient%3Ageneral-practitioner",
                        "Patient demographics"),
                  param(parameter, "search-resource", "Condition")],
    }


def test_a_hand_written_xml_task_reads_as_its_hand_written_json_and_is_judged_alike(store_url: str) -> None:
    identifier, group = "urn:uuid:7f1f0f6e-2f43-4a53-9a0e-4f1d2b0c9e11", "urn:uuid:0c2e8f53-5b0e-4c1f-8f57-2b8d9c1d3a40"
    xml = hand_written_task(identifier=identifier, group=group, authored_on=AUTHORED)
    twin = _hand_written_twin(identifier, group)
    read = parse_fhir(xml, structure=False)
    assert (read.format, read.resource, read.findings) == ("xml", twin, [])
    answer = {**twin, "id": "t-1"}
    judged = _judged(store_url, [
        _flow("POST", TASK_URL, json.dumps(twin).encode(), JSON, 201, json.dumps(answer).encode(), "json"),
        _flow("POST", TASK_URL, xml, XML, 201, to_xml(answer), "xml")])
    assert judged["xml"] == judged["json"] == ["NOTIF-016"]  # written to end in February 2026: ended


def test_reading_defects_are_findings_of_the_task_and_block_it(store_url: str) -> None:
    """What the simulator's endpoint refuses a Task for, the proxy reports (and with block-on-error, blocks): XML
    out of the STU3 order (STRUCT-005), a JSON key given twice (STRUCT-004)."""
    disordered = hand_written_task(swap_status_and_intent=True)
    twice = json.dumps(_task()).replace('"status": "requested"', '"status": "requested", "status": "requested"')
    judged = _judged(store_url, [
        _flow("POST", TASK_URL, disordered, XML, 400, b"", "order"),
        _flow("POST", TASK_URL, twice.encode(), JSON, 400, b"", "twice"),
        _flow("POST", TASK_URL, hand_written_task(), XML, 201, b"", "fine")])
    assert "STRUCT-005" in judged["order"] and "STRUCT-004" in judged["twice"], judged
    assert not {r for r in judged["fine"] if r.startswith(("STRUCT", "NOTIF"))}, judged["fine"]
    for body, content_type, rule in ((disordered, XML, "STRUCT-005"), (twice.encode(), JSON, "STRUCT-004")):
        flow = tflow.tflow(req=http.Request.make("POST", TASK_URL, body, {"Content-Type": content_type}))
        addon_module.block_if_invalid(flow)
        assert flow.response is not None and flow.response.status_code == 400 and rule in flow.response.text
    passes = tflow.tflow(req=http.Request.make("POST", TASK_URL, hand_written_task(), {"Content-Type": XML}))
    addon_module.block_if_invalid(passes)
    assert passes.response is None
