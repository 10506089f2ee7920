"""The scenarios the test manager knows: every scenario family's classes, each registered by itself.

A family is one module (a happy flow and its negative variations, see scenarios/base.py); adding a family is
adding its module to FAMILIES.
"""
from __future__ import annotations

from scenarios import vendor_receiver, vendor_sender
from scenarios.base import Scenario, registry

FAMILIES = (vendor_receiver, vendor_sender)  # in the order `speeltuin demo` runs them


def _order(cls: type[Scenario]) -> tuple[int, str]:
    families = [family.__name__ for family in FAMILIES]
    return families.index(cls.__module__) if cls.__module__ in families else len(families), cls.id


def all_scenarios() -> list[type[Scenario]]:
    """Every scenario, family by family (the receiver's, then the sender's), each family in id order."""
    return sorted(registry.classes(), key=_order)


def find(scenario_id: str) -> type[Scenario]:
    """The scenario with that id; an UnknownName (a KeyError) naming the known ids if there is none."""
    return registry.find(scenario_id)


def demo_scenarios() -> list[Scenario]:
    """What `speeltuin demo` runs against the reference vendor: the whole catalogue."""
    return [cls() for cls in all_scenarios()]
