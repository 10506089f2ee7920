"""The result model every report writer is fed: a run of scenarios, each a list of steps (kernel: the
simulator serves reports of its sessions, the test manager writes them)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from speeltuin.records import Exchange, FlowDirection, Tag
from validators.findings import Finding

Status = Literal["passed", "failed", "skipped"]
COUNT_KEYS = ("error", "warning", "info", "suppressed", "expected")


@dataclass
class Step:
    title: str
    status: Status
    detail: str = ""
    duration_ms: float = 0.0


@dataclass(frozen=True)
class ExpectedFinding:
    """A finding a scenario provokes on purpose (e.g. the defective Task it sends): shown, not counted."""

    direction: str
    tag: str
    rule: str
    reason: str


@dataclass
class Excuses:
    """Why a finding does not count against the vendor: suppressed for the session, or provoked on purpose."""

    suppressions: dict[str, str] = field(default_factory=dict)  # rule id -> the recorded reason
    expected: list[ExpectedFinding] = field(default_factory=list)

    def reason(self, ex: Exchange, f: Finding) -> tuple[str, str] | None:
        if f.rule in self.suppressions:
            return "suppressed", self.suppressions[f.rule]
        for e in self.expected:
            if (e.direction, e.tag, e.rule) == (ex.direction, ex.tag, f.rule):
                return "expected", e.reason
        return None


def error_findings(exchanges: list[Exchange], excuses: Excuses) -> list[str]:
    """Error findings as evidence lines, leaving out suppressed and deliberately provoked ones."""
    return [f"{ex.method} {ex.url} → {f.rule}: {f.message}" for ex in exchanges for f in ex.findings
            if f.severity == "error" and excuses.reason(ex, f) is None]


@dataclass
class ScenarioResult:
    id: str
    title: str
    description: str
    vendor_role: str
    session_id: str | None = None
    steps: list[Step] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    excuses: Excuses = field(default_factory=Excuses)

    @property
    def status(self) -> Status:
        """Failed when a step failed; skipped when a step did not happen (or none ran): then the scenario has not
        shown what it is for, which is no pass; else passed."""
        if any(s.status == "failed" for s in self.steps):
            return "failed"
        return "passed" if self.steps and all(s.status == "passed" for s in self.steps) else "skipped"

    def excuse(self, ex: Exchange, f: Finding) -> tuple[str, str] | None:
        return self.excuses.reason(ex, f)

    def counts(self) -> dict[str, int]:
        """Findings by severity; suppressed and expected ones are shown in reports but not counted."""
        counts = dict.fromkeys(COUNT_KEYS, 0)
        for ex in self.exchanges:
            for f in ex.findings:
                excused = self.excuse(ex, f)
                counts[excused[0] if excused else f.severity] += 1
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
        total = dict.fromkeys(COUNT_KEYS, 0)
        for scenario in self.scenarios:
            for key, value in scenario.counts().items():
                total[key] += value
        return total

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        """A run as `to_dict` stored it (the derived status and counts are computed again); KeyError, TypeError or
        ValueError when `data` is not of that shape."""
        return cls(id=data["id"], title=data.get("title", ""), started_at=data["started_at"],
                   finished_at=data.get("finished_at"), environment=dict(data.get("environment") or {}),
                   scenarios=[_scenario_from_dict(s) for s in data["scenarios"]])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["counts"] = self.counts()
        for scenario, raw in zip(self.scenarios, data["scenarios"]):
            raw["status"] = scenario.status
            raw["counts"] = scenario.counts()
        return data


def _scenario_from_dict(raw: dict[str, Any]) -> ScenarioResult:
    excuses = raw.get("excuses") or {}
    return ScenarioResult(
        id=raw["id"], title=raw.get("title", ""), description=raw.get("description", ""),
        vendor_role=raw.get("vendor_role", ""), session_id=raw.get("session_id"),
        steps=[Step(s["title"], s["status"], s.get("detail", ""), s.get("duration_ms", 0.0)) for s in raw["steps"]],
        exchanges=[_exchange_from_dict(e) for e in raw.get("exchanges", [])],
        excuses=Excuses(suppressions=dict(excuses.get("suppressions") or {}),
                        expected=[ExpectedFinding(**e) for e in excuses.get("expected") or []]))


def _exchange_from_dict(raw: dict[str, Any]) -> Exchange:
    known = {f.name for f in fields(Exchange)} - {"tag", "direction", "findings"}
    return Exchange(tag=Tag(raw["tag"]), direction=FlowDirection(raw["direction"]),
                    findings=[Finding(**f) for f in raw.get("findings", [])],
                    **{key: value for key, value in raw.items() if key in known})
