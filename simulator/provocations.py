"""Provocations: the simulator misbehaving on purpose towards the vendor, per session (`"provoke": [...]` in the
session-create body), so that a scenario can see how the vendor copes. Unlike a fault switch (simulator/faults.py:
the reference vendor failing a check on purpose), a provocation is something a conformant counterpart may do and a
conformant vendor must survive.

Each acts where the simulator plays the sending node, i.e. in sessions whose vendor is the receiver:

- `refuse-pull-tokens`: the simulator's AS answers every pull-token request of the session 400 invalid_grant
  (RFC 6749 §5.2); the vendor must stop asking after a bounded number of tries (RCV-12).
- `unavailable-once`: per notification, the first request the vendor makes to the simulator's FHIR server (search,
  read or Binary) is answered 503 with `Retry-After: 1` and an OperationOutcome; later ones are served as usual.
  The vendor must retry and complete its pull (RCV-13).

A leaf that imports nothing: the endpoints read a session's provocations from `SessionConfig.provoke`.
"""
from __future__ import annotations

from typing import Iterable

REFUSE_PULL_TOKENS = "refuse-pull-tokens"
UNAVAILABLE_ONCE = "unavailable-once"

PROVOCATIONS: dict[str, str] = {
    REFUSE_PULL_TOKENS: "sender AS: answers every pull-token request in the session 400 invalid_grant",
    UNAVAILABLE_ONCE: "sender FHIR server: answers the first request per notification 503 with Retry-After: 1",
}
# The role the vendor must play in a session for the provocation to mean anything.
PROVOCATION_VENDOR_ROLES: dict[str, str] = {REFUSE_PULL_TOKENS: "receiver", UNAVAILABLE_ONCE: "receiver"}
RETRY_AFTER_S = 1  # what unavailable-once asks the vendor to wait


class UnknownProvocation(ValueError):
    """A provocation name that is not in PROVOCATIONS (the message lists the known ones), or one that does not fit
    the session's vendor role."""


def check_provocations(names: Iterable[str], *, vendor_role: str) -> tuple[str, ...]:
    """The provocations named, sorted and without repeats; UnknownProvocation for the first that cannot be."""
    chosen = sorted(set(names))
    for name in chosen:
        if name not in PROVOCATIONS:
            raise UnknownProvocation(f"unknown provocation {name!r}; known: {', '.join(sorted(PROVOCATIONS))}")
        if PROVOCATION_VENDOR_ROLES[name] != vendor_role:
            raise UnknownProvocation(f"{name} needs vendor_role {PROVOCATION_VENDOR_ROLES[name]!r} (the simulator "
                                     f"provokes it as the other node), not {str(vendor_role)!r}")
    return tuple(chosen)
