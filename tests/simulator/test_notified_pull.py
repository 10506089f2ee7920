"""Both roles end to end without the proxy: notify, token, pull, documents, cancellation (SPEC §3)."""
from __future__ import annotations

import copy
import json

import requests

from validators.task_reader import pull_targets
from speeltuin.records import NotificationOrigin
from tests.simulator.helpers import pair_sessions, wait_for_pull

BSN = "999993653"


def test_simulator_as_sender_is_pulled_by_a_receiver(node_pair) -> None:
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    result = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": BSN})
    assert result.status_code == 200, result.text
    assert result.json()["delivery"]["status"] == 201
    assert "/s/ven-1/notify/Task/" in result.json()["delivery"]["location"]
    pulled = wait_for_pull(ven, "ven-1")
    assert pulled.pull_status == "done", pulled.pull_summary
    results = pulled.pull_summary["results"]
    assert len(results) == len(pull_targets(result.json()["task"])) == 29
    assert all(r["status"] == 200 for r in results)
    assert sum(1 for r in results if r.get("entries")) >= 28  # the full patient answers every BgZ query
    documents = pulled.pull_summary["documents"]
    assert documents and all(d["pdf"] and d["content_type"] == "application/pdf" for d in documents)


def test_both_roles_on_postgresql(postgres_node_pair) -> None:
    sim, ven = postgres_node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    result = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": BSN})
    assert result.json()["delivery"]["status"] == 201, result.text
    pulled = wait_for_pull(ven, "ven-1")
    assert pulled.pull_status == "done", pulled.pull_summary
    assert sim.runtime.store.engine.dialect.name == "postgresql"
    assert len(sim.runtime.store.list_notifications("sim-1")) == 1


def test_simulator_as_receiver_pulls_from_a_sender(node_pair) -> None:
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="sender")
    result = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": "999990639"})
    assert result.json()["delivery"]["status"] == 201, result.text
    pulled = wait_for_pull(sim, "sim-1")
    assert pulled.pull_status == "done", pulled.pull_summary
    assert pulled.patient_bsn == "999990639"


def test_bad_task_is_refused_and_nothing_stored(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="sender")
    ven.runtime.config.auto_pull = False
    good = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": BSN}).json()["task"]
    url = endpoints["token_url"]
    token = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url)).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/fhir+json"}
    before = len(sim.runtime.store.list_notifications("sim-1"))

    bad = copy.deepcopy(good)
    bad["identifier"] = bad["identifier"][0]  # the known defect: an object instead of an array
    refused = requests.post(endpoints["notification_url"], json=bad, headers=headers)
    assert refused.status_code == 400
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome" and len(outcome["issue"]) >= 2
    assert requests.post(endpoints["notification_url"], data=b"{not json", headers=headers).status_code == 400
    assert requests.post(endpoints["notification_url"], json=good,
                         headers={**headers, "Content-Type": "text/plain"}).status_code == 415
    assert requests.post(endpoints["notification_url"], json=good,
                         headers={"Content-Type": "application/fhir+json"}).status_code == 401
    assert len(sim.runtime.store.list_notifications("sim-1")) == before


def test_conditional_update_cancels_a_notification(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="sender")
    sim.runtime.config.auto_pull = False
    task = ven.api("POST", "/sessions/ven-1/notify", json={"bsn": BSN}).json()["task"]
    url = endpoints["token_url"]
    token = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url)).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/fhir+json"}
    identifier = task["identifier"][0]
    cancel = {**task, "status": "cancelled"}
    response = requests.put(endpoints["notification_url"], json=cancel, headers=headers,
                            params={"identifier": f"{identifier['system']}|{identifier['value']}"})
    assert response.status_code == 200, response.text
    stored = [n for n in sim.runtime.store.list_notifications("sim-1") if n.origin == NotificationOrigin.RECEIVED]
    assert stored[0].status == "cancelled"
    unknown = requests.put(endpoints["notification_url"], json=cancel, headers=headers,
                           params={"identifier": "urn:ietf:rfc:3986|urn:uuid:00000000-0000-0000-0000-000000000000"})
    assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"


