"""The findings model and the rule catalogue.

A rule is a small named unit: stable id, severity, title and the spec section it enforces.
Validator functions create findings through their rule, so every finding names a catalogued rule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Literal

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

    def finding(self, message: str, location: str = "") -> Finding:
        return Finding(self.id, self.severity, message, location)


CATALOGUE: dict[str, Rule] = {}


def rule(rule_id: str, severity: Severity, title: str, reference: str) -> Rule:
    """Define and register a rule; ids are unique across the catalogue."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r} for {rule_id}")
    if rule_id in CATALOGUE:
        raise ValueError(f"duplicate rule id {rule_id}")
    CATALOGUE[rule_id] = Rule(rule_id, severity, title, reference)
    return CATALOGUE[rule_id]


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
