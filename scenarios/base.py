"""What a scenario is: named steps run in order against a vendor system, and the findings it provokes on purpose.

A scenario in the catalogue has a stable id (`RCV-nn`: the vendor is the receiving node; `SND-nn`: the sending
node), a title, a markdown description, named steps, the outcome that passes it, the rule ids it covers and its
SPEC reference. Each scenario family is one file (scenarios/vendor_receiver.py, scenarios/vendor_sender.py): a
happy flow and its negative variations. To add a negative variation of the receiver flow, in
scenarios/vendor_receiver.py:

1. Subclass the happy flow, naming the kind: ``class RefusesX(VendorAsReceiver, kind="negative")``, with its own
   ``id`` ("RCV-nn"), ``title``, ``description``, ``outcome``, ``rules``, ``spec`` and ``session_prefix``. The
   class registers itself; `speeltuin scenarios` lists it and the runner runs it in id order, family by family
   (scenarios/catalogue.py).
2. Derive its steps from the parent's by name, never by position: ``steps()`` returns
   ``super().steps().replace("notify", StepDef("notify-x", "…", self.notify_x)).remove("token-granted")``
   (also ``insert_before`` / ``insert_after``); an unknown step name is an error that lists the known ones.
3. Declare the findings it provokes on purpose in the class attribute ``expected`` (ExpectedFinding: direction,
   tag, rule, reason). Reports show them as "expected" with the reason and do not count them; a step may check
   that what it provoked is among them, but nothing sets them while running.
4. Name in ``catches`` the fault switch of the reference vendor (`speeltuin serve --fault`) it exists to catch:
   a test runs it against the faultless reference vendor (it passes) and against the faulty one (it fails).
"""
from __future__ import annotations

import re
import time
from typing import ClassVar

from scenarios.drivers import DriverError, ScenarioSession
from scenarios.runner import CURRENT_SCENARIO, CURRENT_STEP, Harness, StepFailed, StepSkipped
from scenarios.steps import StepDef, Steps, UnknownName
from speeltuin.records import Exchange
from speeltuin.results import Excuses, ExpectedFinding, ScenarioResult, Step, error_findings

KINDS = ("happy", "negative")
VENDOR_ROLES = ("receiver", "sender")
ID_PREFIXES = {"receiver": "RCV", "sender": "SND"}  # a catalogue id names the role the vendor plays
_ID = re.compile(r"(RCV|SND)-[0-9]{2}")


