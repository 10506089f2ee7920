"""`speeltuin chain create/proxy`: chain tests, two vendor systems exchanging through the validating proxy.

A chain session names the sending and the receiving system (URA, client id, keys, where each really listens) and,
per system, the proxy's port in front of it. `speeltuin chain proxy` opens one reverse listener per such port and,
with --forward-port, a forward listener for systems that call each other by their own address (host mapping). Every
exchange is recorded and judged like the simulator's; what matches no session is kept as unmatched.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from speeltuin import defaults
from speeltuin.cli.common import ExitCode, Subcommands, UserError, add_store_option, open_store, print_as, \
    read_json_file
from speeltuin.cli.proxy import add_proxy_options, become, open_proxy_store, trusted_ca

ROLES = ("sender", "receiver")


def cmd_chain_create(args: argparse.Namespace) -> int:
    from simulator.sessions import SessionError, create_chain_session, session_view
    from speeltuin.cli.sessions import jwks_from_certificate

    request: dict[str, Any] = {"kind": "chain", "id": args.id, "name": args.name}
    for role in ROLES:
        party = {"ura": getattr(args, f"{role}_ura"), "client_id": getattr(args, f"{role}_client_id"),
                 "upstream": getattr(args, f"{role}_url"), "port": getattr(args, f"{role}_port"),
                 "jwks_url": getattr(args, f"{role}_jwks_url")}
        if getattr(args, f"{role}_jwks"):
            party["jwks"] = read_json_file(getattr(args, f"{role}_jwks"), f"{role} JWKS file")
        if getattr(args, f"{role}_cert"):
            party["jwks"] = jwks_from_certificate(getattr(args, f"{role}_cert"))
        request[role] = {k: v for k, v in party.items() if v is not None}
    try:
        session = create_chain_session(open_store(args), {k: v for k, v in request.items() if v is not None})
    except SessionError as exc:
        raise UserError(str(exc)) from exc
    print_as(args, session_view(session, f"http://{args.proxy_host}"), _chain_text)
    return ExitCode.OK


def _chain_text(view: dict[str, Any]) -> str:
    endpoints = view["endpoints"]
    return "\n".join([
        f"chain session {view['id']} ({view['name']})",
        f"  the receiver calls the sender at:  {endpoints['sender_base']}",
        f"  the sender calls the receiver at:  {endpoints['receiver_base']}",
        "start (or restart) `speeltuin chain proxy` to open its ports"])


def cmd_chain_proxy(args: argparse.Namespace) -> int:
    from proxy.launcher import ChainPlan, chain_command

    store = open_proxy_store(args.db)
    chains = [s for s in store.list_sessions() if s.config.chain is not None]
    store.close()
    reverse: list[tuple[int, str, str]] = []
    for session in chains:
        chain = session.config.chain
        assert chain is not None
        reverse += [(port, upstream, f"{session.id}: the {role}")
                    for port, upstream, role in ((chain.peer_port, chain.peer_upstream, "sender"),
                                                 (chain.vendor_port, chain.vendor_upstream, "receiver"))
                    if port is not None]
    if not reverse and args.forward_port is None:
        raise UserError("no chain session has a port to listen on: create one with `speeltuin chain create "
                        "... --sender-port P --receiver-port Q`, or give --forward-port")
    confdir = Path(args.confdir) if args.confdir else defaults.mitmproxy_confdir(args.instance_dir)
    plan = ChainPlan(host=args.host, reverse=tuple((port, upstream) for port, upstream, _ in reverse),
                     forward_port=args.forward_port, database_url=args.db, confdir=confdir.resolve(),
                     block_on_error=args.block_on_error, trusted_ca=trusted_ca(args))
    for port, upstream, what in reverse:
        print(f"port {port} -> {upstream} ({what})", flush=True)
    if args.forward_port is not None:
        print(f"forward proxy on port {args.forward_port}: chain systems without a port are known by their address",
              flush=True)
    become(chain_command(plan))


def register(sub: Subcommands) -> None:
    chain = sub.add_parser("chain", help="chain tests: two vendor systems exchange through the validating proxy")
    actions = chain.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a chain session between a sending and a receiving system")
    add_store_option(create, with_format=True)
    create.add_argument("--id", help="session id (default: generated)")
    create.add_argument("--name")
    for role in ROLES:
        create.add_argument(f"--{role}-ura", required=True, help=f"URA of the {role}'s organisation")
        create.add_argument(f"--{role}-client-id", required=True, help=f"client id the {role}'s assertions carry")
        create.add_argument(f"--{role}-url", required=True,
                            help=f"where the {role} system really listens (scheme://host:port)")
        create.add_argument(f"--{role}-port", type=int,
                            help=f"the proxy's port in front of the {role} (without: the other system reaches it "
                                 "through the forward listener, by its own address)")
        keys = create.add_mutually_exclusive_group()
        keys.add_argument(f"--{role}-jwks", help=f"file with the {role}'s public keys (JWKS)")
        keys.add_argument(f"--{role}-jwks-url", help=f"URL where the {role} publishes its JWKS")
        keys.add_argument(f"--{role}-cert", help=f"PEM certificate (chain) whose key signs the {role}'s assertions")
    create.add_argument("--proxy-host", default=defaults.HOST, help="the host `speeltuin chain proxy` listens on "
                                                                    "(for the addresses shown)")
    create.set_defaults(func=cmd_chain_create)

    proxy = actions.add_parser("proxy", help="run the validating proxy for every chain session")
    proxy.add_argument("--host", default=defaults.HOST, help="where its listeners listen")
    proxy.add_argument("--forward-port", type=int,
                       help="also a forward proxy here, for systems that call each other by their own address "
                            "(anyone who reaches it can use it: keep it on a private network)")
    add_proxy_options(proxy)
    proxy.set_defaults(func=cmd_chain_proxy)
