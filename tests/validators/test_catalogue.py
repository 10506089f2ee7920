"""The catalogue is complete and well formed, and every rule has been seen firing and staying quiet.

The fires/quiet cases are discovered: every module of this test package may hold lists of `Case`; nothing
is listed by hand, so a new rule module or test module needs no registration here.
"""
from __future__ import annotations

import importlib
import pkgutil

import tests.validators
from validators.catalogue import catalogue, list_rules, load_all, rule_modules
from validators.findings import SEVERITIES, Rule

from ._cases import Case


def discovered_cases() -> list[Case]:
    cases: list[Case] = []
    for info in pkgutil.iter_modules(tests.validators.__path__, tests.validators.__name__ + "."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, list) and value and all(isinstance(item, Case) for item in value):
                cases += value
    return list({case.id: case for case in cases}.values())  # a list bound under two names counts once


ALL_CASES = discovered_cases()


def test_every_rule_module_rule_is_catalogued() -> None:
    defined = {value.id for module in rule_modules() for value in vars(module).values() if isinstance(value, Rule)}
    assert defined == set(load_all())
    assert len(load_all()) >= 200


def test_list_rules_is_sorted_and_well_formed() -> None:
    rules = list_rules()
    assert [r.id for r in rules] == sorted(r.id for r in rules)
    for r in rules:
        assert r.severity in SEVERITIES
        assert r.title and r.reference.startswith(("SPEC", "RFC")), r


def test_every_rule_has_fired_on_a_defect() -> None:
    fired = set()
    for case in ALL_CASES:
        if case.fires:
            fired |= {f.rule for f in case.make()}
    missing = set(catalogue()) - fired
    assert not missing, f"rules never seen firing: {sorted(missing)}"


def test_every_rule_has_a_passing_example() -> None:
    quiet = {case.rule for case in ALL_CASES if not case.fires}
    missing = set(catalogue()) - quiet
    assert not missing, f"rules without a passing example: {sorted(missing)}"


def test_every_case_names_a_catalogued_rule() -> None:
    unknown = {case.rule for case in ALL_CASES} - set(load_all())
    assert not unknown
