"""`speeltuin proxy`: mitmdump with the validating addon between vendor and simulator."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from speeltuin import defaults
from speeltuin.cli.common import Subcommands, UserError, add_store_option


def cmd_proxy(args: argparse.Namespace) -> int:
    from proxy.addon import store_problem
    from proxy.launcher import ProxyPlan, mitmdump_command
    from speeltuin.records import ProxyPorts
    from speeltuin.store import Store

    try:  # said here in one line, before mitmdump would say it with a traceback
        Store(args.db).close()
    except Exception as exc:  # noqa: BLE001 - any failure to open it is the user's to fix
        raise UserError(store_problem(args.db, exc)) from None

    confdir = Path(args.confdir) if args.confdir else defaults.mitmproxy_confdir(args.instance_dir)
    ports = ProxyPorts(args.front_port, args.back_port, args.host)
    plan = ProxyPlan(simulator_url=args.simulator, vendor_url=args.vendor, ports=ports, database_url=args.db,
                     confdir=confdir.resolve(), block_on_error=args.block_on_error)
    print(f"vendors reach the simulator at {ports.front_url}; the simulator reaches the vendor at {ports.back_url}",
          flush=True)
    command = mitmdump_command(plan)
    sys.stdout.flush()
    # mitmdump takes this process's place, so a signal to it (Ctrl-C, SIGTERM) stops the proxy itself.
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise UserError(f"cannot start {command[0]}: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def register(sub: Subcommands) -> None:
    proxy = sub.add_parser("proxy", help="run mitmdump with the validating addon between vendor and simulator")
    proxy.add_argument("--simulator", required=True, help="URL where the simulator listens")
    proxy.add_argument("--vendor", required=True, help="URL where the vendor system listens")
    proxy.add_argument("--host", default=defaults.HOST)
    proxy.add_argument("--front-port", type=int, default=defaults.PROXY_FRONT_PORT,
                       help="vendors call the simulator here")
    proxy.add_argument("--back-port", type=int, default=defaults.PROXY_BACK_PORT,
                       help="the simulator calls the vendor here")
    add_store_option(proxy)
    proxy.add_argument("--block-on-error", action="store_true",
                       help="answer a token request, notification or cancellation that has errors in itself with an "
                            "OAuth error or an OperationOutcome (recorded), instead of forwarding it")
    proxy.add_argument("--confdir", help="mitmproxy's settings (default: mitmproxy/ in the instance folder)")
    proxy.set_defaults(func=cmd_proxy)
