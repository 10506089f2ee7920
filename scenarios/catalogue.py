"""The scenarios the test manager knows."""
from __future__ import annotations

from scenarios.happy import happy_scenarios
from scenarios.negative import negative_scenarios
from scenarios.runner import Scenario


def demo_scenarios() -> list[Scenario]:
    """What `speeltuin demo` runs against the reference vendor: the happy flows, then the non-happy ones."""
    return happy_scenarios() + negative_scenarios()
