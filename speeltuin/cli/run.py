"""`speeltuin run`: take a vendor system (its vendor.toml, or the built-in reference vendor) through the scenarios."""
from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from speeltuin import defaults
from speeltuin.cli.common import ExitCode, Subcommands, UserError, add_store_option

if TYPE_CHECKING:
    from scenarios.base import Scenario
    from speeltuin.results import RunResult

ROLES = ("sender", "receiver")
TIMED_OUT = "gave up waiting"  # how a step that waited in vain begins its evidence (scenarios/runner.py)


class TerminalProgress:
    """What the person at the terminal sees: each step as it ends, and what a step waits for, until when."""

    def step_started(self, scenario_id: str, name: str, title: str) -> None:
        pass

    def step_ended(self, scenario_id: str, name: str, title: str, status: str, detail: str) -> None:
        if status != "skipped":
            print(f"  {scenario_id}: [{status}] {title}", flush=True)

    def waiting(self, scenario_id: str, what: str, until: float) -> None:
        left = max(0, round(until - time.time()))
        clock = time.strftime("%H:%M:%S", time.localtime(until))
        print(f"  {scenario_id}: waiting for {what} ({left} s left, until {clock})", flush=True)

    def asked(self, scenario_id: str, instruction: str) -> None:
        """Guided mode: an action without a trigger is asked of the person at the terminal."""
        print(f"\n>>> {instruction}\n    (the run continues as soon as your system's traffic arrives)", flush=True)


def _expected_failures(path: str | None) -> set[str]:
    if not path:
        return set()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read --expected-failures {path}: {exc.strerror or exc}") from exc
    return {line.split("#", 1)[0].strip() for line in lines} - {""}


def _select(roles: tuple[str, ...], wanted: list[str] | None) -> list[Scenario]:
    from scenarios.catalogue import all_scenarios

    known = all_scenarios()
    if wanted:
        unknown = [w for w in wanted if w not in {cls.id for cls in known}]
        if unknown:
            raise UserError(f"no scenario {', '.join(unknown)}; known: {', '.join(cls.id for cls in known)}")
    chosen = [cls() for cls in known if cls.vendor_role in roles and (not wanted or cls.id in wanted)]
    if not chosen:
        raise UserError(f"no scenario for the role(s) {', '.join(roles)}"
                        + (f" among {', '.join(wanted)}" if wanted else ""))
    return chosen


def _reachable(origin: str) -> bool:
    parts = urlsplit(origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=5):
            return True
    except OSError:
        return False


def _write_reports(args: argparse.Namespace, run: RunResult, report_dir: Path) -> Path:
    from speeltuin.reports import WRITERS, write_reports

    written = write_reports(run, report_dir, tuple(WRITERS))
    for option, fmt in (("junit", "junit"), ("json", "json"), ("testreport", "testreport")):
        target = getattr(args, option)
        if target and fmt in WRITERS:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(WRITERS[fmt][1](run), encoding="utf-8")
    return written["html"]


def _exit_code(run: RunResult, expected: set[str]) -> int:
    failed = [s for s in run.scenarios if s.status == "failed" and s.id not in expected]
    if not failed:
        return ExitCode.OK
    timed_out = any(step.detail.startswith(TIMED_OUT) for s in failed for step in s.steps if step.status == "failed")
    return ExitCode.VENDOR_UNREACHABLE if timed_out else ExitCode.FAILED


