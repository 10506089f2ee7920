"""Every defect the negative scenarios send is caught by our own Notification Task validator."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from simulator.outbound.defects import DEFECTS, with_defect
from simulator.outbound.task_builder import build_notification_task
from validators.findings import errors
from validators.rules.notification import check_notification_task


def _good() -> dict:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return build_notification_task(bsn="999993653", patient_name="S M", sender_ura="90000101", sender_name="s",
                                   receiver_ura="90000202", authorization_base="b", authored_on=now,
                                   period_end=now + timedelta(days=1))


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_is_an_error_of_a_task_that_was_fine(name: str) -> None:
    good = _good()
    assert check_notification_task(good) == []
    damaged = with_defect(good, name)
    assert errors(check_notification_task(damaged)), name
    assert check_notification_task(good) == []  # the original is untouched
