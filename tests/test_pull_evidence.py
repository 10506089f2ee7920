"""What a receiver pulled of a notification the simulator sent, against what it offered (speeltuin.pull_evidence)."""
from __future__ import annotations

from speeltuin.pull_evidence import pull_evidence
from speeltuin.records import Notification, NotificationOrigin
from speeltuin.store import PullMade

PARAMETER = "http://fhir.nl/fhir/NamingSystem/TaskParameter"
BASE = "https://sim.example/s/one/fhir"


def _input(code: str, **value: object) -> dict:
    return {"type": {"coding": [{"system": PARAMETER, "code": code}]}, **value}


def _notification(workflow_task: dict | None = None) -> Notification:
    task = {"resourceType": "Task", "basedOn": [{"reference": "Task/wf-1"}], "input": [
        _input("authorization-base", valueString="base"),
        _input("search-resource", valueString="Condition"),
        _input("search-resource", valueString="Observation/$lastn?code=http://loinc.org%7C85354-9"),
        _input("search-resource", valueString="DocumentReference?status=current"),
        *([_input("get-workflow-task", valueBoolean=True)] if workflow_task else [])]}
    return Notification(id="n-1", session_id="one", origin=NotificationOrigin.SENT, identifier="urn:uuid:1",
                        group_identifier="urn:uuid:2", authorization_base="base", patient_bsn="999993653",
                        owner_ura="90000202", period_end=0.0, status="requested", task=task,
                        workflow_task=workflow_task)


def _pull(path: str, status: int = 200, tag: str = "search") -> PullMade:
    return PullMade(tag, "GET", f"{BASE}/{path}", status, 0.0)


def test_nothing_pulled_yet() -> None:
    evidence = pull_evidence(_notification(), [])
    assert evidence.summary() == "not pulled yet"
    assert len(evidence.offered) == 3 and evidence.missing == evidence.offered


def test_every_offer_pulled_with_its_letter() -> None:
    pulls = [_pull("Condition", 503), _pull("Condition"), _pull("Observation/$lastn?code=http://loinc.org|85354-9"),
             _pull("DocumentReference?status=current"), _pull("Binary/letter-1", tag="binary")]
    evidence = pull_evidence(_notification(), pulls)
    assert evidence.missing == () and evidence.documents == 1 and evidence.not_offered == ()
    assert evidence.summary() == "3 of 3 offered pulled, 1 document; 1 refused"  # the 503 retried


def test_what_is_missing_and_what_was_not_offered() -> None:
    pulls = [_pull("Condition"), _pull("Flag"), _pull("Flag?_count=5"), _pull("DocumentReference", 401)]
    evidence = pull_evidence(_notification(), pulls)
    assert evidence.pulled == ("Condition",)
    assert evidence.missing == ("Observation/$lastn?code=http://loinc.org%7C85354-9",
                                "DocumentReference?status=current")
    assert evidence.not_offered == ("Flag", "Flag?_count=5")
    assert evidence.summary() == "1 of 3 offered pulled, 0 documents; 2 searches not offered; 1 refused"
    assert evidence.to_dict()["missing"] == list(evidence.missing)


def test_the_workflow_tasks_queries_are_offered_too() -> None:
    workflow = {"resourceType": "Task", "id": "wf-1",
                "input": [_input("search-resource", valueString="AllergyIntolerance")]}
    evidence = pull_evidence(_notification(workflow), [_pull("Task/wf-1", tag="read"), _pull("AllergyIntolerance")])
    assert "Task/wf-1" in evidence.pulled and "AllergyIntolerance" in evidence.pulled
    assert evidence.not_offered == () and len(evidence.offered) == 5
