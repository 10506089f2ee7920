"""What a scenario is: named steps run in order against a vendor system, and the findings it provokes on purpose.

Each scenario family is one file (scenarios/vendor_receiver.py, scenarios/vendor_sender.py): a happy flow and its
negative variations. To add a negative variation of the receiver flow, in scenarios/vendor_receiver.py:

1. Subclass the happy flow, naming the kind: ``class RefusesX(VendorAsReceiver, kind="negative")``, with its own
   ``id`` ("negative-…"), ``title``, ``description`` and ``session_prefix``. The class registers itself; the
   demo runs it after the happy flows, in the order the classes stand in their file (scenarios/catalogue.py).
2. Derive its steps from the parent's by name, never by position: ``steps()`` returns
   ``super().steps().replace("notify", StepDef("notify-x", "…", self.notify_x)).remove("token-granted")``
   (also ``insert_before`` / ``insert_after``); an unknown step name is an error that lists the known ones.
3. Declare the findings it provokes on purpose in the class attribute ``expected`` (ExpectedFinding: direction,
   tag, rule, reason). Reports show them as "expected" with the reason and do not count them; a step may check
   that what it provoked is among them, but nothing sets them while running.
"""
from __future__ import annotations

import time
from typing import ClassVar

from speeltuin.results import Excuses, ExpectedFinding, ScenarioResult, Step
from scenarios.pairing import PairingError, pair_sessions
from scenarios.runner import Harness, StepFailed, error_findings
from scenarios.steps import Steps, UnknownName
from speeltuin.records import new_id

KINDS = ("happy", "negative")  # the demo runs every happy flow first, then the variations
VENDOR_ROLES = ("receiver", "sender")


class SessionPair:
    """The two session ids of one scenario run: the simulator's and the reference vendor's."""

    def __init__(self, prefix: str) -> None:
        suffix = new_id()
        self.simulator = f"{prefix}-sim-{suffix}"
        self.vendor = f"{prefix}-ref-{suffix}"


class Scenario:
    """A scenario: named steps (see `steps`); a variation changes named steps of its parent, not the flow."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    vendor_role: ClassVar[str] = ""  # what the vendor system under test plays: "receiver" or "sender"
    kind: ClassVar[str] = ""  # "happy" or "negative"; set by naming it in the class statement
    session_prefix: ClassVar[str] = "scenario"  # the sessions' ids start with it
    expected: ClassVar[tuple[ExpectedFinding, ...]] = ()  # findings the scenario provokes on purpose

    def __init_subclass__(cls, kind: str | None = None, **kwargs: object) -> None:
        """`class X(Parent, kind="negative")` registers X; a subclass that names no kind is not registered."""
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            registry.add(cls)

    def __init__(self) -> None:
        self.ids = SessionPair(self.session_prefix)

    def steps(self) -> Steps:
        raise NotImplementedError

    def run(self, harness: Harness) -> ScenarioResult:
        result = ScenarioResult(self.id, self.title, self.description, self.vendor_role)
        failed = False
        for step in self.steps():
            if failed:
                result.steps.append(Step(step.title, "skipped", "an earlier step failed"))
                continue
            started = time.monotonic()
            try:
                detail, status = step.run(harness), "passed"
            except StepFailed as exc:
                detail, status, failed = str(exc), "failed", True
            except Exception as exc:  # an unexpected error fails the step with its evidence, not the run
                detail, status, failed = f"{type(exc).__name__}: {exc}", "failed", True
            result.steps.append(Step(step.title, status, detail, (time.monotonic() - started) * 1000))
        result.session_id = self.session_id(harness)
        if result.session_id:
            result.exchanges = harness.exchanges(result.session_id)
            result.excuses = self.excuses(harness, result.session_id)
        return result

    def session_id(self, harness: Harness) -> str | None:
        return self.ids.simulator

    def excuses(self, harness: Harness, session_id: str) -> Excuses:
        """The session's suppressions and the findings this scenario provokes on purpose."""
        return Excuses(harness.store.list_suppressions(session_id), list(self.expected))

    # Steps every family uses.

    def pair_sessions(self, h: Harness) -> dict[str, str]:
        """Create the simulator's session and its mirror on the vendor; the simulator session's endpoints."""
        try:
            return pair_sessions(h.simulator, h.vendor, vendor_role=self.vendor_role, sim_id=self.ids.simulator,
                                 ven_id=self.ids.vendor, name=self.title)
        except PairingError as exc:
            raise StepFailed(str(exc)) from exc

    def no_errors(self, h: Harness) -> str:
        """No error findings in the simulator session's exchanges, but for suppressed and expected ones."""
        session_id = self.ids.simulator
        exchanges = h.exchanges(session_id)
        excuses = self.excuses(h, session_id)
        bad = error_findings(exchanges, excuses)
        if bad:
            shown = "\n".join(bad[:20])
            raise StepFailed(f"{len(bad)} error finding(s):\n{shown}")
        notes = [f"{len(excuses.suppressions)} rule(s) suppressed for this session"] if excuses.suppressions else []
        notes += [f"{len(excuses.expected)} finding kind(s) provoked on purpose"] if excuses.expected else []
        noted = f" ({'; '.join(notes)})" if notes else ""
        return f"{len(exchanges)} exchanges recorded by the proxy, no error findings{noted}"


class Registry:
    """The concrete scenario classes by id, in the order they registered (scenarios/catalogue.py orders them)."""

    def __init__(self) -> None:
        self._by_id: dict[str, type[Scenario]] = {}

    def add(self, cls: type[Scenario]) -> None:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if cls.kind not in KINDS:
            raise ValueError(f"scenario {name}: kind {cls.kind!r} is not one of {', '.join(KINDS)}")
        if not cls.__dict__.get("id") or not cls.title:
            raise ValueError(f"scenario {name} registers as {cls.kind!r} but declares no id or no title of its own")
        if cls.vendor_role not in VENDOR_ROLES:
            raise ValueError(f"scenario {name}: vendor_role {cls.vendor_role!r} is not one of "
                             f"{', '.join(VENDOR_ROLES)}")
        taken = self._by_id.get(cls.id)
        if taken is not None and f"{taken.__module__}.{taken.__qualname__}" != name:  # the same class reloaded is fine
            raise ValueError(f"scenario id {cls.id!r} of {name} is taken by {taken.__module__}.{taken.__qualname__}")
        self._by_id[cls.id] = cls

    def classes(self) -> list[type[Scenario]]:
        return list(self._by_id.values())

    def find(self, scenario_id: str) -> type[Scenario]:
        try:
            return self._by_id[scenario_id]
        except KeyError:
            raise UnknownName(f"no scenario {scenario_id!r}; known: {', '.join(self._by_id) or '(none)'}") from None


registry = Registry()
