"""The simulator as receiving node refuses a Notification Task naming the wrong organisations (SPEC §4: owner is the
receiving organisation, requester.onBehalfOf the sending one), and says what is wrong in the Task, not in the token.

A sender's mix-up seen in the field: its own URA as Task.owner. The answer must name Task.owner and the simulator's
URA, and never blame the notification token's `sub`, which was right.
"""
from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
import requests

from speeltuin.records import NotificationOrigin
from tests.conftest import LiveNode
from tests.simulator.helpers import pair_sessions

SIMULATOR_URA, VENDOR_URA = "90000101", "90000202"  # the node_pair's: the simulator receives, the vendor sends


class Sender:
    """The reference vendor as sender in session sim-1, with a notification token and a valid Task it delivered."""

    def __init__(self, node_pair: tuple[LiveNode, LiveNode]) -> None:
        self.sim, self.ven = node_pair
        endpoints = pair_sessions(self.sim, self.ven, vendor_role="sender")
        self.url, token_url = endpoints["notification_url"], endpoints["token_url"]
        self.sim.runtime.config.auto_pull = False
        answer = self.ven.api("POST", "/sessions/ven-1/notify", json={"bsn": "999993653"})
        assert answer.json()["delivery"]["status"] == 201, answer.text
        self.task: dict[str, Any] = answer.json()["task"]
        token = requests.post(token_url, timeout=30,
                              data=self.ven.runtime.signer.token_request_form("ven", VENDOR_URA, token_url))
        self.auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def post(self, *, owner: str | None = None, requester: str | None = None) -> requests.Response:
        task = copy.deepcopy(self.task)
        task.pop("id", None)
        task["identifier"][0]["value"] = f"urn:uuid:{uuid.uuid4()}"
        if owner is not None:
            task["owner"]["identifier"]["value"] = owner
        if requester is not None:
            task["requester"]["onBehalfOf"]["identifier"]["value"] = requester
        return requests.post(self.url, json=task, headers={**self.auth, "Content-Type": "application/fhir+json"},
                             timeout=30)

    def stored(self) -> int:
        return len([n for n in self.sim.runtime.store.list_notifications("sim-1")
                    if n.origin == NotificationOrigin.RECEIVED])


@pytest.fixture
def sender(node_pair: tuple[LiveNode, LiveNode]) -> Sender:
    return Sender(node_pair)


def _issues(response: requests.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", response.text
    return body["issue"]


def test_the_senders_own_ura_as_owner_is_named_as_a_wrong_task_owner(sender: Sender) -> None:
    before = sender.stored()
    answer = sender.post(owner=VENDOR_URA)
    assert answer.status_code == 403, answer.text
    first, *findings = _issues(answer)
    assert first["diagnostics"] == (f"Task.owner is URA {VENDOR_URA}, but the receiver in this session is the "
                                    f"simulator, URA {SIMULATOR_URA} (that is the sender's own URA, which belongs in "
                                    "requester.onBehalfOf)")
    [finding] = findings
    assert finding["diagnostics"].startswith(f"TOK-011: Task.owner URA '{VENDOR_URA}' is not the receiving "
                                             f"organisation '{SIMULATOR_URA}'")
    assert finding["expression"] == ["Task.owner.identifier.value"]
    assert "jwt" not in answer.text and "sub " not in answer.text  # the token was right: it is not blamed
    assert sender.stored() == before


def test_another_organisation_as_owner_is_refused_without_the_mix_up_hint(sender: Sender) -> None:
    answer = sender.post(owner="87654321")
    assert answer.status_code == 403, answer.text
    assert _issues(answer)[0]["diagnostics"] == ("Task.owner is URA 87654321, but the receiver in this session is "
                                                 f"the simulator, URA {SIMULATOR_URA}")


def test_swapped_organisations_are_both_named_in_one_answer(sender: Sender) -> None:
    answer = sender.post(owner=VENDOR_URA, requester=SIMULATOR_URA)
    assert answer.status_code == 403, answer.text
    first, *findings = _issues(answer)
    assert "Task.owner is URA 90000202" in first["diagnostics"]
    assert (f"Task.requester.onBehalfOf is URA {SIMULATOR_URA}, but the sender in this session is the vendor, URA "
            f"{VENDOR_URA}") in first["diagnostics"]
    assert "(that is the receiver's URA, which belongs in owner)" in first["diagnostics"]
    assert [(f["diagnostics"].split(":")[0], f["expression"]) for f in findings] == [
        ("TOK-011", ["Task.owner.identifier.value"]), ("TOK-014", ["Task.requester.onBehalfOf.identifier.value"])]


def test_a_wrong_requester_alone_is_named_at_the_task(sender: Sender) -> None:
    answer = sender.post(requester="87654321")
    assert answer.status_code == 403, answer.text
    first, finding = _issues(answer)
    assert first["diagnostics"].startswith("Task.requester.onBehalfOf is URA 87654321, but the sender in this "
                                           f"session is the vendor, URA {VENDOR_URA}")
    assert "belongs in owner" not in first["diagnostics"]
    assert finding["diagnostics"].startswith("TOK-014: ") and \
        finding["expression"] == ["Task.requester.onBehalfOf.identifier.value"]


def test_the_right_organisations_are_accepted(sender: Sender) -> None:
    answer = sender.post()
    assert answer.status_code == 201, answer.text
