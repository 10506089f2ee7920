"""Builds the mitmdump command that puts the proxy between vendor and simulator (reverse mode).

Two listeners: vendors reach the simulator through `front`, the simulator reaches the vendor through
`back`. Both record into the same store, so every exchange of a session is seen in one place.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from speeltuin.records import ProxyPorts

ADDON = Path(__file__).resolve().parent / "addon.py"


@dataclass(frozen=True)
class ProxyPlan:
    simulator_url: str  # where the simulator really listens
    vendor_url: str  # where the vendor system really listens
    ports: ProxyPorts  # where vendors call the simulator (front) and the simulator calls the vendor (back)
    database_url: str
    confdir: Path  # mitmproxy's own CA and settings, kept out of the user's home


def mitmdump_executable() -> str:
    candidate = Path(sys.executable).parent / "mitmdump"
    return str(candidate) if candidate.exists() else "mitmdump"


def mitmdump_command(plan: ProxyPlan) -> list[str]:
    return [
        mitmdump_executable(), "-q",
        "--listen-host", plan.ports.host,
        "--mode", f"reverse:{plan.simulator_url}@{plan.ports.front_port}",
        "--mode", f"reverse:{plan.vendor_url}@{plan.ports.back_port}",
        "--set", f"confdir={plan.confdir}",
        "--set", "termlog_verbosity=warn",
        "--set", f"body_size_limit={8 * 1024 * 1024}",
        "-s", str(ADDON),
        "--set", f"speeltuin_db={plan.database_url}",
        "--set", f"speeltuin_public_url={plan.ports.front_url}",
    ]
