"""Fuzzing the notification endpoint `POST /s/<session>/notify/Task` and the cancellation
`PUT /s/<session>/notify/Task?identifier=...` (SPEC §3-§4) with a valid notification token.

Whatever the body (any JSON value, a valid Task with random edits, raw bytes) and content type: never a 5xx, never
a traceback; an error is a FHIR OperationOutcome, and a refused Task stores no notification (a refused cancellation
changes none).
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz.conftest import (
    NASTY_TEXT,
    NOTIFY_SESSION,
    FuzzNode,
    assert_no_traceback,
    assert_operation_outcome,
    content_types,
    dumps,
    fuzz,
    json_texts,
    json_values,
    mutated,
    raw_bodies,
)

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def notifying(node: FuzzNode) -> dict[str, Any]:
    """A notification token, a valid Task to start from, and one accepted notification to cancel."""
    token = node.notification_token()
    accepted = node.client.post(f"/s/{NOTIFY_SESSION}/notify/Task", json=node.notification_task(),
                                content_type=FHIR_JSON, headers={"Authorization": f"Bearer {token}"})
    assert accepted.status_code == 201, accepted.text
    stored = accepted.json
    return {"token": token, "task": node.notification_task(), "stored": stored,
            "identifier": f"{stored['identifier'][0]['system']}|{stored['identifier'][0]['value']}"}


def _notifications(node: FuzzNode) -> list[Any]:
    return node.store.list_notifications(NOTIFY_SESSION)


def _check(answer: Any, accepted: tuple[int, ...]) -> bool:
    """The endpoint's invariants for one answer; True when it accepted the Task."""
    text = answer.get_data(as_text=True)
    assert answer.status_code < 500, f"{answer.status_code}: {text[:2000]}"
    assert_no_traceback(text)
    event(str(answer.status_code))
    if answer.status_code in accepted:
        body = json.loads(text)
        assert isinstance(body, dict) and body.get("resourceType") == "Task", text[:2000]
        return True
    assert answer.status_code >= 400, f"{answer.status_code}: {text[:2000]}"
    assert_operation_outcome(answer)
    return False


@st.composite
def bodies(draw: st.DrawFn, base: dict) -> tuple[bytes, str | None]:
    """A body and its Content-Type: a valid Task with random edits, any JSON value, or raw bytes."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "bytes"]))
    if kind == "mutated":
        body = dumps(draw(mutated(base, min_mutations=0, max_mutations=4))).encode()
    elif kind == "json":
        body = draw(json_texts).encode("utf-8", "surrogatepass")
    else:
        body = draw(raw_bodies)
    content_type = draw(st.sampled_from([FHIR_JSON, "application/json"])) if draw(st.integers(0, 3)) else \
        draw(content_types)
    return body, content_type


def _headers(token: str, content_type: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


@fuzz(150)
@given(data=st.data())
def test_any_body_posted_as_a_task_is_stored_or_refused_with_an_operation_outcome(
        node: FuzzNode, notifying: dict[str, Any], data: st.DataObject) -> None:
    body, content_type = data.draw(bodies(notifying["task"]))
    before = len(_notifications(node))
    answer = node.client.post(f"/s/{NOTIFY_SESSION}/notify/Task", data=body,
                              headers=_headers(notifying["token"], content_type))
    stored = _check(answer, accepted=(201,))
    after = len(_notifications(node))
    assert after == before + (1 if stored else 0), f"{answer.status_code} and {after - before} new notifications"


@fuzz(120)
@given(data=st.data(), identifier=st.one_of(st.none(), st.text(max_size=30), st.sampled_from(NASTY_TEXT)))
def test_any_cancellation_is_applied_or_refused_with_an_operation_outcome(
        node: FuzzNode, notifying: dict[str, Any], data: st.DataObject, identifier: str | None) -> None:
    original = notifying["stored"]
    cancellation = {**original, "status": "cancelled"}
    cancellation.pop("id", None)
    body, content_type = data.draw(bodies(cancellation))
    query = notifying["identifier"] if identifier is None else identifier
    before = [(n.id, n.status, json.dumps(n.task, sort_keys=True)) for n in _notifications(node)]
    answer = node.client.put(f"/s/{NOTIFY_SESSION}/notify/Task?identifier="
                             f"{quote(query.encode('utf-8', 'surrogatepass'), safe='|:')}", data=body,
                             headers=_headers(notifying["token"], content_type))
    applied = _check(answer, accepted=(200,))
    after = [(n.id, n.status, json.dumps(n.task, sort_keys=True)) for n in _notifications(node)]
    if not applied:
        assert after == before, f"a refused cancellation ({answer.status_code}) changed a notification"
    else:
        assert len(after) == len(before), "a cancellation stored a new notification"


@fuzz(60)
@given(value=json_values)
def test_any_json_value_as_the_whole_body_is_refused_with_an_operation_outcome(
        node: FuzzNode, notifying: dict[str, Any], value: Any) -> None:
    before = len(_notifications(node))
    answer = node.client.post(f"/s/{NOTIFY_SESSION}/notify/Task", data=dumps(value),
                              headers=_headers(notifying["token"], FHIR_JSON))
    assert not _check(answer, accepted=(201,))
    assert len(_notifications(node)) == before


# --- plain regressions --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("surrogate", [b'"\\ud800"', b'"\xed\xa0\x80"'], ids=["escaped", "utf8-like-bytes"])
def test_a_task_with_a_lone_surrogate_is_a_400_and_stores_nothing(node: FuzzNode, notifying: dict[str, Any],
                                                                   surrogate: bytes) -> None:
    """Found by the Task property: a valid Task with `"x": "\\ud800"` added was stored, then its 201 answer could
    not be written as UTF-8 (500 UnicodeEncodeError). validators.safe_json now refuses a lone surrogate."""
    before = len(_notifications(node))
    body = json.dumps(node.notification_task()).encode()[:-1] + b', "x": ' + surrogate + b"}"
    answer = node.client.post(f"/s/{NOTIFY_SESSION}/notify/Task", data=body,
                              headers=_headers(notifying["token"], FHIR_JSON))
    # escaped: a lone surrogate; as bytes: no UTF-8 at all (what such bytes are)
    assert answer.status_code == 400 and ("surrogate" in answer.text or "not UTF-8" in answer.text), answer.text
    assert_operation_outcome(answer)
    assert len(_notifications(node)) == before


def test_an_escaped_surrogate_pair_is_one_character_and_accepted(node: FuzzNode, notifying: dict[str, Any]) -> None:
    body = json.dumps(node.notification_task(), ensure_ascii=True).encode()[:-1] + b', "x": "\\ud83d\\ude00"}'
    answer = node.client.post(f"/s/{NOTIFY_SESSION}/notify/Task", data=body,
                              headers=_headers(notifying["token"], FHIR_JSON))
    assert answer.status_code == 201, answer.text
