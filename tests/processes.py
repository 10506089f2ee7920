"""The machine's live processes, read from /proc: what a test started, and whether any of it outlived the test."""
from __future__ import annotations

from pathlib import Path


def processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                status = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines()
                              if ":\t" in line)
            except OSError:
                continue
            if not status.get("State", "").startswith("Z"):
                found[int(entry.name)] = (int(status.get("PPid", "0")), cmdline)
    return found


def processes_naming(marker: str, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """The live processes whose command line names `marker` (the test's own database file), and their
    descendants (the proxy's writer names no file); in `table` (one reading of /proc) when given."""
    table = processes() if table is None else table
    found = {pid for pid, (_, cmdline) in table.items() if marker in cmdline}
    grew = True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return sorted(found)
