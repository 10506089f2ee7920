"""A table-driven way to show each rule firing on a defect and staying quiet on a good example."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from validators.findings import Finding


@dataclass(frozen=True)
class Case:
    rule: str
    fires: bool
    name: str
    make: Callable[[], list[Finding]]

    @property
    def id(self) -> str:
        return f"{self.rule}-{'fires' if self.fires else 'quiet'}-{self.name}"


def fires(rule: str, name: str, make: Callable[[], list[Finding]]) -> Case:
    return Case(rule, True, name, make)


def quiet(rule: str, name: str, make: Callable[[], list[Finding]]) -> Case:
    return Case(rule, False, name, make)


def check_case(case: Case) -> list[Finding]:
    found = case.make()
    mine = [f for f in found if f.rule == case.rule]
    if case.fires:
        assert mine, f"{case.rule} did not fire; findings: {found}"
        for finding in mine:
            assert finding.location, f"{case.rule} finding without location: {finding}"
            assert finding.message
    else:
        assert not mine, f"{case.rule} fired unexpectedly: {mine}"
    return found


def json_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (keys and indexes) into a JSON document, the document itself first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from json_paths(value, prefix + (index,))
