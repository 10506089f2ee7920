"""The catalogue is complete, and every rule of these modules has been seen firing and staying quiet."""
from __future__ import annotations

import importlib

from validators.catalogue import list_rules, load_all, rule_modules
from validators.findings import CATALOGUE, SEVERITIES, Rule

from . import (
    test_bearer,
    test_bundle,
    test_certificates,
    test_document,
    test_http_rules,
    test_identifiers,
    test_jwt_assertion,
    test_notification,
    test_notification_cancellation,
    test_token_request,
    test_workflow_task,
)
from ._cases import Case

ALL_CASES: list[Case] = [
    *test_identifiers.CASES, *test_jwt_assertion.CASES, *test_token_request.CASES,
    *test_notification.CASES, *test_bundle.CASES, *test_document.CASES,
    *test_notification_cancellation.CASES, *test_workflow_task.CASES, *test_bearer.CASES, *test_certificates.CASES,
    *test_http_rules.CASES,
]
# The modules whose rules this test suite covers (other validator modules have their own tests).
COVERED_MODULES = ("validators.identifiers", "validators.jwt_assertion", "validators.token_request",
                   "validators.notification", "validators.bundle", "validators.document",
                   "validators.workflow_task", "validators.bearer", "validators.certificates", "validators.http")
# Emitted by the stateful token endpoint (it remembers jti values); no pure function can fire it.
STATEFUL = {"JWT-024"}


def module_rule_ids() -> set[str]:
    ids = set()
    for name in COVERED_MODULES:
        module = importlib.import_module(name)
        ids |= {value.id for value in vars(module).values() if isinstance(value, Rule)}
    return ids


def test_load_all_registers_every_module_rule() -> None:
    assert set(COVERED_MODULES) <= set(rule_modules())
    rules = load_all()
    assert module_rule_ids() <= set(rules)
    assert rules == CATALOGUE and rules is not CATALOGUE


def test_list_rules_is_sorted_and_well_formed() -> None:
    rules = list_rules()
    assert [r.id for r in rules] == sorted(r.id for r in rules)
    for r in rules:
        assert r.severity in SEVERITIES
        assert r.title and r.reference
    assert all(CATALOGUE[i].reference.startswith(("SPEC", "RFC")) for i in module_rule_ids())


def test_every_rule_has_fired_on_a_defect() -> None:
    fired = set()
    for case in ALL_CASES:
        if case.fires:
            fired |= {f.rule for f in case.make()}
    missing = module_rule_ids() - STATEFUL - fired
    assert not missing, f"rules never seen firing: {sorted(missing)}"


def test_every_rule_has_a_passing_example() -> None:
    quiet = {case.rule for case in ALL_CASES if not case.fires}
    missing = module_rule_ids() - STATEFUL - quiet
    assert not missing, f"rules without a passing example: {sorted(missing)}"


def test_every_case_names_a_catalogued_rule() -> None:
    unknown = {case.rule for case in ALL_CASES} - set(load_all())
    assert not unknown
