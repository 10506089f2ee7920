"""Named steps: what a scenario does, one `StepDef` at a time, in a `Steps` sequence a variation edits by name.

`Steps` is immutable: `replace`, `insert_before`, `insert_after` and `remove` return a new sequence, so a
negative scenario derives its steps from the happy flow's without touching them (never by position).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from scenarios.runner import Harness


class UnknownName(KeyError):
    """A step (or scenario) name that is not there; the message names it and the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class StepDef:
    """One step of a scenario: a stable kebab-case name, the title reports show, and what it does.

    `run` returns the evidence shown when the step passes and raises StepFailed (with the evidence) when not.
    """

    name: str
    title: str
    run: Callable[[Harness], str]


class Steps:
    """An ordered sequence of uniquely named steps.

    An unknown name is an UnknownName (a KeyError), a duplicate one a ValueError; both list the names there are.
    """

    def __init__(self, *steps: StepDef) -> None:
        self._steps = self._checked(steps)

    def __iter__(self) -> Iterator[StepDef]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __getitem__(self, name: str) -> StepDef:
        for step in self._steps:
            if step.name == name:
                return step
        raise UnknownName(f"no step named {name!r}; the steps are: {', '.join(self.names) or '(none)'}")

    def __contains__(self, name: object) -> bool:
        return any(step.name == name for step in self._steps)

    def __repr__(self) -> str:
        return f"Steps({', '.join(self.names)})"

    @property
    def names(self) -> list[str]:
        return [step.name for step in self._steps]

    def replace(self, name: str, step: StepDef) -> Steps:
        """The steps with the step `name` replaced by `step` (which may bear another name)."""
        return self._edit(name, lambda _old: (step,))

    def insert_before(self, name: str, *steps: StepDef) -> Steps:
        """The steps with `steps` inserted, in order, just before the step `name`."""
        return self._edit(name, lambda old: (*steps, old))

    def insert_after(self, name: str, *steps: StepDef) -> Steps:
        """The steps with `steps` inserted, in order, just after the step `name`."""
        return self._edit(name, lambda old: (old, *steps))

    def remove(self, *names: str) -> Steps:
        """The steps without the named ones."""
        self._require(*names)
        return Steps(*(step for step in self._steps if step.name not in names))

    def _edit(self, name: str, edit: Callable[[StepDef], tuple[StepDef, ...]]) -> Steps:
        """The steps with the step `name` standing as what `edit` makes of it."""
        self._require(name)
        return Steps(*(new for step in self._steps for new in (edit(step) if step.name == name else (step,))))

    def _require(self, *names: str) -> None:
        for name in names:
            self[name]  # raises UnknownName

    @staticmethod
    def _checked(steps: Iterable[StepDef]) -> tuple[StepDef, ...]:
        checked = tuple(steps)
        seen: set[str] = set()
        for step in checked:
            if not isinstance(step, StepDef):
                raise TypeError(f"a step is a StepDef, got {step!r}")
            if step.name in seen:
                raise ValueError(f"two steps named {step.name!r}; the steps are: "
                                 f"{', '.join(s.name for s in checked)}")
            seen.add(step.name)
        return checked
