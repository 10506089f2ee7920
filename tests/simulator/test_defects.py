"""Every defect the negative scenarios send is caught: by our own Notification Task validator, or (a Task that is
valid but not for this receiver) by the rule the receiving side applies; DEFECT_RULES names which."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from simulator.outbound.defects import DEFECT_RULES, DEFECTS, VALID_TASK_DEFECTS, with_defect
from simulator.outbound.task_builder import build_notification_task
from validators.findings import errors
from validators.rules.identifiers import is_valid_bsn, is_valid_ura
from validators.rules.notification import check_notification_task
from validators.rules.token_request import check_pull_grant
from validators.task_reader import identifier_value

RECEIVER_URA = "90000202"


def _kwargs() -> dict:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return dict(bsn="999993653", patient_name="S M", sender_ura="90000101", sender_name="s",
                receiver_ura=RECEIVER_URA, authorization_base="b", authored_on=now, period_end=now + timedelta(days=1))


def _good() -> dict:
    return build_notification_task(**_kwargs())


def test_every_defect_names_its_rule() -> None:
    assert set(DEFECT_RULES) == set(DEFECTS) and VALID_TASK_DEFECTS <= set(DEFECTS)


@pytest.mark.parametrize("name", sorted(set(DEFECTS) - VALID_TASK_DEFECTS))
def test_each_defect_is_an_error_of_a_task_that_was_fine(name: str) -> None:
    good = _good()
    assert check_notification_task(good) == []
    damaged = with_defect(good, name)
    assert DEFECT_RULES[name] in {f.rule for f in errors(check_notification_task(damaged))}, name
    assert check_notification_task(good) == []  # the original is untouched


def test_owner_other_organisation_is_a_valid_task_for_someone_else() -> None:
    good = _good()
    damaged = with_defect(good, "owner-other-organisation")
    owner = identifier_value(damaged, "owner")
    assert is_valid_ura(owner) and owner != RECEIVER_URA
    assert check_notification_task(damaged) == []
    # the receiving side's judgement: the pull token it would ask (sub = its own URA) is not for this Task's owner
    found = check_pull_grant({"sub": RECEIVER_URA}, damaged)
    assert [f.rule for f in errors(found)] == [DEFECT_RULES["owner-other-organisation"]]
    assert check_pull_grant({"sub": RECEIVER_URA}, good) == []
    task_for_99999999 = build_notification_task(**{**_kwargs(), "receiver_ura": "99999999"})
    other = with_defect(task_for_99999999, "owner-other-organisation")
    assert identifier_value(other, "owner") not in ("99999999", "")  # never the receiver's own URA


def test_the_bsn_defect_is_nine_digits_failing_only_the_11_check() -> None:
    bsn = identifier_value(with_defect(_good(), "bsn-fails-11-check"), "for")
    assert len(bsn) == 9 and bsn.isdigit() and not is_valid_bsn(bsn)


def test_the_query_defect_names_no_resource_type() -> None:
    damaged = with_defect(_good(), "query-without-resource-type")
    queries = [i["valueString"] for i in damaged["input"] if i["valueString"].startswith("?")]
    assert len(queries) == 1 and "_include=" in queries[0]
