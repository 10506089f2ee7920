"""Session set-up shared by the simulator tests: the same pairing the scenarios make, over real HTTP."""
from __future__ import annotations

from scenarios.pairing import pair_sessions as _pair_sessions
from tests.conftest import LiveNode


def pair_sessions(sim: LiveNode, ven: LiveNode, *, vendor_role: str) -> dict[str, str]:
    """Sessions 'sim-1' on `sim` and 'ven-1' on `ven`; `vendor_role` is the role `ven` plays for `sim`."""
    return _pair_sessions(sim, ven, vendor_role=vendor_role, sim_id="sim-1", ven_id="ven-1")
