"""Notification Tasks and cancellations in FHIR XML at the simulator's notification endpoint (SPEC §3 steps 3 and 8,
§6.4): read by the one FHIR reader, judged as JSON is judged, answered in the format asked or else the one sent."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from lxml import etree

from simulator.fhir.format import to_xml
from speeltuin.records import Notification, NotificationOrigin
from tests.conftest import LiveNode
from tests.simulator.helpers import pair_sessions

BSN = "999993653"
FHIR = "{http://hl7.org/fhir}"
XML = "application/fhir+xml"


def hand_written_task(*, status: str = "requested", identifier: str | None = None, group: str | None = None,
                      authorization_base: str = "hand-base-1", sender_ura: str = "90000202",
                      receiver_ura: str = "90000101", authored_on: datetime | None = None,
                      swap_status_and_intent: bool = False) -> bytes:
    """A Notification Task written by hand from the STU3 Task definition (element order: identifier,
    groupIdentifier, status, intent, code, for, authoredOn, requester, owner, restriction, input), not by our writer;
    available for 30 days from `authored_on` (now). `swap_status_and_intent`: the order defect STRUCT-005 names."""
    now = authored_on or datetime.now(timezone.utc).replace(microsecond=0)
    status_intent = f'<status value="{status}"/>\n  <intent value="proposal"/>'
    if swap_status_and_intent:
        status_intent = f'<intent value="proposal"/>\n  <status value="{status}"/>'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a TA Notified Pull Notification Task, written by hand -->
<Task xmlns="http://hl7.org/fhir">
  <identifier>
    <system value="urn:ietf:rfc:3986"/>
    <value value="{identifier or f'urn:uuid:{uuid.uuid4()}'}"/>
  </identifier>
  <groupIdentifier>
    <system value="urn:ietf:rfc:3986"/>
    <value value="{group or f'urn:uuid:{uuid.uuid4()}'}"/>
  </groupIdentifier>
  {status_intent}
  <code>
    <coding>
      <system value="http://fhir.nl/fhir/NamingSystem/TaskCode"/>
      <code value="pull-notification"/>
    </coding>
  </code>
  <for>
    <identifier>
      <system value="http://fhir.nl/fhir/NamingSystem/bsn"/>
      <value value="{BSN}"/>
    </identifier>
    <display value="Suzanne Moulin"/>
  </for>
  <authoredOn value="{now.isoformat()}"/>
  <requester>
    <agent>
      <identifier>
        <system value="http://fhir.nl/fhir/NamingSystem/ura"/>
        <value value="{sender_ura}"/>
      </identifier>
    </agent>
    <onBehalfOf>
      <identifier>
        <system value="http://fhir.nl/fhir/NamingSystem/ura"/>
        <value value="{sender_ura}"/>
      </identifier>
    </onBehalfOf>
  </requester>
  <owner>
    <identifier>
      <system value="http://fhir.nl/fhir/NamingSystem/ura"/>
      <value value="{receiver_ura}"/>
    </identifier>
  </owner>
  <restriction>
    <period>
      <end value="{(now + timedelta(days=30)).isoformat()}"/>
    </period>
  </restriction>
  <input>
    <type>
      <coding>
        <system value="http://fhir.nl/fhir/NamingSystem/TaskParameter"/>
        <code value="authorization-base"/>
      </coding>
    </type>
    <valueString value="{authorization_base}"/>
  </input>
  <input>
    <type>
      <coding>
        <system value="http://loinc.org"/>
        <code value="79191-3"/>
        <display value="Patient demographics"/>
      </coding>
    </type>
    <valueString value="Patient?_include=Patient%3Ageneral-practitioner"/>
  </input>
  <input>
    <type>
      <coding>
        <system value="http://fhir.nl/fhir/NamingSystem/TaskParameter"/>
        <code value="search-resource"/>
      </coding>
    </type>
    <valueString value="Condition"/>
  </input>
</Task>
""".encode()


