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
