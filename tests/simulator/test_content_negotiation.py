"""JSON and XML by Accept and _format; Binary as PDF bytes or as a FHIR Binary (SPEC §3 steps 5-6)."""
from __future__ import annotations

import base64
import json
import time

import requests
from lxml import etree

from speeltuin.records import Notification, NotificationOrigin
from tests.simulator.helpers import pair_sessions

FHIR_NS = "{http://hl7.org/fhir}"


def _context(node_pair) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    sim.runtime.store.add_notification(Notification(
        id="n-1", session_id="sim-1", origin=NotificationOrigin.SENT, identifier="urn:uuid:1", group_identifier="urn:uuid:2",
        authorization_base="base-1", patient_bsn="999993653", owner_ura="90000202",
        period_end=time.time() + 3600, status="requested", task={}))
    url = endpoints["token_url"]
    token = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url, "base-1"))
    return endpoints["fhir_base"], {"Authorization": f"Bearer {token.json()['access_token']}"}


def _xml(response: requests.Response) -> etree._Element:
    assert response.headers["Content-Type"].startswith("application/fhir+xml"), response.headers
    return etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))


def test_search_in_xml_by_accept_and_by_format(node_pair) -> None:
    fhir, auth = _context(node_pair)
    as_json = requests.get(f"{fhir}/Condition", headers={**auth, "Accept": "application/fhir+json"})
    assert as_json.headers["Content-Type"].startswith("application/fhir+json")
    by_accept = _xml(requests.get(f"{fhir}/Condition", headers={**auth, "Accept": "application/fhir+xml"}))
    assert by_accept.tag == FHIR_NS + "Bundle"
    entries = by_accept.findall(f"{FHIR_NS}entry")
    assert len(entries) == as_json.json()["total"] and entries[0].find(f"{FHIR_NS}resource/{FHIR_NS}Condition") is not None
    # _format wins over Accept, both ways
    by_format = requests.get(f"{fhir}/Condition", params={"_format": "xml"},
                             headers={**auth, "Accept": "application/fhir+json"})
    assert _xml(by_format).tag == FHIR_NS + "Bundle"
    back = requests.get(f"{fhir}/Condition", params={"_format": "json"},
                        headers={**auth, "Accept": "application/fhir+xml"})
    assert back.json()["resourceType"] == "Bundle"
    preferred = requests.get(f"{fhir}/Condition", headers={
        **auth, "Accept": "application/fhir+json;q=0.5, application/fhir+xml;q=0.9"})
    assert _xml(preferred).tag == FHIR_NS + "Bundle"


def test_errors_follow_the_asked_format(node_pair) -> None:
    fhir, auth = _context(node_pair)
    unauthorised = requests.get(f"{fhir}/Condition", headers={"Accept": "application/fhir+xml"})
    assert unauthorised.status_code == 401 and _xml(unauthorised).tag == FHIR_NS + "OperationOutcome"
    unsupported = requests.get(f"{fhir}/Condition", params={"_format": "html"}, headers=auth)
    assert unsupported.status_code == 406 and unsupported.json()["resourceType"] == "OperationOutcome"


def test_binary_as_pdf_or_as_fhir_binary(node_pair) -> None:
    fhir, auth = _context(node_pair)
    documents = requests.get(f"{fhir}/DocumentReference", params={"status": "current"},
                             headers={**auth, "Accept": "application/fhir+json"}).json()
    url = documents["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    raw = requests.get(f"{fhir}/{url}", headers={**auth, "Accept": "application/pdf"})
    assert raw.headers["Content-Type"] == "application/pdf" and raw.content.startswith(b"%PDF-")
    as_json = requests.get(f"{fhir}/{url}", headers={**auth, "Accept": "application/fhir+json"}).json()
    assert as_json["resourceType"] == "Binary" and base64.b64decode(as_json["content"]) == raw.content
    as_xml = _xml(requests.get(f"{fhir}/{url}", headers={**auth, "Accept": "application/fhir+xml"}))
    assert base64.b64decode(as_xml.find(f"{FHIR_NS}content").get("value")) == raw.content


def test_capability_statement_names_both_formats(node_pair) -> None:
    fhir, _auth = _context(node_pair)
    statement = requests.get(f"{fhir}/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert set(statement["format"]) == {"application/fhir+json", "application/fhir+xml"}
    assert json.loads(requests.get(f"{fhir}/metadata", params={"_format": "json"}).content)["fhirVersion"] == "3.0.2"


def test_an_accept_that_admits_no_format_we_answer_in_is_406_and_open_ones_are_served(node_pair) -> None:
    """The simulator answers what Accept admits or says 406 (HTTP-005 judges the answer against the same header)."""
    from validators.rules.http import check_accept_honoured

    fhir, auth = _context(node_pair)
    for accept in ("text/csv", "image/png, text/html;q=0.9"):
        refused = requests.get(f"{fhir}/Condition", headers={**auth, "Accept": accept})
        assert refused.status_code == 406, (accept, refused.text)
        outcome = refused.json()
        assert outcome["resourceType"] == "OperationOutcome" and accept in outcome["issue"][0]["diagnostics"]
    for accept in ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/*", "",
                   "application/json", "text/csv;q=0"):
        served = requests.get(f"{fhir}/Condition", headers={**auth, "Accept": accept})
        assert served.status_code == 200, (accept, served.text)
        assert check_accept_honoured(accept, None, served.headers["Content-Type"]) == [], accept
    documents = requests.get(f"{fhir}/DocumentReference", params={"status": "current"}, headers=auth).json()
    url = documents["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    assert requests.get(f"{fhir}/{url}", headers={**auth, "Accept": "text/csv"}).status_code == 406
    raw = requests.get(f"{fhir}/{url}", headers={**auth, "Accept": "application/*"})
    assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/pdf"