class Scenario:
    """A scenario: named steps (see `steps`); a variation changes named steps of its parent, not the flow."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    vendor_role: ClassVar[str] = ""  # what the vendor system under test plays: "receiver" or "sender"
    kind: ClassVar[str] = ""  # "happy" or "negative"; set by naming it in the class statement
    session_prefix: ClassVar[str] = "scenario"  # the sessions' ids start with it
    expected: ClassVar[tuple[ExpectedFinding, ...]] = ()  # findings the scenario provokes on purpose
    outcome: ClassVar[str] = ""  # what passes it, in one sentence
    rules: ClassVar[tuple[str, ...]] = ()  # the rule ids it covers (speeltuin rules)
    spec: ClassVar[str] = ""  # the SPEC sections it checks
    catches: ClassVar[tuple[str, ...]] = ()  # the reference vendor's fault switches it exists to catch

    def __init_subclass__(cls, kind: str | None = None, **kwargs: object) -> None:
        """`class X(Parent, kind="negative")` registers X; a subclass that names no kind is not registered."""
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            registry.add(cls)

    def __init__(self) -> None:
        self.session: ScenarioSession | None = None  # opened by the driver in the first step
        self.started_at = 0.0  # the scenario's evidence is what its session recorded since then

    def steps(self) -> Steps:
        raise NotImplementedError

    def run(self, harness: Harness) -> ScenarioResult:
        result = ScenarioResult(self.id, self.title, self.description, self.vendor_role)
        self.started_at = time.time()
        failed = False
        current = CURRENT_SCENARIO.set(self.id)
        try:
            for step in self.steps():
                if failed:
                    detail, status, ms = "an earlier step failed", "skipped", 0.0
                else:
                    harness.progress.step_started(self.id, step.name, step.title)
                    in_step = CURRENT_STEP.set(step.name)
                    try:
                        detail, status, ms = self._run_step(step, harness)
                    finally:
                        CURRENT_STEP.reset(in_step)
                    failed = status == "failed"
                harness.progress.step_ended(self.id, step.name, step.title, status, detail)
                result.steps.append(Step(step.title, status, detail, ms))
        finally:  # also on Ctrl-C: a vendor's session is kept across runs, so nothing may stay switched on
            if self.session is not None:
                try:
                    self.teardown(harness)
                except Exception as exc:  # evidence, not a crash
                    result.steps.append(Step("Undo what the scenario switched on", "failed",
                                             f"{type(exc).__name__}: {exc}"))
            CURRENT_SCENARIO.reset(current)
        if self.session is not None:
            result.session_id = self.session.id
            result.exchanges = self.exchanges(harness)
            result.excuses = self.excuses(harness, self.session.id)
        return result

    def teardown(self, harness: Harness) -> None:
        """After the steps, also when one failed: undo what the scenario switched on in its session."""

    @staticmethod
    def _run_step(step: StepDef, harness: Harness) -> tuple[str, str, float]:
        """The step's evidence, status and duration; a failed expectation or an error fails it, not the run."""
        started = time.monotonic()
        try:
            detail, status = step.run(harness), "passed"
        except StepFailed as exc:
            detail, status = str(exc), "failed"
        except StepSkipped as exc:
            detail, status = str(exc), "skipped"
        except Exception as exc:  # an unexpected error fails the step with its evidence, not the run
            detail, status = f"{type(exc).__name__}: {exc}", "failed"
        return detail, status, (time.monotonic() - started) * 1000

    @property
    def session_id(self) -> str:
        """The simulator session's id; only for steps after the session was opened."""
        if self.session is None:
            raise StepFailed("no session: the step that opens it did not run")
        return self.session.id

    def exchanges(self, h: Harness) -> list[Exchange]:
        """What the proxy and the simulator recorded in this scenario's session since it started."""
        return h.exchanges(self.session.id, since=self.started_at) if self.session else []

    def excuses(self, harness: Harness, session_id: str) -> Excuses:
        """The session's suppressions and the findings this scenario provokes on purpose."""
        return Excuses(harness.store.list_suppressions(session_id), list(self.expected))

    # Steps every family uses.

    def open_session(self, h: Harness) -> dict[str, str]:
        """Open the simulator session the vendor works with (the driver decides how); its endpoints."""
        try:
            self.session = h.vendor.open_session(h, self)
        except DriverError as exc:
            raise StepFailed(str(exc)) from exc
        return self.session.endpoints

    def act(self, h: Harness, action: str, **extra: str) -> str:
        """Make the vendor act (notify, update, cancel, pull) through its driver; the evidence."""
        try:
            return h.vendor.act(h, self, action, **extra)
        except DriverError as exc:
            raise StepFailed(str(exc)) from exc

    def no_errors(self, h: Harness) -> str:
        """No error findings in the simulator session's exchanges, but for suppressed and expected ones."""
        exchanges = self.exchanges(h)
        excuses = self.excuses(h, self.session_id)
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
        if not _ID.fullmatch(cls.id) or not cls.id.startswith(ID_PREFIXES[cls.vendor_role]):
            raise ValueError(f"scenario {name}: id {cls.id!r} is not {ID_PREFIXES[cls.vendor_role]}-nn "
                             f"(the vendor plays the {cls.vendor_role})")
        missing = [attr for attr in ("description", "outcome", "spec") if not getattr(cls, attr)]
        if missing:
            raise ValueError(f"scenario {name} declares no {', '.join(missing)}")
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
