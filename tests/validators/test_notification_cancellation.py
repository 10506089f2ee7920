"""Cancellation (SPEC §3 step 8): the Notification Task again with status cancelled, as a conditional update."""
from __future__ import annotations

from typing import Callable

import pytest

from validators import spec
from validators.rules.notification import check_cancellation_request, check_cancellation_task

from ._cases import check_case, fires, quiet
from .test_notification import NOW, _input, good_task

BASE = "https://receiver.example.nl/fhir"
IDENTIFIER = good_task()["identifier"][0]
CONDITIONAL = f"{BASE}/Task?identifier={IDENTIFIER['system']}|{IDENTIFIER['value']}"
ENCODED = f"{BASE}/Task?identifier=urn%3Aietf%3Arfc%3A3986%7C{IDENTIFIER['value'].replace(':', '%3A')}"


def cancellation() -> dict:
    task = good_task()
    task["status"] = "cancelled"
    return task


def cancel(change: Callable[[dict], object] | None = None, *, with_original: bool = True) -> Callable[[], list]:
    def make() -> list:
        task = cancellation()
        if change is not None:
            change(task)
        return check_cancellation_task(task, original=good_task() if with_original else None, now=NOW)
    return make


def request(url: str, method: str = "PUT") -> Callable[[], list]:
    return lambda: check_cancellation_request(url, cancellation(), method=method)


CASES = [
    quiet("NOTIF-033", "cancelled", cancel()),
    fires("NOTIF-033", "requested", cancel(lambda t: t.update(status="requested"))),
    fires("NOTIF-033", "completed", cancel(lambda t: t.update(status="completed"))),
    quiet("NOTIF-034", "same-identifier", cancel()),
    quiet("NOTIF-034", "no-original-nothing-to-compare",
          cancel(lambda t: t["identifier"][0].update(value="urn:uuid:00000000-0000-4000-8000-000000000000"),
                 with_original=False)),
    fires("NOTIF-034", "new-identifier",
          cancel(lambda t: t["identifier"][0].update(value="urn:uuid:00000000-0000-4000-8000-000000000000"))),
    quiet("NOTIF-035", "same-group", cancel()),
    fires("NOTIF-035", "other-group",
          cancel(lambda t: t["groupIdentifier"].update(value="urn:uuid:00000000-0000-4000-8000-000000000001"))),
    quiet("NOTIF-036", "same-base", cancel()),
    fires("NOTIF-036", "other-base", cancel(lambda t: t["input"][0].update(valueString="another-base"))),
    fires("NOTIF-036", "base-dropped", cancel(lambda t: t["input"].pop(0))),
    quiet("NOTIF-037", "conditional-update", request(CONDITIONAL)),
    quiet("NOTIF-037", "percent-encoded", request(ENCODED)),
    quiet("NOTIF-037", "relative-url", request(f"Task?identifier={IDENTIFIER['system']}|{IDENTIFIER['value']}")),
    fires("NOTIF-037", "post", request(CONDITIONAL, method="POST")),
    fires("NOTIF-037", "update-by-id", request(f"{BASE}/Task/t-1")),
    fires("NOTIF-037", "no-identifier-parameter", request(f"{BASE}/Task?status=requested")),
    fires("NOTIF-037", "value-without-system", request(f"{BASE}/Task?identifier={IDENTIFIER['value']}")),
    fires("NOTIF-037", "two-identifiers", request(CONDITIONAL + "&identifier=urn:ietf:rfc:3986|urn:uuid:x")),
    quiet("NOTIF-038", "matching", request(CONDITIONAL)),
    fires("NOTIF-038", "other-value", request(f"{BASE}/Task?identifier={spec.RFC3986}|urn:uuid:other")),
    fires("NOTIF-038", "other-system", request(f"{BASE}/Task?identifier=http://x.nl/ids|{IDENTIFIER['value']}")),
    # A cancellation may arrive after the period ended (NOTIF-016 is for live notifications only).
    quiet("NOTIF-016", "cancellation-after-end",
          cancel(lambda t: t["restriction"]["period"].update(end="2030-05-02T10:00:00Z"))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_cancellation_has_no_findings() -> None:
    assert check_cancellation_task(cancellation(), original=good_task(), now=NOW) == []
    assert check_cancellation_request(CONDITIONAL, cancellation()) == []


def test_cancellation_runs_the_notification_rules_too() -> None:
    task = cancellation()
    task["intent"] = "order"
    assert [f.rule for f in check_cancellation_task(task, now=NOW)] == ["NOTIF-009"]


def test_wrong_status_is_reported_once_by_the_cancellation_rule() -> None:
    task = cancellation()
    task["status"] = "completed"
    assert [f.rule for f in check_cancellation_task(task, now=NOW)] == ["NOTIF-033"]


def test_authorization_base_is_never_echoed() -> None:
    task = cancellation()
    task["input"][0] = _input(spec.INPUT_AUTHORIZATION_BASE, valueString="secret-new-base")
    [finding] = check_cancellation_task(task, original=good_task(), now=NOW)
    assert finding.rule == "NOTIF-036"
    assert "secret-new-base" not in finding.message and "c0ffee-opaque-base" not in finding.message


def test_not_a_task() -> None:
    assert [f.rule for f in check_cancellation_task(["x"], now=NOW)] == ["NOTIF-001"]
    assert [f.rule for f in check_cancellation_request(CONDITIONAL, "x")] == []  # nothing to compare with


def test_locations() -> None:
    [finding] = check_cancellation_request(f"{BASE}/Task?identifier={spec.RFC3986}|urn:uuid:other", cancellation())
    assert finding.location == "request.url.identifier"
    assert "urn:uuid:other" in finding.message and IDENTIFIER["value"] in finding.message


def test_mutated_cancellations_never_raise() -> None:
    import random

    from validators.rules.identifiers import check_identifiers_in
    from validators.rules.token_request import check_notification_grant, check_pull_grant

    from . import test_robustness

    rnd = random.Random("cancellation")
    for _ in range(300):
        task, original = cancellation(), good_task()
        for document in (task, original):
            for _ in range(rnd.randint(0, 2)):
                test_robustness._mutate(document, rnd)
        assert isinstance(check_cancellation_task(task, original=original, now=NOW), list)
        assert isinstance(check_cancellation_request(CONDITIONAL, task), list)
        assert isinstance(check_identifiers_in(task, "Task"), list)
        assert isinstance(check_pull_grant({"sub": "90000202", "authorization_base": "b"}, task), list)
        assert isinstance(check_notification_grant({"sub": "90000101"}, task), list)
