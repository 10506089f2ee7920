"""`speeltuin service`: the service a vendor talks to, with one command: the simulator behind the validating proxy.

Vendors reach it at one public address (HTTP; HTTPS too with --tls-cert/--tls-key of the test CA): the proxy's
public listener, in reverse mode in front of the simulator, which listens on loopback only. The simulator's own
calls to vendors go through the proxy's forward listener (loopback only), so both directions are recorded and
judged. The simulator announces the public address in the store: the sessions' answers, `speeltuin session
create` and `session show` name it without being told.

Ctrl-C or SIGTERM stops every process it started (the simulator, mitmdump and the proxy's writer); when one of them
ends by itself, the others are stopped too and the command says which ended.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from speeltuin import defaults
from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    check_can_listen,
    local_host,
    public_url,
    url_host,
)
from speeltuin.cli.proxy import add_proxy_options, trusted_ca

STARTUP_S = 60.0
STOP_S = 20.0  # how long each process may take to stop before it is killed


def cmd_service(args: argparse.Namespace) -> int:
    from proxy.launcher import ServicePlan, service_command, write_trust_bundle
    from scenarios.stack import free_port

    scheme = "https" if args.tls_cert else "http"
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("--tls-cert and --tls-key go together (the public listener's certificate and its key)")
    check_can_listen(args.host, args.port)
    vendors_url = public_url(args.public_url) or f"{scheme}://{url_host(args.host)}:{args.port}"
    simulator_port, forward_port = free_port(), free_port()
    confdir = (Path(args.confdir) if args.confdir else defaults.mitmproxy_confdir(args.instance_dir)).resolve()
    admin_key = os.environ.get(defaults.ADMIN_KEY_ENV) or secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="speeltuin-service-") as work:
        certificate = _combined_certificate(args, Path(work)) if args.tls_cert else None
        plan = ServicePlan(simulator_url=f"http://127.0.0.1:{simulator_port}", public_host=args.host,
                           public_port=args.port, public_url=vendors_url, forward_port=forward_port,
                           database_url=args.db, confdir=confdir, certificate=certificate,
                           block_on_error=args.block_on_error,
                           vendor_ca=Path(args.tls_ca).resolve() if args.tls_ca else None,
                           client_certificate=certificate, trusted_ca=trusted_ca(args))
        serve = [sys.executable, "-m", "speeltuin.cli", "serve", "--host", "127.0.0.1", "--port",
                 str(simulator_port), "--db", args.db, "--public-url", vendors_url,
                 "--outbound-proxy", f"http://127.0.0.1:{forward_port}",
                 "--outbound-proxy-ca", str(Path(work) / "outbound-trust.pem"), "--ura", args.ura,
                 "--client-id", args.client_id, "--name", args.name, "--client-cert-from-proxy",
                 "--workers", str(args.workers)]
        if args.test_manager:
            serve.append("--test-manager")
        if args.trusted_ca:
            serve += ["--trusted-ca", args.trusted_ca]
        # before the simulator may call a vendor: what it trusts when it does so through the proxy
        write_trust_bundle(Path(work) / "outbound-trust.pem", confdir, Path(args.tls_ca) if args.tls_ca else None)
        return _run({"simulator": serve, "proxy": service_command(plan)},
                    {**os.environ, defaults.ADMIN_KEY_ENV: admin_key},
                    ready=[("127.0.0.1", simulator_port), (local_host(args.host), args.port)],
                    banner=[f"speeltuin service: vendors reach the simulator at {vendors_url}",
                            f"admin key (X-Admin-Key): {admin_key}" if defaults.ADMIN_KEY_ENV not in os.environ
                            else f"admin key: as set in {defaults.ADMIN_KEY_ENV}",
                            f"web UI: {vendors_url}/ui/ (case managers: `speeltuin users add NAME`)",
                            "Ctrl-C stops it"])


def _run(commands: dict[str, list[str]], env: dict[str, str], *, ready: list[tuple[str, int]],
         banner: list[str]) -> int:
    """Start the processes, wait until they listen, then until a signal or one of them ends; stop them all."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            try:
                processes[name] = subprocess.Popen(command, env=env, start_new_session=True)
            except OSError as exc:
                raise UserError(f"cannot start the {name} ({command[0]}): {exc.strerror or exc}") from exc
        ended = _wait_until_listening(processes, ready, stop)
        if ended is None and not stop.is_set():
            print("\n".join(banner), flush=True)
            ended = _wait_for_end(processes, stop)
        if ended is not None:
            print(f"speeltuin service: the {ended} ended (exit code {processes[ended].returncode}); stopping",
                  file=sys.stderr, flush=True)
            return ExitCode.FAILED
        return ExitCode.OK
    finally:
        _stop_all(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_until_listening(processes: dict[str, subprocess.Popen[bytes]], ready: list[tuple[str, int]],
                          stop: threading.Event) -> str | None:
    from scenarios.stack import accepts_tcp

    deadline = time.monotonic() + STARTUP_S
    waiting = list(ready)
    while waiting and not stop.is_set():
        ended = _ended(processes)
        if ended is not None:
            return ended
        if time.monotonic() > deadline:
            raise UserError(f"the service did not listen on {', '.join(f'{h}:{p}' for h, p in waiting)} within "
                            f"{STARTUP_S:.0f} s")
        waiting = [(host, port) for host, port in waiting if not accepts_tcp(port, host, timeout=0.5)]
        stop.wait(0.1)
    return None


def _wait_for_end(processes: dict[str, subprocess.Popen[bytes]], stop: threading.Event) -> str | None:
    while not stop.wait(0.5):
        ended = _ended(processes)
        if ended is not None:
            return ended
    return None


def _ended(processes: dict[str, subprocess.Popen[bytes]]) -> str | None:
    return next((name for name, process in processes.items() if process.poll() is not None), None)


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each (the proxy last: its connections to the simulator are closed by then, and it writes what it
    still holds before it ends), then SIGKILL to what is left of their
    process groups."""
    for name in sorted(processes, key=lambda name: name == "proxy"):
        process = processes[name]
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                print(f"speeltuin service: the {name} did not stop within {STOP_S:.0f} s; killing it",
                      file=sys.stderr, flush=True)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its own children too (start_new_session made the group)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()


def _combined_certificate(args: argparse.Namespace, work: Path) -> Path:
    """mitmproxy takes the key and the certificate chain in one PEM file."""
    try:
        pem = Path(args.tls_key).read_text() + "\n" + Path(args.tls_cert).read_text()
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    path = work / "public-listener.pem"
    path.touch(mode=0o600)
    path.write_text(pem)
    return path


def register(sub: Subcommands) -> None:
    service = sub.add_parser("service", help="the service vendors talk to: the simulator behind the validating "
                                             "proxy, at one public address")
    service.add_argument("--host", default=defaults.HOST, help="where the public listener listens")
    service.add_argument("--port", type=int, default=defaults.SERVE_PORT, help="the public port")
    service.add_argument("--public-url", help="the address vendors use, when it is not http(s)://HOST:PORT (e.g. "
                                              "behind a reverse proxy that terminates TLS)")
    service.add_argument("--tls-cert", help="HTTPS on the public port: its certificate chain (PEM, from "
                                            "`speeltuin pki issue`)")
    service.add_argument("--tls-key", help="its private key (PEM)")
    service.add_argument("--tls-ca", help="the test CA (PEM): the certificates of https:// vendors must chain to it "
                                          "(the certificate of --tls-cert is presented to them for mutual TLS); with --tls-cert, "
                                          "vendors' client certificates are checked against it for sessions with "
                                          "mtls")
    service.add_argument("--ura", default=defaults.OWN_URA,
                         help=f"URA of the organisation the simulator plays in new sessions: the Task.owner a "
                              f"sending vendor must use, the sub of the simulator's own authorization assertions "
                              f"(default {defaults.OWN_URA})")
    service.add_argument("--client-id", default=defaults.OWN_CLIENT_ID,
                         help="client id (iss = sub) of the simulator's client assertions to vendors' token "
                              f"endpoints in new sessions (default {defaults.OWN_CLIENT_ID})")
    service.add_argument("--name", default=defaults.SIMULATOR_NAME,
                         help=f"how the simulator names itself at GET / (default {defaults.SIMULATOR_NAME!r})")
    service.add_argument("--workers", type=int, default=2, metavar="N",
                         help="the simulator's gunicorn worker processes (default 2; each runs 16 threads)")
    service.add_argument("--test-manager", action="store_true",
                         help="run the scenarios asked for over POST /api/sessions/<id>/runs and the web UI")
    add_proxy_options(service)
    service.set_defaults(func=cmd_service)
