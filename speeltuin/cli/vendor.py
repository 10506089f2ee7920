"""`speeltuin vendor init/check`: the vendor.toml that describes a vendor's own system under test.

`init` writes a commented template (in the working directory by default: it is the user's own file, not
part of the instance folder); `check` reads one and shows what the test manager will use.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from speeltuin.cli.common import ExitCode, Subcommands, UserError, add_format_option, print_as

DEFAULT_PATH = "vendor.toml"


def cmd_vendor_init(args: argparse.Namespace) -> int:
    from scenarios.vendor_config import TEMPLATE

    path = Path(args.path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the path of the file to write, e.g. {path / DEFAULT_PATH}")
    if path.exists() and not args.force:
        raise UserError(f"{path} exists already; add --force to overwrite it with the template")
    try:
        path.write_text(TEMPLATE, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    print(f"wrote {path}: fill in your system's name, roles, URA, keys, endpoints and triggers, "
          f"then run `speeltuin vendor check {path}`")
    return ExitCode.OK


def cmd_vendor_check(args: argparse.Namespace) -> int:
    from scenarios.drivers import vendor_origin
    from scenarios.vendor_config import VendorConfigError, load_vendor_config

    try:
        config = load_vendor_config(args.path)
        origin = vendor_origin(config)  # `speeltuin run` puts the proxy in front of this one origin
    except VendorConfigError as exc:
        raise UserError(" ".join(str(exc).split())) from exc
    print_as(args, {**config.summary(), "origin": origin}, _text)
    return ExitCode.OK


def _text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['path']}: {summary['name']}",
             f"  roles: {', '.join(summary['roles'])}",
             f"  URA {summary['ura']}, client id {summary['client_id'] or '(made per session by the simulator)'}"
             f"{', mTLS' if summary['mtls'] else ''}",
             f"  keys: {summary['keys']}",
             f"  endpoints (origin {summary['origin']}, where the proxy forwards to):"]
    lines += [f"    {key:<18} {value}" for key, value in summary["endpoints"].items()]
    lines.append("  triggers:")
    lines += [f"    {action:<8} {described}" for action, described in summary["triggers"].items()]
    return "\n".join(lines)


def register(sub: Subcommands) -> None:
    vendor = sub.add_parser("vendor", help="describe your own system under test in a vendor.toml")
    actions = vendor.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write a commented vendor.toml template to fill in")
    init.add_argument("path", nargs="?", default=DEFAULT_PATH,
                      help=f"where to write it (default: {DEFAULT_PATH} in the working directory)")
    init.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    init.set_defaults(func=cmd_vendor_init)
    check = actions.add_parser("check", help="read a vendor.toml and show the roles, endpoints and triggers")
    check.add_argument("path", help="the vendor.toml")
    add_format_option(check)
    check.set_defaults(func=cmd_vendor_check)
