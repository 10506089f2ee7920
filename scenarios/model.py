"""The result model every report writer is fed: a run of scenarios, each a list of steps."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from simulator.store import Exchange

Status = Literal["passed", "failed", "skipped"]


@dataclass
class Step:
    title: str
    status: Status
    detail: str = ""
    duration_ms: float = 0.0


@dataclass
class ScenarioResult:
    id: str
    title: str
    description: str
    vendor_role: str
    session_id: str | None = None
    steps: list[Step] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    suppressions: dict[str, str] = field(default_factory=dict)  # rule id -> the recorded reason

    @property
    def status(self) -> Status:
        if any(s.status == "failed" for s in self.steps):
            return "failed"
        return "passed" if self.steps else "skipped"

    def counts(self) -> dict[str, int]:
        """Findings by severity; suppressed rules are shown in reports but not counted."""
        counts = {"error": 0, "warning": 0, "info": 0, "suppressed": 0}
        for ex in self.exchanges:
            for f in ex.findings:
                counts["suppressed" if f.rule in self.suppressions else f.severity] += 1
        return counts


@dataclass
class RunResult:
    id: str
    title: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    scenarios: list[ScenarioResult] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return "failed" if any(s.status == "failed" for s in self.scenarios) else "passed"

    def counts(self) -> dict[str, int]:
        total = {"error": 0, "warning": 0, "info": 0, "suppressed": 0}
        for scenario in self.scenarios:
            for key, value in scenario.counts().items():
                total[key] += value
        return total

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["counts"] = self.counts()
        for scenario, raw in zip(self.scenarios, data["scenarios"]):
            raw["status"] = scenario.status
            raw["counts"] = scenario.counts()
        return data