def test_sender_cancellation_reaches_the_receiver_and_ends_access(node_pair) -> None:
    sim, ven = node_pair
    endpoints = pair_sessions(sim, ven, vendor_role="receiver")
    ven.runtime.config.auto_pull = False
    sent = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": BSN}).json()
    base = sent["task"]["input"][0]["valueString"]
    url = endpoints["token_url"]
    token = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url, base)).json()

    cancelled = sim.api("POST", f"/sessions/sim-1/notifications/{sent['notification_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["delivery"]["status"] == 200, cancelled.text
    [received] = ven.runtime.store.list_notifications("ven-1")
    assert received.status == "cancelled"
    refused = requests.post(url, data=ven.runtime.signer.token_request_form("ven", "90000202", url, base))
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    after = requests.get(f"{endpoints['fhir_base']}/Condition",
                         headers={"Authorization": f"Bearer {token['access_token']}"})
    assert after.status_code == 401
    again = sim.api("POST", f"/sessions/sim-1/notifications/{sent['notification_id']}/cancel")
    assert again.status_code == 400 and "cancelled already" in again.json()["error"]


def test_workflow_task_is_offered_and_followed(node_pair) -> None:
    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    sent = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": BSN, "workflow_task": True}).json()
    task = sent["task"]
    [based_on] = task["basedOn"]
    assert based_on["reference"].startswith("Task/wf-")
    wants = next(i for i in task["input"] if i["type"]["coding"][0]["code"] == "get-workflow-task")
    assert wants["valueBoolean"] is True
    pulled = wait_for_pull(ven, "ven-1")
    assert pulled.pull_status == "done", pulled.pull_summary
    first = pulled.pull_summary["results"][0]
    assert (first["kind"], first["path"], first["status"]) == ("read", based_on["reference"], 200)
    assert len(pulled.pull_summary["results"]) == 30


def test_imported_patient_is_notified_and_pulled(node_pair) -> None:
    sim, ven = node_pair
    entry = {"bsn": "999990020", "given": "Zoë", "family": "Çağlar", "birth_date": "1990-02-03", "sex": "F",
             "letters": 2, "street": "Kerkstraat 1", "postal_code": "1234 AB", "city": "Utrecht"}
    bad = sim.api("POST", "/patients", data=json.dumps([entry, {**entry, "bsn": "999999245"}]))
    assert bad.status_code == 400 and "999999245" in bad.json()["error"]
    assert "999990020" not in [p["bsn"] for p in sim.api("GET", "/patients").json()]  # all or nothing
    assert sim.api("POST", "/patients", data=json.dumps([entry])).status_code == 201
    assert "999990020" in [p["bsn"] for p in sim.api("GET", "/patients").json()]
    pair_sessions(sim, ven, vendor_role="receiver")
    assert sim.api("POST", "/sessions/sim-1/notify", json={"bsn": "999990020"}).json()["delivery"]["status"] == 201
    pulled = wait_for_pull(ven, "ven-1")
    assert pulled.pull_status == "done", pulled.pull_summary
    assert len(pulled.pull_summary["documents"]) == 2


def test_built_tasks_pass_our_own_validators() -> None:
    from datetime import datetime, timedelta, timezone

    from simulator.outbound.task_builder import build_notification_task, build_workflow_task
    from validators.rules.notification import check_notification_task
    from validators.rules.workflow_task import check_workflow_task

    now = datetime.now(timezone.utc).replace(microsecond=0)
    parties = dict(bsn=BSN, patient_name="Suzanne Moulin", sender_ura="90000101", sender_name="sim",
                   receiver_ura="90000202", authored_on=now)
    workflow = build_workflow_task(task_id="wf-1", **parties)
    task = build_notification_task(**parties, authorization_base="b", period_end=now + timedelta(days=1),
                                   workflow_task_id="wf-1")
    assert check_workflow_task(workflow, notification=task) == []
    assert check_notification_task(task) == []
    # the same queries in both; the Workflow Task types each by its BgZ section code (SPEC §3 step 1, §6)
    from validators.spec import BGZ_QUERIES, DOCUMENTS_QUERY

    listed = [(i["type"]["coding"][0]["code"], i["valueString"]) for i in workflow["input"]]
    assert [code for code, _query in listed] == [q.type_code for q in (*BGZ_QUERIES, DOCUMENTS_QUERY)]
    assert [query for _code, query in listed] == [i["valueString"] for i in task["input"]
                                                   if i["type"]["coding"][0]["code"] == "search-resource"]


def test_no_pull_after_cancellation_or_period_end(node_pair) -> None:
    """The puller makes no request at all for a cancelled or expired notification (not even for a token)."""
    import time as _time

    from simulator.outbound.puller import pull

    sim, ven = node_pair
    pair_sessions(sim, ven, vendor_role="receiver")
    ven.runtime.config.auto_pull = False
    sim.api("POST", "/sessions/sim-1/notify", json={"bsn": BSN})
    [received] = ven.runtime.store.list_notifications("ven-1")
    session = ven.runtime.store.get_session("ven-1")
    for change in ({"status": "cancelled"}, {"status": "requested", "period_end": _time.time() - 1}):
        ven.runtime.store.update_notification(received.id, **change)
        summary = pull(ven.runtime.store, ven.runtime.signer, session, received, timeout=5)
        assert summary["results"] == [] and "cancelled or its availability period ended" in summary["stopped"]
        assert ven.runtime.store.get_notification(received.id).pull_status == "stopped"
    # not even a pull token was asked for: the simulator issued none
    from sqlalchemy import func, select

    from speeltuin.store import tokens

    with sim.runtime.store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(tokens).where(tokens.c.kind == "pull")).scalar() == 0
