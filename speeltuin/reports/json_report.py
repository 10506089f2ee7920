"""The JSON report: the whole result model, for tools."""
from __future__ import annotations

import json

from speeltuin.results import RunResult


def render(run: RunResult) -> str:
    return json.dumps(run.to_dict(), indent=2, ensure_ascii=False)
