"""Negative scenarios are variations of the happy flow: named steps, edited by name; scenarios register themselves."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scenarios.base import KINDS, Registry, Scenario
from scenarios.catalogue import FAMILIES, all_scenarios, demo_scenarios, find
from speeltuin.results import ExpectedFinding
from scenarios.runner import Harness
from scenarios.steps import StepDef, Steps, UnknownName
from scenarios.vendor_receiver import (
    CancellationAccepted,
    DefectiveTaskRefused,
    IdentifierObjectRefused,
    OtherOwnerRefused,
    VendorAsReceiver,
)
from scenarios.vendor_sender import (
    RefusesMalformedQuery,
    RefusesWithoutToken,
    ProbeRefused,
    UnsignedOrHmacRefused,
    TokensRefusedAfterCancellation,
    VendorAsSender,
)

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"
CATALOGUE = [f"RCV-{n:02d}" for n in range(1, 16)] + [f"SND-{n:02d}" for n in range(1, 17)]


def _step(name: str) -> StepDef:
    return StepDef(name, f"Step {name}", lambda h: name)


ABC = Steps(_step("a"), _step("b"), _step("c"))


# The container, on synthetic steps.

def test_replace_keeps_the_place_and_may_rename() -> None:
    assert ABC.replace("b", _step("x")).names == ["a", "x", "c"]
    assert ABC.replace("b", StepDef("b", "Other title", _step("b").run))["b"].title == "Other title"
    assert ABC.names == ["a", "b", "c"]  # the original is never changed


def test_insert_before_and_after() -> None:
    assert ABC.insert_before("a", _step("x")).names == ["x", "a", "b", "c"]
    assert ABC.insert_before("c", _step("x"), _step("y")).names == ["a", "b", "x", "y", "c"]
    assert ABC.insert_after("c", _step("x")).names == ["a", "b", "c", "x"]
    assert ABC.insert_after("a", _step("x"), _step("y")).names == ["a", "x", "y", "b", "c"]


def test_remove() -> None:
    assert ABC.remove("b").names == ["a", "c"]
    assert ABC.remove("a", "c").names == ["b"]


@pytest.mark.parametrize("edit", [
    lambda s: s.replace("nope", _step("x")),
    lambda s: s.insert_before("nope", _step("x")),
    lambda s: s.insert_after("nope", _step("x")),
    lambda s: s.remove("nope"),
    lambda s: s["nope"],
])
def test_an_unknown_name_is_an_error_naming_the_known_ones(edit) -> None:
    with pytest.raises(KeyError) as raised:
        edit(ABC)
    assert isinstance(raised.value, UnknownName)
    assert str(raised.value) == "no step named 'nope'; the steps are: a, b, c"


@pytest.mark.parametrize("edit", [
    lambda s: s.replace("a", _step("b")),
    lambda s: s.insert_before("a", _step("c")),
    lambda s: s.insert_after("c", _step("x"), _step("x")),
    lambda s: Steps(_step("a"), _step("a")),
])
def test_a_duplicate_name_is_an_error(edit) -> None:
    with pytest.raises(ValueError, match="two steps named"):
        edit(ABC)


def test_a_step_is_a_stepdef() -> None:
    with pytest.raises(TypeError):
        Steps(("title", lambda h: ""))  # type: ignore[arg-type]


def test_a_synthetic_variation_runs_its_derived_steps_in_order() -> None:
    class Base(Scenario):  # no kind: not registered
        id, title, vendor_role = "synthetic", "Synthetic", "receiver"

        def steps(self) -> Steps:
            return ABC

    class Variation(Base):
        def steps(self) -> Steps:
            return super().steps().replace("b", _step("x")).insert_after("c", _step("d")).remove("a")

    class Recorder:
        def __init__(self) -> None:
            self.events: list[tuple] = []

        def step_started(self, scenario_id: str, name: str, title: str) -> None:
            self.events.append(("started", scenario_id, name))

        def step_ended(self, scenario_id: str, name: str, title: str, status: str, detail: str) -> None:
            self.events.append(("ended", scenario_id, name, status))

        def waiting(self, scenario_id: str, what: str, until: float) -> None:
            self.events.append(("waiting", scenario_id, what))

    recorder = Recorder()
    harness = Harness(None, None, None, progress=recorder)  # type: ignore[arg-type]  # the steps touch none
    result = Variation().run(harness)
    assert [(s.title, s.status, s.detail) for s in result.steps] == [
        ("Step x", "passed", "x"), ("Step c", "passed", "c"), ("Step d", "passed", "d")]
    assert recorder.events == [(kind, "synthetic", name, *(["passed"] if kind == "ended" else []))
                               for name in ("x", "c", "d") for kind in ("started", "ended")]
    assert "synthetic" not in [cls.id for cls in all_scenarios()]


# The real scenarios.

def test_happy_flows_name_their_steps() -> None:
    assert VendorAsReceiver().steps().names == ["create-sessions", "notify", "await-pull", "token-granted",
                                                "no-errors"]
    assert VendorAsSender().steps().names == ["create-sessions", "vendor-notifies", "task-accepted", "await-pull",
                                              "no-errors"]


def test_negative_steps_are_the_happy_ones_with_the_declared_changes() -> None:
    receiver, sender = VendorAsReceiver().steps(), VendorAsSender().steps()
    defective = IdentifierObjectRefused().steps()
    assert defective.names == (receiver.replace("notify", _step("notify-defective"))
                               .replace("await-pull", _step("no-pull")).remove("token-granted").names)
    assert defective["no-errors"].title == "No unexpected error findings"
    assert CancellationAccepted().steps().names == (receiver.remove("token-granted").insert_before(
        "no-errors", _step("cancel"), _step("no-pull-after-cancel")).names)
    for cls in (RefusesWithoutToken, RefusesMalformedQuery, UnsignedOrHmacRefused):
        assert issubclass(cls, ProbeRefused)
        probes = [_step(f"probe-{kind}") for kind, _title in cls.probes]
        assert cls().steps().names == sender.insert_before("no-errors", *probes).names
    assert [kind for kind, _title in UnsignedOrHmacRefused.probes] == ["alg-none", "alg-hmac"]
    # every defect scenario is the same variation with its own defect
    assert OtherOwnerRefused().steps().names == defective.names and issubclass(OtherOwnerRefused, DefectiveTaskRefused)
    assert TokensRefusedAfterCancellation().steps().names == sender.insert_before(
        "no-errors", _step("vendor-cancels"), _step("probe-token-after-cancellation")).names
    # the steps a variation keeps are its parent's, titles and all
    for variation, happy in ((CancellationAccepted(), receiver), (TokensRefusedAfterCancellation(), sender)):
        kept = [(s.name, s.title) for s in variation.steps() if s.name in happy]
        assert kept == [(s.name, s.title) for s in happy if s.name in variation.steps()]


def test_every_negative_scenario_is_a_variation_of_a_happy_one() -> None:
    for cls in all_scenarios():
        if cls.kind == "negative":
            parents = [base for base in cls.__mro__[1:] if getattr(base, "kind", "") == "happy"
                       and "kind" in base.__dict__]
            assert parents and parents[0].vendor_role == cls.vendor_role, cls


def test_expected_findings_are_declared_on_the_class() -> None:
    assert IdentifierObjectRefused.expected == (ExpectedFinding(
        "to-vendor", "notification", "NOTIF-002", "the simulator sent the defect 'identifier-object' on purpose"),)
    assert RefusesWithoutToken.expected == (ExpectedFinding(
        "to-vendor", "search", "BEAR-001", "the simulator probed without a token on purpose"),)
    assert VendorAsReceiver.expected == VendorAsSender.expected == CancellationAccepted.expected == ()
    assert RefusesMalformedQuery.expected == () == OtherOwnerRefused.expected  # a valid Task, owned by another


def test_no_list_slicing_and_no_expected_set_while_running() -> None:
    for path in SCENARIOS_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "expected" and isinstance(node.ctx, ast.Store):
                pytest.fail(f"{path.name}:{node.lineno} sets .expected while running")
            sliced = isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)
            assert not (sliced and "steps" in ast.unparse(node.value)), f"{path.name}:{node.lineno} slices steps"


# The registry.

def test_the_registry_finds_every_scenario_once_in_demo_order() -> None:
    ids = [cls.id for cls in all_scenarios()]
    assert ids == CATALOGUE and len(set(ids)) == len(ids)
    assert [s.id for s in demo_scenarios()] == CATALOGUE
    assert [cls.id for cls in all_scenarios() if cls.kind == "happy"] == ["RCV-01", "RCV-14", "RCV-15", "SND-01",
                                                                         "SND-02", "SND-15"]
    for cls in all_scenarios():
        assert find(cls.id) is cls
        assert cls.__module__ in [family.__name__ for family in FAMILIES]
    defined = [node.name for family in FAMILIES
               for node in ast.parse(Path(family.__file__).read_text(encoding="utf-8")).body
               if isinstance(node, ast.ClassDef) and any(kw.arg == "kind" for kw in node.keywords)]
    assert sorted(defined) == sorted(cls.__name__ for cls in all_scenarios())


def test_demo_scenarios_are_fresh_and_tell_their_sessions_apart() -> None:
    """Each demo scenario opens its own session (its driver names it after `session_prefix`) when it runs."""
    first, second = demo_scenarios(), demo_scenarios()
    assert all(s.session is None for s in first + second) and first[0] is not second[0]
    prefixes = [s.session_prefix for s in first]
    assert len(set(prefixes)) == len(prefixes) and first[10].session_prefix == "defect"


def test_find_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(KeyError) as raised:
        find("negative-nope")
    assert str(raised.value).startswith("no scenario 'negative-nope'; known: RCV-01, ")


def test_a_subclass_without_a_kind_is_not_registered() -> None:
    class WithSuppression(VendorAsReceiver):
        pass

    assert find("RCV-01") is VendorAsReceiver and WithSuppression.kind == "happy"


def test_the_registry_refuses_taken_ids_and_unknown_kinds() -> None:
    registry = Registry()
    registry.add(VendorAsReceiver)
    registry.add(VendorAsReceiver)  # the same class again (a reload) is fine

    class Same(VendorAsReceiver):
        id = "RCV-01"

    Same.kind = "happy"
    with pytest.raises(ValueError, match="'RCV-01' .* is taken by scenarios.vendor_receiver"):
        registry.add(Same)
    Same.kind = "sideways"
    with pytest.raises(ValueError, match=f"is not one of {', '.join(KINDS)}"):
        registry.add(Same)

    class NoId(VendorAsReceiver):
        pass

    NoId.kind = "negative"
    with pytest.raises(ValueError, match="no id or no title of its own"):
        registry.add(NoId)
    class WrongPrefix(VendorAsReceiver):
        id = "SND-42"

    WrongPrefix.kind = "negative"
    with pytest.raises(ValueError, match="id 'SND-42' is not RCV-nn"):
        registry.add(WrongPrefix)

    class NoOutcome(VendorAsReceiver):
        id, outcome = "RCV-42", ""

    NoOutcome.kind = "negative"
    with pytest.raises(ValueError, match="declares no outcome"):
        registry.add(NoOutcome)
    assert [cls.id for cls in registry.classes()] == ["RCV-01"]


def test_the_readme_example_variation_registers_and_derives_its_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "How to add a negative variation" example works as written."""
    import scenarios.base
    from scenarios.runner import StepFailed

    readme = (SCENARIOS_DIR.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("**How to add a negative variation of the receiver flow.**", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    fresh = Registry()
    monkeypatch.setattr(scenarios.base, "registry", fresh)
    namespace = {"VendorAsReceiver": VendorAsReceiver, "ExpectedFinding": ExpectedFinding, "Steps": Steps,
                 "StepDef": StepDef, "Harness": Harness, "StepFailed": StepFailed}
    exec(compile(example, "README.md", "exec"), namespace)
    (cls,) = fresh.classes()
    assert cls.kind == "negative" and cls.vendor_role == "receiver" and cls.id == "RCV-90"
    assert cls().steps().names == ["create-sessions", "notify-late", "no-pull", "no-errors"]
    assert [e.rule for e in cls.expected] == ["NOTIF-016"] and cls.rules == ("NOTIF-016",)
