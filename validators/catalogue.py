"""The rule catalogue: every rule of every module under validators/rules/, and where it is checked.

Nothing registers itself and nothing is listed by hand: a new module in validators/rules/ is part of the
catalogue, its rules found among its module-level names, and the place each is checked from the
`@emits` declaration of the check function that emits it.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import validators.rules
from validators.findings import EMITS, Rule


@dataclass(frozen=True)
class Where:
    """The check function that emits a rule."""

    module: str
    function: str

    def to_dict(self) -> dict[str, str]:
        return {"module": self.module, "function": self.function}


@dataclass(frozen=True)
class Entry:
    rule: Rule
    where: Where | None  # None: no check function declares it (a test keeps this from happening)


def rule_modules() -> list[ModuleType]:
    """Every module of validators/rules/, imported."""
    names = sorted(m.name for m in pkgutil.iter_modules(validators.rules.__path__, validators.rules.__name__ + "."))
    return [importlib.import_module(name) for name in names]


def _declared_rules(module: ModuleType) -> list[Rule]:
    return [value for value in vars(module).values() if isinstance(value, Rule)]


def _declaring_checks(module: ModuleType) -> dict[str, Where]:
    """Rule id -> the function of this module whose @emits names it."""
    found: dict[str, Where] = {}
    for name, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            for declared in getattr(value, EMITS, ()):
                if declared.id in found:
                    raise ValueError(f"{declared.id} is declared by both {found[declared.id].function} and {name}")
                found[declared.id] = Where(module.__name__, name)
    return found


@cache
def catalogue() -> dict[str, Entry]:
    """Every rule by id, with the check that emits it; a rule id defined twice is a programming error."""
    rules: dict[str, Rule] = {}
    where: dict[str, Where] = {}
    for module in rule_modules():
        for found in _declared_rules(module):
            if rules.setdefault(found.id, found) != found:
                raise ValueError(f"rule id {found.id} is defined twice, differently")
        where.update(_declaring_checks(module))
    return {rule_id: Entry(r, where.get(rule_id)) for rule_id, r in sorted(rules.items())}


def load_all() -> dict[str, Rule]:
    """Every catalogued rule by id."""
    return {rule_id: entry.rule for rule_id, entry in catalogue().items()}


def list_rules() -> list[Rule]:
    return [entry.rule for entry in catalogue().values()]
