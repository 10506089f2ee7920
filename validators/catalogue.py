"""The rule catalogue: importing every rule module registers its rules in findings.CATALOGUE."""
from __future__ import annotations

import importlib
import pkgutil

import validators
from validators.findings import CATALOGUE, Rule

# Modules of the package that define no rules.
_NOT_RULE_MODULES = frozenset({"findings", "spec", "catalogue"})


def rule_modules() -> list[str]:
    """Every validator module (DESIGN: one module per subject), found so a new module needs no registration here."""
    names = (m.name for m in pkgutil.iter_modules(validators.__path__) if not m.ispkg)
    return sorted(f"validators.{name}" for name in names if name not in _NOT_RULE_MODULES and not name.startswith("_"))


def load_all() -> dict[str, Rule]:
    """Every catalogued rule by id (a copy: the registry itself is only written by `rule()`)."""
    for name in rule_modules():
        importlib.import_module(name)
    return dict(CATALOGUE)


def list_rules() -> list[Rule]:
    return sorted(load_all().values(), key=lambda r: r.id)
