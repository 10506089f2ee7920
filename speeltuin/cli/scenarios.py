"""`speeltuin scenarios`: the scenario catalogue, in the order `speeltuin demo` runs it (no server, no store)."""
from __future__ import annotations

import argparse

from speeltuin.cli.common import ExitCode, Subcommands, add_format_option, print_as


def _text(listed: dict[str, list[dict[str, str]]]) -> str:
    return "\n".join(f"{s['id']:<7} {s['kind']:<9} {s['vendor_role']:<9} {s['title']}"
                     for s in listed["scenarios"])


def cmd_scenarios(args: argparse.Namespace) -> int:
    from scenarios.catalogue import all_scenarios

    listed = {"scenarios": [{"id": s.id, "kind": s.kind, "vendor_role": s.vendor_role, "title": s.title,
                             "description": s.description, "steps": s().steps().names, "outcome": s.outcome,
                             "rules": list(s.rules), "spec": s.spec, "catches": list(s.catches)}
                            for s in all_scenarios()]}
    print_as(args, listed, _text)
    return ExitCode.OK


def register(sub: Subcommands) -> None:
    scenarios = sub.add_parser("scenarios", help="the scenario catalogue: id, kind (happy or negative), your role, title "
                                                         "(JSON: also steps, outcome, rules, SPEC reference)")
    add_format_option(scenarios)
    scenarios.set_defaults(func=cmd_scenarios)