class Receiver:
    """The simulator as receiving node (session sim-1), the reference vendor as sender (ven-1), a notification token."""

    def __init__(self, node_pair: tuple[LiveNode, LiveNode]) -> None:
        self.sim, self.ven = node_pair
        endpoints = pair_sessions(self.sim, self.ven, vendor_role="sender")
        self.url = endpoints["notification_url"]
        token_url = endpoints["token_url"]
        token = requests.post(token_url, data=self.ven.runtime.signer.token_request_form("ven", "90000202",
                                                                                          token_url), timeout=30)
        self.auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def received(self) -> list[Notification]:
        return [n for n in self.sim.runtime.store.list_notifications("sim-1")
                if n.origin == NotificationOrigin.RECEIVED]

    def post(self, body: bytes, content_type: str = XML, **headers: str) -> requests.Response:
        return requests.post(self.url, data=body, headers={**self.auth, "Content-Type": content_type, **headers},
                             timeout=30)

    def cancel(self, body: bytes, identifier: str, content_type: str = XML, **headers: str) -> requests.Response:
        return requests.put(self.url, data=body, params={"identifier": f"urn:ietf:rfc:3986|{identifier}"},
                            headers={**self.auth, "Content-Type": content_type, **headers}, timeout=30)

    def sent_by_vendor(self) -> dict[str, Any]:
        """A Task the reference vendor built and delivered (as JSON) to the simulator, which keeps it unpulled."""
        self.sim.runtime.config.auto_pull = False
        answer = self.ven.api("POST", "/sessions/ven-1/notify", json={"bsn": BSN})
        assert answer.json()["delivery"]["status"] == 201, answer.text
        return answer.json()["task"]


@pytest.fixture
def receiver(node_pair: tuple[LiveNode, LiveNode]) -> Receiver:
    return Receiver(node_pair)


def _xml(response: requests.Response, root: str) -> etree._Element:
    assert response.headers["Content-Type"].startswith(XML), (response.status_code, response.headers)
    element = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))
    assert element.tag == FHIR + root, response.text
    return element


def _issues(response: requests.Response) -> str:
    """The OperationOutcome's diagnostics, in whichever format it came."""
    if response.headers["Content-Type"].startswith(XML):
        outcome = _xml(response, "OperationOutcome")
        return "\n".join(d.get("value") for d in outcome.iter(FHIR + "diagnostics"))
    assert response.json()["resourceType"] == "OperationOutcome", response.text
    return "\n".join(issue.get("diagnostics", "") for issue in response.json()["issue"])


def _wait_pulled(receiver: Receiver, notification_id: str, timeout: float = 60.0) -> Notification:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = receiver.sim.runtime.store.get_notification(notification_id)
        if found is not None and found.pull_status in ("done", "failed", "stopped"):
            return found
        time.sleep(0.1)
    raise AssertionError(f"the pull of {notification_id} did not finish within {timeout:.0f} s")


def test_an_xml_task_is_stored_like_its_json_twin_answered_in_xml_and_pulled(receiver: Receiver) -> None:
    task = receiver.sent_by_vendor()
    [as_json] = receiver.received()
    receiver.sim.runtime.config.auto_pull = True
    answer = receiver.post(to_xml(task))  # no preference (requests says Accept: */*): the answer is XML as sent
    assert answer.status_code == 201, answer.text
    echoed = _xml(answer, "Task")
    assert answer.headers["Location"].startswith(f"{receiver.sim.url}/s/sim-1/notify/Task/t-")
    notification_id = answer.headers["Location"].rsplit("/", 1)[1]
    assert echoed.find(FHIR + "id").get("value") == notification_id
    stored = receiver.sim.runtime.store.get_notification(notification_id)
    assert stored is not None and stored.id != as_json.id
    assert {**stored.task, "id": None} == {**as_json.task, "id": None}  # the same Task, whichever format it came in
    assert (stored.identifier, stored.authorization_base, stored.patient_bsn, stored.owner_ura) == (
        as_json.identifier, as_json.authorization_base, as_json.patient_bsn, as_json.owner_ura)
    pulled = _wait_pulled(receiver, notification_id)
    assert pulled.pull_status == "done", pulled.pull_summary
    assert pulled.pull_summary["results"] and all(r["status"] == 200 for r in pulled.pull_summary["results"])
    read = requests.get(answer.headers["Location"], headers={**receiver.auth, "Accept": XML}, timeout=30)
    assert read.status_code == 200 and _xml(read, "Task").find(FHIR + "status").get("value") == "requested"


