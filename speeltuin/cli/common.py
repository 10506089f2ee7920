"""What every command group shares: the exit codes, the one user-error type, the store and output options."""
from __future__ import annotations

import argparse
import json
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeAlias

from speeltuin import defaults
from speeltuin.records import TlsFiles
from validators import safe_json

if TYPE_CHECKING:
    from speeltuin.store import Store


class ExitCode(IntEnum):
    """The exit status of every command; CI pipelines depend on it."""

    OK = 0  # done; for checks: no error findings
    FAILED = 1  # ran, but the result is a failure: error findings, a refusal by the vendor, a failed scenario
    USAGE = 2  # a mistake the user can fix, or input that cannot be read
    VENDOR_UNREACHABLE = 3  # the vendor system did not answer, or a step waited for it in vain


class UserError(Exception):
    """A mistake the user can fix; shown as one line (exit 2), never as a traceback."""


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # where a group adds its commands


def add_store_option(parser: argparse.ArgumentParser, *, with_format: bool = False) -> None:
    """--db (resolved against the instance folder by `resolve_defaults`), and --format for commands that print data."""
    parser.add_argument("--db", help=f"SQLAlchemy URL of the store (default: ${defaults.DATABASE_ENV}, else "
                                     f"{defaults.DATABASE_FILE} in the instance folder)")
    if with_format:
        add_format_option(parser)


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def resolve_defaults(args: argparse.Namespace) -> None:
    """Fill in what depends on the instance folder, once the command line is read."""
    args.instance_dir = defaults.instance_dir(args.instance)
    if hasattr(args, "db") and not args.db:
        args.db = defaults.database_url(args.instance_dir)


def open_store(args: argparse.Namespace) -> "Store":
    from sqlalchemy.exc import SQLAlchemyError

    from speeltuin.store import Store

    try:
        return Store(args.db)
    except SQLAlchemyError as exc:
        raise UserError(f"cannot open the database {args.db!r}: {str(exc).splitlines()[0]}") from exc


def print_as(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    """JSON with --format json, else the text form for people."""
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.format == "json" else text(data))


def read_json_file(path: str, what: str) -> Any:
    try:
        return safe_json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UserError(f"{what} {path} is not valid JSON: {exc}") from exc


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", help="this node's certificate (PEM, from `speeltuin pki issue`)")
    parser.add_argument("--tls-key", help="its private key (PEM)")
    parser.add_argument("--tls-ca", help="the test CA (PEM) that client and vendor certificates chain to")


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS files named by the options: all three or none."""
    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if not any(given):
        return None
    if not all(given):
        raise UserError("--tls-cert, --tls-key and --tls-ca go together")
    files = TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_ca))
    for path in (files.cert, files.key, files.ca):
        if not path.is_file():
            raise UserError(f"cannot read {path}: no such file")
    return files


def add_vendor_ca_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vendor-ca", metavar="PEM",
                        help="what vendors' server certificates must chain to when the simulator calls an https:// "
                             "vendor, with or without mutual TLS (default: the --tls-ca, else the system's CAs); with "
                             "a test CA the certificate must also carry the session's vendor URA")


def vendor_ca(args: argparse.Namespace) -> str | None:
    if not args.vendor_ca:
        return None
    if not Path(args.vendor_ca).is_file():
        raise UserError(f"--vendor-ca: no file {args.vendor_ca}")
    return str(Path(args.vendor_ca).resolve())


def public_url(given: str | None) -> str | None:
    """--public-url, checked now: an absolute http(s) URL without query."""
    if not given:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"--public-url must be an absolute http(s) URL such as https://speeltuin.example.nl, "
                        f"got {given!r}")
    return given.rstrip("/")


def check_can_listen(host: str, port: int) -> None:
    """A UserError now, rather than a server's own advice later, when the address is taken or not ours."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def local_host(host: str) -> str:
    """The address to reach a listener on `host` from this machine (a wildcard means: on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host


def url_host(host: str) -> str:
    """`host` as the host part of a URL that reaches it from this machine (IPv6 in brackets)."""
    local = local_host(host)
    return f"[{local}]" if ":" in local else local
