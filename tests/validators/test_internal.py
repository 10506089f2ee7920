"""INTERNAL-001: a validator that raises costs no evidence; the finding names the rule module that failed."""
from __future__ import annotations

import pytest

from validators.findings import Finding
from validators.rules import bundle
from validators.rules.internal import judged

from ._cases import Case, check_case, fires, quiet


def _failing_searchset() -> list[Finding]:
    # a Bundle whose entry list is not one: a defect the searchset rules report, not one they may crash on; here
    # one of their helpers is made to crash on it
    original = bundle._build_index

    def crash(*_args: object) -> dict:
        raise TypeError("'int' object is not iterable")

    bundle._build_index = crash  # type: ignore[assignment]
    try:
        return judged(lambda: bundle.check_searchset({"resourceType": "Bundle", "type": "searchset", "entry": []}))
    finally:
        bundle._build_index = original  # type: ignore[assignment]


CASES = [
    fires("INTERNAL-001", "a searchset rule raises", _failing_searchset),
    quiet("INTERNAL-001", "the rules judge the message",
          lambda: judged(lambda: bundle.check_searchset({"resourceType": "Bundle", "type": "searchset"}))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_case(case: Case) -> None:
    check_case(case)


def test_the_finding_names_the_failing_module_and_the_error() -> None:
    [finding] = [f for f in _failing_searchset() if f.rule == "INTERNAL-001"]
    assert finding.message == "validators.rules.bundle raised TypeError: 'int' object is not iterable"
    assert finding.severity == "error" and finding.location == "exchange"