@pytest.mark.parametrize("content_type", [XML, "application/xml", "text/xml", "application/fhir+xml; charset=utf-8"])
def test_a_hand_written_xml_task_is_accepted_under_each_xml_media_type(receiver: Receiver, content_type: str) -> None:
    receiver.sim.runtime.config.auto_pull = False
    answer = receiver.post(hand_written_task(), content_type)
    assert answer.status_code == 201, answer.text
    _xml(answer, "Task")
    [stored] = receiver.received()
    assert stored.authorization_base == "hand-base-1" and stored.patient_bsn == BSN and stored.owner_ura == "90000101"
    assert stored.task["input"][1]["type"]["coding"][0]["display"] == "Patient demographics"


def test_the_answer_follows_accept_and_format_over_the_format_sent(receiver: Receiver) -> None:
    receiver.sim.runtime.config.auto_pull = False
    as_json = receiver.post(hand_written_task(), Accept="application/fhir+json")
    assert as_json.status_code == 201 and as_json.headers["Content-Type"].startswith("application/fhir+json")
    assert as_json.json()["resourceType"] == "Task"
    task = {key: value for key, value in as_json.json().items() if key != "id"}

    def fresh() -> dict[str, Any]:  # each create its own identifier
        return {**task, "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}]}

    _xml(receiver.post(to_xml(fresh()), Accept="application/fhir+json;q=0.4, application/fhir+xml"), "Task")
    by_format = requests.post(receiver.url, json=fresh(), params={"_format": "xml"},  # _format wins over Accept
                              headers={**receiver.auth, "Content-Type": "application/fhir+json",
                                       "Accept": "application/fhir+json"}, timeout=30)
    assert by_format.status_code == 201 and _xml(by_format, "Task") is not None
    assert len(receiver.received()) == 3
    # errors too: an OperationOutcome in the format asked, else the one sent
    no_token = requests.post(receiver.url, data=hand_written_task(), headers={"Content-Type": XML}, timeout=30)
    assert no_token.status_code == 401 and "Bearer" in no_token.headers["WWW-Authenticate"]
    _xml(no_token, "OperationOutcome")
    unsupported = receiver.post(hand_written_task(), "text/plain")
    assert unsupported.status_code == 415
    assert unsupported.json()["resourceType"] == "OperationOutcome"  # text/plain states no format: JSON
    for media in (XML, "application/xml", "text/xml", "application/fhir+json", "application/json"):
        assert media in _issues(unsupported)
    asked_xml = receiver.post(hand_written_task(), "text/plain", Accept=XML)
    assert asked_xml.status_code == 415 and "application/fhir+xml" in _issues(asked_xml)
    _xml(asked_xml, "OperationOutcome")
    refused = requests.post(receiver.url, data=hand_written_task(), params={"_format": "html"},
                            headers={**receiver.auth, "Content-Type": XML}, timeout=30)
    assert refused.status_code == 406 and "_format" in _issues(refused)
    assert len(receiver.received()) == 3  # neither the 415s nor the 406 stored anything


def test_an_xml_cancellation_is_accepted_and_answered_in_xml(receiver: Receiver) -> None:
    receiver.sim.runtime.config.auto_pull = False
    identifier, group = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    assert receiver.post(hand_written_task(identifier=identifier, group=group)).status_code == 201
    cancellation = hand_written_task(status="cancelled", identifier=identifier, group=group)
    malformed = receiver.cancel(cancellation.replace(b"</Task>", b""), identifier)
    assert malformed.status_code == 400 and "not well-formed" in _issues(malformed)
    [live] = receiver.received()
    assert live.status == "requested"  # the refused cancellation changed nothing
    answer = receiver.cancel(cancellation, identifier, "text/xml")
    assert answer.status_code == 200, answer.text
    echoed = _xml(answer, "Task")
    assert echoed.find(FHIR + "status").get("value") == "cancelled"
    assert echoed.find(FHIR + "id").get("value") == live.id
    [cancelled] = receiver.received()
    assert cancelled.status == "cancelled" and cancelled.task["status"] == "cancelled"
    as_json = receiver.cancel(cancellation, identifier, Accept="application/fhir+json")
    assert as_json.status_code == 200 and as_json.json()["status"] == "cancelled"
    unknown = receiver.cancel(hand_written_task(status="cancelled"), f"urn:uuid:{uuid.uuid4()}")
    assert unknown.status_code == 404 and _xml(unknown, "OperationOutcome") is not None


_EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Task [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Task xmlns="http://hl7.org/fhir"><status value="&secret;"/><intent value="proposal"/></Task>"""
_PATIENT = b"""<Patient xmlns="http://hl7.org/fhir">
  <identifier><system value="http://fhir.nl/fhir/NamingSystem/bsn"/><value value="999993653"/></identifier>
  <name><family value="Moulin"/></name>
</Patient>"""


@pytest.mark.parametrize("body,said", [
    (b"<Task xmlns='http://hl7.org/fhir'><status value='requested'></Task>", "not well-formed"),
    (_EXTERNAL_ENTITY, "DOCTYPE"),
    (_PATIENT, "NOTIF-001"),
    (hand_written_task().replace(b'xmlns="http://hl7.org/fhir"', b'xmlns="http://hl7.org/fhir/other"'),
     "not in the FHIR namespace"),
    (hand_written_task().replace(b'xmlns="http://hl7.org/fhir"', b""), "not in the FHIR namespace"),
    (b'{"resourceType": "Task", "status": "requested"}', "Content-Type"),  # JSON sent as XML
    (b"", "empty"),
], ids=["not-well-formed", "external-entity", "patient", "other-namespace", "no-namespace", "json-as-xml", "empty"])
def test_a_malformed_xml_body_is_a_400_operation_outcome_and_nothing_is_stored(receiver: Receiver, body: bytes,
                                                                               said: str) -> None:
    answer = receiver.post(body)
    assert answer.status_code == 400, answer.text
    assert said in _issues(answer)  # in XML: the client sent XML and stated no preference
    assert "root:" not in answer.text  # /etc/passwd was never read
    asked = receiver.post(body, Accept="application/fhir+json")
    assert asked.status_code == 400 and asked.json()["resourceType"] == "OperationOutcome"
    assert receiver.received() == []


def test_an_xml_order_defect_is_judged_as_an_invalid_task(receiver: Receiver) -> None:
    answer = receiver.post(hand_written_task(swap_status_and_intent=True))
    assert answer.status_code == 400, answer.text
    issues = _issues(answer)
    assert "the Task is not valid; nothing was stored" in issues and "STRUCT-005" in issues, issues
    outcome = _xml(answer, "OperationOutcome")
    assert "Task.intent" in [e.get("value") for e in outcome.iter(FHIR + "expression")] or \
        "Task.status" in [e.get("value") for e in outcome.iter(FHIR + "expression")]
    # the same judgement for JSON's reading defect: a key given twice
    twice = b'{"resourceType": "Task", "status": "requested", "status": "requested", "intent": "proposal"}'
    duplicate = receiver.post(twice, "application/fhir+json")
    assert duplicate.status_code == 400 and "STRUCT-004" in _issues(duplicate)
    assert receiver.received() == []


def test_task_content_the_xml_writer_cannot_carry_is_no_500(receiver: Receiver) -> None:
    """A Task kept as received may hold an element STU3 does not define; asked for XML, it cannot be echoed."""
    receiver.sim.runtime.config.auto_pull = False
    extra = hand_written_task().replace(b"</Task>", b'<madeUp value="x"/></Task>')
    answer = receiver.post(extra)
    assert answer.status_code == 201 and "Location" in answer.headers, answer.text
    assert "read it in JSON" in _issues(answer)
    read_xml = requests.get(answer.headers["Location"], headers={**receiver.auth, "Accept": XML}, timeout=30)
    assert read_xml.status_code == 406 and "JSON" in _issues(read_xml)
    read_json = requests.get(answer.headers["Location"], headers=receiver.auth, timeout=30)
    assert read_json.status_code == 200 and read_json.json()["madeUp"] == "x"


def test_a_lone_surrogate_in_json_is_a_400(receiver: Receiver) -> None:
    body = b'{"resourceType": "Task", "status": "requested", "intent": "proposal", "note": [{"text": "\\ud800"}]}'
    answer = receiver.post(body, "application/fhir+json")
    assert answer.status_code == 400 and answer.json()["resourceType"] == "OperationOutcome"
    assert receiver.received() == []