def cmd_run(args: argparse.Namespace) -> int:
    from scenarios.drivers import ConfiguredVendor, vendor_origin
    from scenarios.runner import run_scenarios, stack_harness
    from scenarios.stack import StackError, start_stack
    from scenarios.vendor_config import VendorConfigError, load_vendor_config
    from speeltuin.records import ProxyPorts
    from speeltuin.store import Store

    expected = _expected_failures(args.expected_failures)
    config = None
    if args.vendor:
        try:
            config = load_vendor_config(args.vendor)
            origin = vendor_origin(config)
        except VendorConfigError as exc:
            raise UserError(str(exc)) from exc
        roles = tuple(r for r in config.roles if not args.role or r == args.role)
        if not roles:
            raise UserError(f"{args.vendor} does not play the role {args.role} (its roles: {', '.join(config.roles)})")
        if not _reachable(origin):
            print(f"speeltuin: the vendor system at {origin} does not answer", file=sys.stderr)
            return ExitCode.VENDOR_UNREACHABLE
    else:
        roles = (args.role,) if args.role else ROLES
    scenarios = _select(roles, args.scenario)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report_dir = Path(args.report_dir or args.instance_dir / "runs" / stamp).resolve()
    workdir = report_dir / "work"
    print(f"starting the simulator and the proxy{'' if config else ' and the reference vendor'} "
          f"(logs in {workdir}) …", flush=True)
    try:
        if config:
            stack = start_stack(workdir, vendor_url=origin, database_url=args.db,
                                ports=ProxyPorts(args.front_port, args.back_port))
        else:
            stack = start_stack(workdir)
    except StackError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:  # start_stack has stopped what it started
        print("speeltuin: stopped by the user while starting; no scenario was run", file=sys.stderr)
        return ExitCode.FAILED
    with stack:
        store = Store(stack.simulator.database_url)
        driver = ConfiguredVendor(config, stack.proxy.back_url) if config else None
        harness = stack_harness(stack, store, vendor=driver, patient_bsn=args.patient, wait_s=args.timeout,
                                quiet_s=args.quiet_period, progress=TerminalProgress())
        title = f"{len(scenarios)} scenario(s) against {driver.label if driver else 'the reference vendor'}"
        print(f"{title}; vendors reach the simulator at {stack.proxy.front_url}", flush=True)
        # the reference vendor gets a pair of sessions per scenario, so its scenarios run side by side;
        # a real system has one session per role, so its scenarios run one after the other
        run = run_scenarios(harness, scenarios, title=title, workers=1 if driver else len(scenarios))
        store.close()
    html = _write_reports(args, run, report_dir)
    for scenario in run.scenarios:
        mark = " (expected to fail)" if scenario.status == "failed" and scenario.id in expected else ""
        print(f"  [{scenario.status}] {scenario.id}: {scenario.title}{mark}")
    print(f"result: {run.status}, {run.counts()['error']} error findings")
    print(f"report: {html}")
    return _exit_code(run, expected)


def register(sub: Subcommands) -> None:
    run = sub.add_parser("run", help="run the scenarios against your system (vendor.toml) or the reference vendor")
    who = run.add_mutually_exclusive_group(required=True)
    who.add_argument("--vendor", metavar="vendor.toml", help="your system, as `speeltuin vendor init` describes it")
    who.add_argument("--reference-vendor", action="store_true", help="the built-in reference vendor (as `demo`)")
    run.add_argument("--role", choices=ROLES, help="only the scenarios where your system plays this role")
    run.add_argument("--scenario", action="append", metavar="ID", help="only this scenario (repeatable; see "
                                                                        "`speeltuin scenarios`)")
    run.add_argument("--report-dir", help="where the reports go (default: runs/<time> in the instance folder)")
    run.add_argument("--junit", metavar="FILE", help="also write the JUnit XML here")
    run.add_argument("--json", metavar="FILE", help="also write the JSON report here")
    run.add_argument("--testreport", metavar="FILE", help="also write the FHIR TestReport here")
    run.add_argument("--expected-failures", metavar="FILE",
                     help="scenario ids (one per line) whose failure does not fail the run")
    run.add_argument("--timeout", type=float, default=60.0, help="seconds a step waits for your system (default 60)")
    run.add_argument("--quiet-period", type=float, default=3.0,
                     help="seconds your system is watched for a request it must not make (default 3)")
    run.add_argument("--patient", default=defaults.DEMO_PATIENT_BSN, help="BSN of the test patient")
    run.add_argument("--front-port", type=int, default=defaults.PROXY_FRONT_PORT,
                     help=f"with --vendor: where your system reaches the simulator (default "
                          f"{defaults.PROXY_FRONT_PORT})")
    run.add_argument("--back-port", type=int, default=defaults.PROXY_BACK_PORT,
                     help=f"with --vendor: where the simulator's calls to your system pass (default "
                          f"{defaults.PROXY_BACK_PORT})")
    add_store_option(run)
    run.set_defaults(func=cmd_run)
