"""`speeltuin serve`: the simulator and its admin API."""
from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from speeltuin import defaults
from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    add_store_option,
    add_tls_options,
    add_vendor_ca_option,
    check_can_listen,
    public_url,
    tls_files,
    url_host,
    vendor_ca,
)

if TYPE_CHECKING:
    from simulator.runtime import SimulatorConfig


def cmd_serve(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError
    from simulator.app import create_app
    from simulator.faults import UnknownFault, check_faults
    from simulator.http_server import simulator_server
    from simulator.mtls import server_context
    from simulator.runtime import SimulatorConfig
    from speeltuin.store import PUBLIC_URL_SETTING

    try:
        faults = check_faults(args.fault or ())
    except UnknownFault as exc:
        raise UserError(f"--fault: {exc}") from exc
    admin_key = os.environ.get(defaults.ADMIN_KEY_ENV)
    config = SimulatorConfig(database_url=args.db, public_url=public_url(args.public_url), ura=args.ura,
                             client_id=args.client_id, name=args.name, faults=faults,
                             outbound_proxy=args.outbound_proxy, outbound_proxy_ca=args.outbound_proxy_ca,
                             client_cert_from_proxy=args.client_cert_from_proxy,
                             vendor_ca=vendor_ca(args))
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
    if args.workers and config.tls:
        raise UserError("--workers serves plain HTTP: put TLS in front of it (`speeltuin service --tls-cert ...`, or "
                        "a reverse proxy), or leave --workers out to serve HTTPS with --tls-cert")
    check_can_listen(args.host, args.port)  # werkzeug would print its own advice and exit instead
    context = server_context(config.tls) if config.tls else None
    server = None if args.workers else simulator_server(args.host, args.port, app, ssl_context=context)
    port = server.port if server else args.port
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: finish cleanly, keep what was stored
    scheme = "https" if context else "http"
    # what `speeltuin session create/show` announce when not told: where vendors reach this simulator
    app.extensions["speeltuin"].store.set_setting(
        PUBLIC_URL_SETTING, (config.public_url or f"{scheme}://{url_host(args.host)}:{port}").rstrip("/"))
    print(f"speeltuin simulator '{args.name}' on {scheme}://{args.host}:{port}"
          + (f" ({args.workers} gunicorn worker(s) of {args.threads} threads)" if args.workers else ""), flush=True)
    if faults:
        print(f"faults switched on (misbehaves on purpose): {', '.join(sorted(faults))}", flush=True)
    if not admin_key:
        print(f"admin key (X-Admin-Key): {config.admin_key}", flush=True)
    stop_manager = _start_test_manager(args, config, f"{scheme}://{url_host(args.host)}:{port}") \
        if args.test_manager else None
    try:
        if server is None:
            app.extensions["speeltuin"].store.close()  # each worker opens its own: connections do not survive fork
            _run_gunicorn(config, args.host, port, workers=args.workers, threads=args.threads)
        else:
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if stop_manager is not None:
            stop_manager.set()
        if server is not None:
            server.server_close()
    return ExitCode.OK


def _run_gunicorn(config: "SimulatorConfig", host: str, port: int, *, workers: int, threads: int) -> None:
    """The simulator under gunicorn: `workers` processes of `threads` threads, each building its own app (and its own
    database connections) after the fork. No access log: every exchange is recorded in the store already."""
    from gunicorn.app.base import BaseApplication

    from simulator.app import create_app
    from simulator.http_server import WORKER_CLASS

    class Simulator(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
        def load_config(self) -> None:
            for name, value in {"bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}", "workers": workers,
                                "worker_class": WORKER_CLASS, "threads": threads,
                                # gunicorn's longest request line (werkzeug's is 64 kB); header lines as werkzeug's
                                "limit_request_line": 8190, "limit_request_field_size": 65536,
                                "accesslog": None, "errorlog": "-",
                                "loglevel": "warning", "timeout": 120, "graceful_timeout": 20,
                                # each answer closes its connection, as the single-process server's do: the proxy in
                                # front then holds no idle client connection open that a stop would cut short
                                "keepalive": 0,
                                "proc_name": f"speeltuin-{config.name}"}.items():
                self.cfg.set(name, value)

        def load(self) -> object:
            return create_app(config)

    Simulator().run()


def _start_test_manager(args: argparse.Namespace, config: "SimulatorConfig", url: str) -> threading.Event:
    """The test manager next to the simulator: it runs what POST /api/sessions/<id>/runs queues."""
    from scenarios.manager import work
    from scenarios.stack import Node
    from speeltuin.store import Store

    node = Node("simulator", url, config.public_url or url, config.admin_key, args.db, config.ura, config.client_id)
    stop = threading.Event()
    threading.Thread(target=work, args=(Store(args.db), node, stop), kwargs={"wait_s": args.manager_timeout},
                     name="test-manager", daemon=True).start()
    print("test manager: runs the scenarios asked for over POST /api/sessions/<id>/runs", flush=True)
    return stop


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def register(sub: Subcommands) -> None:
    serve = sub.add_parser("serve", help="run the simulator (both roles, per session) and its admin API")
    serve.add_argument("--host", default=defaults.HOST)
    serve.add_argument("--port", type=int, default=defaults.SERVE_PORT)
    add_store_option(serve)
    serve.add_argument("--public-url", help="base URL at which vendors reach the simulator (the proxy's)")
    serve.add_argument("--ura", default=defaults.OWN_URA, help="URA of the organisation the simulator plays")
    serve.add_argument("--client-id", default=defaults.OWN_CLIENT_ID)
    serve.add_argument("--name", default=defaults.SIMULATOR_NAME)
    serve.add_argument("--outbound-proxy", metavar="URL",
                       help="send the calls to http:// vendors through this proxy (the validating proxy's forward "
                            "listener, as `speeltuin service` sets it)")
    serve.add_argument("--outbound-proxy-ca", metavar="PEM",
                       help="the outbound proxy's CA: calls to https:// vendors go through the proxy too (it checks "
                            "the vendor's certificate and presents this node's)")
    serve.add_argument("--client-cert-from-proxy", action="store_true",
                       help="TLS ends at the validating proxy in front, which checks the vendors' client certificates "
                            "and passes them on (as `speeltuin service` sets it); only when the simulator listens "
                            "where nothing else can reach it")
    serve.add_argument("--trusted-ca", help="PEM of the test CA: assertions may carry an x5c chain to it")
    add_vendor_ca_option(serve)
    serve.add_argument("--fault", action="append", metavar="NAME",
                       help="misbehave on purpose in one way (repeatable), for the reference vendor; one of: "
                            + ", ".join(_fault_names()))
    serve.add_argument("--test-manager", action="store_true",
                       help="also run the scenarios asked for over POST /api/sessions/<id>/runs (vendors behind "
                            "the proxy, whose --public-url this is)")
    serve.add_argument("--workers", type=int, default=0, metavar="N",
                       help="serve with gunicorn: N worker processes (plain HTTP; for the shared service behind "
                            "`speeltuin service` or a TLS-terminating reverse proxy); default: one process")
    serve.add_argument("--threads", type=int, default=16, metavar="T",
                       help="with --workers: threads per worker (default 16)")
    serve.add_argument("--manager-timeout", type=float, default=60.0,
                       help="with --test-manager: seconds a step waits for the vendor (default 60)")
    add_tls_options(serve)
    serve.set_defaults(func=cmd_serve)


def _fault_names() -> list[str]:
    from simulator.faults import FAULTS

    return sorted(FAULTS)
