"""`speeltuin pki init/issue`: the test CA and UZI-style certificates carrying a URA."""
from __future__ import annotations

import argparse
from pathlib import Path

from speeltuin import defaults
from speeltuin.cli.common import ExitCode, Subcommands, UserError


def _pki_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else defaults.pki_dir(args.instance_dir)


def cmd_pki_init(args: argparse.Namespace) -> int:
    from testdata.pki import PkiError, init_ca

    try:
        print(f"test CA certificate: {init_ca(_pki_dir(args), name=args.name)}")
    except PkiError as exc:
        raise UserError(str(exc)) from exc
    return ExitCode.OK


def cmd_pki_issue(args: argparse.Namespace) -> int:
    from testdata.pki import PkiError, issue

    try:
        issued = issue(_pki_dir(args), name=args.name, ura=args.ura, uzi_number=args.uzi, agb=args.agb,
                       hosts=tuple(args.host or ("localhost", "127.0.0.1")))
    except PkiError as exc:
        raise UserError(str(exc)) from exc
    print(f"key: {issued.key_path}\ncertificate: {issued.cert_path}\njwks: {issued.jwks_path}")
    return ExitCode.OK


def register(sub: Subcommands) -> None:
    pki = sub.add_parser("pki", help="the test CA and UZI-style certificates carrying a URA")
    actions = pki.add_subparsers(dest="action", required=True)
    where = "folder of the test PKI (default: pki/ in the instance folder)"
    init = actions.add_parser("init", help="create the test CA")
    init.add_argument("--dir", help=where)
    init.add_argument("--name", help="the CA's name (default: 'speeltuin test CA' with a generated suffix, so that "
                                     "no two test CAs share a name)")
    init.set_defaults(func=cmd_pki_init)
    issue_cmd = actions.add_parser("issue", help="issue a key, certificate and JWKS for one system")
    issue_cmd.add_argument("--dir", help=where)
    issue_cmd.add_argument("--name", required=True)
    issue_cmd.add_argument("--ura", required=True)
    issue_cmd.add_argument("--uzi", default="900000001", help="UZI server number")
    issue_cmd.add_argument("--agb", default="00000000")
    issue_cmd.add_argument("--host", action="append", metavar="NAME_OR_IP",
                           help="a host name or IP address the certificate serves HTTPS for (repeat for more; "
                                "default: localhost and 127.0.0.1)")
    issue_cmd.set_defaults(func=cmd_pki_issue)
