"""`speeltuin demo`: everything on loopback, the happy and non-happy scenarios against the reference vendor."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from speeltuin import defaults
from speeltuin.cli.common import ExitCode, Subcommands, UserError


def cmd_demo(args: argparse.Namespace) -> int:
    from scenarios.catalogue import demo_scenarios
    from speeltuin.reports import WRITERS, write_reports
    from scenarios.runner import run_scenarios, stack_harness
    from scenarios.stack import StackError, start_stack
    from speeltuin.store import Store
    from testdata.patients import find_patient

    if find_patient(args.patient) is None:
        raise UserError(f"no built-in test patient with BSN {args.patient}")
    out = Path(args.out or f"out/demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    print(f"starting simulator, reference vendor and proxy (work dir {out}) …", flush=True)
    try:
        stack = start_stack(out)
    except StackError as exc:
        raise UserError(str(exc)) from exc
    with stack:
        store = Store(stack.simulator.database_url)
        harness = stack_harness(stack, store, patient_bsn=args.patient, wait_s=args.wait)
        scenarios = demo_scenarios()
        run = run_scenarios(harness, scenarios, workers=len(scenarios),  # each has its own pair of sessions
                            title="happy and non-happy flows against the reference vendor")
        store.close()
    written = write_reports(run, out, tuple(WRITERS))  # html, json, junit and the FHIR TestReport
    for scenario in run.scenarios:
        counts = scenario.counts()
        print(f"  [{scenario.status}] {scenario.title}: {len(scenario.exchanges)} exchanges, "
              f"{counts['error']} errors, {counts['warning']} warnings")
    errors = run.counts()["error"]
    print(f"result: {run.status}, {errors} error findings")
    print(f"report: {written['html']}")
    return ExitCode.OK if run.status == "passed" and errors == 0 else ExitCode.FAILED


def register(sub: Subcommands) -> None:
    demo = sub.add_parser("demo", help="start everything on loopback and run the happy scenarios end to end")
    demo.add_argument("--out", help="directory for databases, logs and reports (default out/demo-<time>)")
    demo.add_argument("--patient", default=defaults.DEMO_PATIENT_BSN, help="BSN of the built-in test patient to use")
    demo.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the vendor per step")
    demo.set_defaults(func=cmd_demo)
