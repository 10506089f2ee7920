"""The `speeltuin` command: serve the simulator, run the proxy, run the demo."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from simulator.cli_admin import AdminUserError, add_commands, add_tls_options, default_db_url, tls_files
from simulator.cli_validate import add_validate_commands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A mistake the user can fix; shown as one line, never as a traceback."""


def cmd_serve(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError
    from werkzeug.serving import make_server

    from simulator.app import SimulatorConfig, create_app
    from simulator.mtls import server_context

    admin_key = os.environ.get("SPEELTUIN_ADMIN_KEY")
    config = SimulatorConfig(database_url=args.db, public_url=args.public_url, ura=args.ura,
                             client_id=args.client_id, name=args.name)
    config.tls = tls_files(args)
    if args.trusted_ca:
        try:
            config.trusted_ca_pem = Path(args.trusted_ca).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read the test CA {args.trusted_ca}: {exc.strerror or exc}") from exc
    if admin_key:
        config.admin_key = admin_key
    try:
        app = create_app(config)
    except SQLAlchemyError as exc:
        raise UserError(f"cannot open the database {args.db!r}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
    _check_can_listen(args.host, args.port)  # werkzeug would print its own advice and exit instead
    context = server_context(config.tls) if config.tls else None
    server = make_server(args.host, args.port, app, threaded=True, ssl_context=context)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: finish cleanly, keep what was stored
    scheme = "https" if context else "http"
    print(f"speeltuin simulator '{args.name}' on {scheme}://{args.host}:{server.port}", flush=True)
    if not admin_key:
        print(f"admin key (X-Admin-Key): {config.admin_key}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def _check_can_listen(host: str, port: int) -> None:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def cmd_proxy(args: argparse.Namespace) -> int:
    from proxy.launcher import ProxyPlan, mitmdump_command

    plan = ProxyPlan(simulator_url=args.simulator, vendor_url=args.vendor, front_port=args.front_port,
                     back_port=args.back_port, database_url=args.db, confdir=Path(args.confdir).resolve(),
                     listen_host=args.host)
    print(f"vendors reach the simulator at {plan.front_url}; the simulator reaches the vendor at {plan.back_url}",
          flush=True)
    return subprocess.call(mitmdump_command(plan))


def cmd_demo(args: argparse.Namespace) -> int:
    from scenarios.happy import happy_scenarios
    from scenarios.negative import negative_scenarios
    from scenarios.reports import write_reports
    from scenarios.runner import Harness, run_scenarios
    from scenarios.stack import StackError, start_stack
    from simulator.store import Store
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
        harness = Harness(stack, store, patient_bsn=args.patient, wait_s=args.wait)
        run = run_scenarios(harness, happy_scenarios() + negative_scenarios(),
                            title="happy and non-happy flows against the reference vendor")
        store.close()
    written = write_reports(run, out)
    for scenario in run.scenarios:
        counts = scenario.counts()
        print(f"  [{scenario.status}] {scenario.title}: {len(scenario.exchanges)} exchanges, "
              f"{counts['error']} errors, {counts['warning']} warnings")
    errors = run.counts()["error"]
    print(f"result: {run.status}, {errors} error findings")
    print(f"report: {written['html']}")
    return EXIT_OK if run.status == "passed" and errors == 0 else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speeltuin", description="Twiin TA Notified Pull test environment")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the simulator (both roles, per session) and its admin API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--db", default=default_db_url(), help="SQLAlchemy URL (default: $SPEELTUIN_DATABASE_URL "
                                                                "or the SQLite file instance/speeltuin.sqlite)")
    serve.add_argument("--public-url", help="base URL at which vendors reach the simulator (the proxy's)")
    serve.add_argument("--ura", default="90000101", help="URA of the organisation the simulator plays")
    serve.add_argument("--client-id", default="speeltuin-simulator")
    serve.add_argument("--name", default="speeltuin simulator")
    serve.add_argument("--trusted-ca", help="PEM of the test CA: assertions may carry an x5c chain to it")
    add_tls_options(serve)
    serve.set_defaults(func=cmd_serve)

    proxy = sub.add_parser("proxy", help="run mitmdump with the validating addon between vendor and simulator")
    proxy.add_argument("--simulator", required=True, help="URL where the simulator listens")
    proxy.add_argument("--vendor", required=True, help="URL where the vendor system listens")
    proxy.add_argument("--host", default="127.0.0.1")
    proxy.add_argument("--front-port", type=int, default=8081, help="vendors call the simulator here")
    proxy.add_argument("--back-port", type=int, default=8082, help="the simulator calls the vendor here")
    proxy.add_argument("--db", default=default_db_url())
    proxy.add_argument("--confdir", default="instance/mitmproxy")
    proxy.set_defaults(func=cmd_proxy)

    demo = sub.add_parser("demo", help="start everything on loopback and run the happy scenarios end to end")
    demo.add_argument("--out", help="directory for databases, logs and reports (default out/demo-<time>)")
    demo.add_argument("--patient", default="999993653", help="BSN of the built-in test patient to use")
    demo.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the vendor per step")
    demo.set_defaults(func=cmd_demo)
    add_commands(sub)
    add_validate_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, AdminUserError) as exc:
        print(f"speeltuin: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
