"""The findings model and the rule unit.

A rule is a small named unit: stable id, severity, title and the spec section it enforces. It is declared
next to the small check function that emits it (`@emits(RULE, ...)`), which yields its findings. The
catalogue (validators/catalogue.py) finds every rule and where it is checked by loading validators/rules/.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Callable, Iterable, Literal, TypeVar

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    location: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    reference: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r} for {self.id}")

    def finding(self, message: str, location: str = "") -> Finding:
        return Finding(self.id, self.severity, message, location)


def rule(rule_id: str, severity: Severity, title: str, reference: str) -> Rule:
    """Define a rule; the catalogue finds it in its module under validators/rules/."""
    return Rule(rule_id, severity, title, reference)


Check = TypeVar("Check", bound=Callable[..., object])
EMITS = "__emits__"  # the attribute on a check function that lists the rules it emits


def emits(*rules: Rule) -> Callable[[Check], Check]:
    """Declare the rules a check function emits; `speeltuin rules` names it as the place they are checked."""
    def declare(check: Check) -> Check:
        setattr(check, EMITS, rules)
        return check

    return declare


def rules_in(table: object) -> tuple[Rule, ...]:
    """Every rule in a table of a table-driven check, once each, in order: it declares them with
    `@emits(*rules_in(TABLE))`. The table is made of dicts, lists, tuples and dataclasses holding rules."""
    found: dict[Rule, None] = {}
    stack = [table]
    while stack:
        item = stack.pop()
        if isinstance(item, Rule):
            found.setdefault(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif is_dataclass(item) and not isinstance(item, type):
            stack.extend(reversed([getattr(item, f.name) for f in fields(item)]))
    return tuple(found)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
