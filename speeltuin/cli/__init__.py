"""The `speeltuin` command: the composition root, which may import every part.

One module per command group; each adds its commands with `register(sub)`. Every command returns an
ExitCode; a UserError is shown as one line with exit status 2, never as a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from speeltuin import defaults
from speeltuin.cli import (
    chain,
    demo,
    evidence,
    har,
    notify,
    patients,
    pki,
    proxy,
    run,
    scenarios,
    serve,
    service,
    sessions,
    users,
    validate,
    vendor,
)
from speeltuin.cli.common import ExitCode, UserError, resolve_defaults

GROUPS = (serve, service, proxy, chain, demo, run, vendor, scenarios, sessions, notify, evidence, har, patients, pki, validate, users)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speeltuin", description="Twiin TA Notified Pull test environment")
    parser.add_argument("--instance", metavar="DIR",
                        help=f"where the store, test PKI and proxy settings live (default: ${defaults.INSTANCE_ENV}, "
                             "else $XDG_DATA_HOME/speeltuin or ~/.local/share/speeltuin)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resolve_defaults(args)
        return args.func(args)
    except UserError as exc:
        print(f"speeltuin: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except BrokenPipeError:  # the reader went away (`| head`): what it wanted it has; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
