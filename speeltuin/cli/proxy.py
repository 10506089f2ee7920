"""`speeltuin proxy`: mitmdump with the validating addon between vendor and simulator."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from speeltuin import defaults
from speeltuin.cli.common import Subcommands, UserError, add_store_option, public_url

if TYPE_CHECKING:
    from speeltuin.store import Store


def cmd_proxy(args: argparse.Namespace) -> int:
    from proxy.launcher import ProxyPlan, mitmdump_command
    from speeltuin.records import ProxyPorts

    open_proxy_store(args.db).close()
    confdir = Path(args.confdir) if args.confdir else defaults.mitmproxy_confdir(args.instance_dir)
    ports = ProxyPorts(args.front_port, args.back_port, args.host)
    plan = ProxyPlan(simulator_url=args.simulator, vendor_url=args.vendor, ports=ports, database_url=args.db,
                     confdir=confdir.resolve(), block_on_error=args.block_on_error,
                     trusted_ca=trusted_ca(args), public_url=public_url(args.public_url))
    print(f"vendors reach the simulator at {ports.front_url}"
          + (f" (known to them as {plan.public_url})" if plan.public_url else "")
          + f"; the simulator reaches the vendor at {ports.back_url}", flush=True)
    become(mitmdump_command(plan))


def trusted_ca(args: argparse.Namespace) -> Path | None:
    """--trusted-ca, checked now: a file that is not there is a one-line error, not mitmdump's traceback."""
    if not args.trusted_ca:
        return None
    path = Path(args.trusted_ca).resolve()
    if not path.is_file():
        raise UserError(f"--trusted-ca: no file {args.trusted_ca}")
    return path


def open_proxy_store(url: str) -> "Store":
    """The store, or a UserError saying in one line why not (before mitmdump would say it with a traceback)."""
    from proxy.addon import store_problem
    from speeltuin.store import Store

    try:
        return Store(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open it is the user's to fix
        raise UserError(store_problem(url, exc)) from None


def become(command: list[str]) -> NoReturn:
    """Run mitmdump in this process's place, so a signal to it (Ctrl-C, SIGTERM) stops the proxy itself."""
    sys.stdout.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise UserError(f"cannot start {command[0]}: {exc.strerror or exc}") from exc


def register(sub: Subcommands) -> None:
    proxy = sub.add_parser("proxy", help="run mitmdump with the validating addon between vendor and simulator")
    proxy.add_argument("--simulator", required=True, help="URL where the simulator listens")
    proxy.add_argument("--vendor", required=True, help="URL where the vendor system listens")
    proxy.add_argument("--host", default=defaults.HOST)
    proxy.add_argument("--front-port", type=int, default=defaults.PROXY_FRONT_PORT,
                       help="vendors call the simulator here")
    proxy.add_argument("--back-port", type=int, default=defaults.PROXY_BACK_PORT,
                       help="the simulator calls the vendor here")
    proxy.add_argument("--public-url", help="the address vendors use for the simulator, when it is not the front "
                                            "port's (a load balancer or TLS-terminating reverse proxy in front): "
                                            "assertions' aud is judged against it")
    add_proxy_options(proxy)
    proxy.set_defaults(func=cmd_proxy)


def add_proxy_options(parser: argparse.ArgumentParser) -> None:
    """--db, --block-on-error and --confdir: what every command that runs the validating proxy takes."""
    add_store_option(parser)
    parser.add_argument("--block-on-error", action="store_true",
                        help="answer a token request, notification or cancellation that has errors in itself with an "
                             "OAuth error or an OperationOutcome (recorded), instead of forwarding it")
    parser.add_argument("--confdir", help="mitmproxy's settings (default: mitmproxy/ in the instance folder)")
    parser.add_argument("--trusted-ca", help="PEM of the test CA: assertions may carry an x5c chain to it")
