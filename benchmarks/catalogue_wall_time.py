"""Wall time of the whole scenario catalogue, both roles, against the reference vendor: prints the figures.

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/catalogue_wall_time.py [--rounds N] [--quiet-period S]
Measures `speeltuin run --reference-vendor` as a user starts it (a process: stack start-up included) and, from its
JSON report, the time the scenarios themselves took. Target (issue 9): under 20 s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_round(folder: Path, quiet_period: float) -> tuple[float, float, int, str]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "speeltuin.cli", "--instance", str(folder / "instance"), "run", "--reference-vendor",
         "--report-dir", str(folder / "reports"), "--quiet-period", str(quiet_period)],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"the run failed (exit {completed.returncode}):\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    report = json.loads((folder / "reports" / "report.json").read_text())
    scenarios = report["finished_at"] - report["started_at"]
    return wall, scenarios, len(report["scenarios"]), report["status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet-period", type=float, default=3.0)
    args = parser.parse_args()
    print(f"catalogue against the reference vendor, {os.cpu_count()} CPU(s), quiet period {args.quiet_period:g} s")
    walls = []
    for n in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            wall, scenarios, count, status = one_round(Path(tmp), args.quiet_period)
        walls.append(wall)
        print(f"  round {n}: {count} scenarios {status}; wall {wall:.1f} s (scenarios {scenarios:.1f} s, "
              f"start-up and reports {wall - scenarios:.1f} s)")
    print(f"wall time: best {min(walls):.1f} s, median {sorted(walls)[len(walls) // 2]:.1f} s (target < 20 s)")


if __name__ == "__main__":
    main()
