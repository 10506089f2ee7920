"""`speeltuin session create/list/show/delete`: validation sessions, on the same store as `speeltuin serve`.

A case manager can prepare and drive sessions with or without the server running.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speeltuin import defaults
from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    add_store_option,
    open_store,
    print_as,
    read_json_file,
)

if TYPE_CHECKING:
    from speeltuin.store import Store


def cmd_session_create(args: argparse.Namespace) -> int:
    from simulator.sessions import SessionError, create_session, session_view
    from speeltuin.session_report import ACCESS_KEY_NOTE

    request: dict[str, Any] = {"name": args.name, "vendor_role": args.vendor_role, "vendor_ura": args.vendor_ura,
                               "id": args.id, "vendor_client_id": args.vendor_client_id,
                               "vendor_token_url": args.vendor_token_url,
                               "vendor_notification_base": args.vendor_notification_base,
                               "vendor_fhir_base": args.vendor_fhir_base, "vendor_jwks_url": args.vendor_jwks_url,
                               "mtls": args.mtls}
    if args.vendor_jwks:
        request["vendor_jwks"] = read_json_file(args.vendor_jwks, "JWKS file")
    if args.vendor_cert:
        request["vendor_jwks"] = jwks_from_certificate(args.vendor_cert)
    store = open_store(args)
    try:
        session = create_session(store, {k: v for k, v in request.items() if v is not None},
                                 own_ura=args.ura, own_client_id=args.client_id)
    except SessionError as exc:
        raise UserError(str(exc)) from exc
    # The session's own access key (X-Session-Key: its exchanges and report): printed this once only.
    view = session_view(session, _public_url(args, store))
    view.update(access_key=store.new_session_key(session.id), access_key_note=ACCESS_KEY_NOTE)
    print_as(args, view, _session_text)
    return ExitCode.OK


def _public_url(args: argparse.Namespace, store: "Store") -> str:
    """Where vendors reach the simulator: as given, else as the service (or `speeltuin serve`) last announced it in
    the store, else the default."""
    from speeltuin.store import PUBLIC_URL_SETTING

    return args.public_url or store.setting(PUBLIC_URL_SETTING) or defaults.PUBLIC_URL


def jwks_from_certificate(path: str) -> dict[str, Any]:
    from cryptography import x509

    from speeltuin.vendor_config import jwks_from_certificates

    try:
        chain = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read certificate {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UserError(f"{path} holds no PEM certificate") from exc
    try:
        return jwks_from_certificates(chain)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from exc


def _session_text(view: dict[str, Any]) -> str:
    lines = [f"chain session {view['id']} ({view['name']}): two vendor systems, no simulator"
             if view["kind"] == "chain" else f"session {view['id']} ({view['name']}): vendor is the "
                                             f"{view['vendor_role']}, the simulator the {view['simulator_role']}"]
    lines += [f"  {key}: {value}" for key, value in view["endpoints"].items()]
    if "access_key" in view:  # only when the session was just created
        lines += [f"  access_key: {view['access_key']}", view["access_key_note"]]
    return "\n".join(lines)


def cmd_session_list(args: argparse.Namespace) -> int:
    from simulator.sessions import session_view

    store = open_store(args)
    views = [session_view(s, _public_url(args, store)) for s in store.list_sessions()]
    print_as(args, views, lambda vs: "\n".join(
        f"{v['id']}\t{'chain' if v['kind'] == 'chain' else v['vendor_role']}\t{v['name']}" for v in vs)
        or "no sessions")
    return ExitCode.OK


def cmd_session_show(args: argparse.Namespace) -> int:
    from simulator.sessions import session_view

    store = open_store(args)
    session = store.get_session(args.session)
    if session is None:
        raise UserError(f"no session {args.session!r}")
    print_as(args, session_view(session, _public_url(args, store)), _session_text)
    return ExitCode.OK


def cmd_session_delete(args: argparse.Namespace) -> int:
    if not open_store(args).delete_session(args.session):
        raise UserError(f"no session {args.session!r}")
    print(f"deleted session {args.session} with its notifications, tokens, exchanges and findings")
    return ExitCode.OK


def register(sub: Subcommands) -> None:
    session = sub.add_parser("session", help="create, list, show or delete validation sessions")
    actions = session.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a session for one vendor system")
    add_store_option(create, with_format=True)
    create.add_argument("--name", required=True)
    create.add_argument("--vendor-role", required=True, choices=("sender", "receiver"))
    create.add_argument("--vendor-ura", required=True)
    create.add_argument("--id", help="session id (default: generated)")
    keys = create.add_mutually_exclusive_group()
    keys.add_argument("--vendor-jwks", help="file with the vendor's public keys (JWKS)")
    keys.add_argument("--vendor-jwks-url", help="URL where the vendor publishes its JWKS")
    keys.add_argument("--vendor-cert", help="PEM certificate (chain) whose key signs the vendor's assertions")
    create.add_argument("--vendor-client-id", help="client_id the vendor's assertions carry (default: generated)")
    create.add_argument("--vendor-token-url")
    create.add_argument("--vendor-notification-url", dest="vendor_notification_base",
                        help="the vendor's notification base: the simulator POSTs to <this>/Task")
    create.add_argument("--vendor-fhir-base")
    create.add_argument("--public-url", help="where vendors reach the simulator (default: what the running service "
                                             f"announced in the store, else {defaults.PUBLIC_URL})")
    create.add_argument("--ura", default=defaults.OWN_URA, help="URA of the organisation the simulator plays")
    create.add_argument("--client-id", default=defaults.OWN_CLIENT_ID)
    create.add_argument("--mtls", action="store_true", help="require the vendor's client certificate (test CA)")
    create.set_defaults(func=cmd_session_create)
    for name, func, helptext in (("list", cmd_session_list, "list the sessions"),
                                 ("show", cmd_session_show, "show one session and its endpoints"),
                                 ("delete", cmd_session_delete, "delete a session and all it recorded")):
        parser = actions.add_parser(name, help=helptext)
        add_store_option(parser, with_format=name != "delete")
        if name != "list":
            parser.add_argument("session")
        if name != "delete":
            parser.add_argument("--public-url", help="where vendors reach the simulator (default: as announced)")
        parser.set_defaults(func=func)
