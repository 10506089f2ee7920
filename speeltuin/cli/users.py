"""`speeltuin users add/list/remove`: the case managers' accounts of the web UI (/ui/), on the server's store.

Passwords are read without echo (getpass, asked twice), or from standard input with `--password-stdin` for
scripts; the store keeps only an argon2id hash.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime, timezone

from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    add_format_option,
    add_store_option,
    open_store,
    print_as,
)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    try:
        password = getpass.getpass(f"password for {args.username}: ")
        again = getpass.getpass("the same password again: ")
    except (EOFError, KeyboardInterrupt) as exc:
        raise UserError("no password given (use --password-stdin to pass it on standard input)") from exc
    if password != again:
        raise UserError("the two passwords differ; nothing was changed")
    return password


def cmd_users_add(args: argparse.Namespace) -> int:
    from speeltuin.store import AccountError, check_new_user

    password = _read_password(args)
    try:
        check_new_user(args.username, password)  # before opening the store: a mistake changes nothing
        open_store(args).add_user(args.username, password)
    except AccountError as exc:
        hint = "; `speeltuin users remove` it first to set a new password" if "exists already" in str(exc) else ""
        raise UserError(f"{exc}{hint}") from exc
    print(f"added case manager {args.username}: signs in at /ui/sign-in")
    return ExitCode.OK


def cmd_users_list(args: argparse.Namespace) -> int:
    accounts = open_store(args).list_users()

    def text(rows: list[dict[str, object]]) -> str:
        return "\n".join(f"{r['username']}\tadded {_when(float(r['created_at']))}"  # type: ignore[arg-type]
                         for r in rows) or "no users (add one: speeltuin users add USERNAME)"

    print_as(args, accounts, text)
    return ExitCode.OK


def cmd_users_remove(args: argparse.Namespace) -> int:
    if not open_store(args).remove_user(args.username):
        raise UserError(f"no user {args.username!r} (`speeltuin users list` shows them)")
    print(f"removed case manager {args.username}; the web sessions signed in as this user end")
    return ExitCode.OK


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(sub: Subcommands) -> None:
    users = sub.add_parser("users", help="case managers' accounts for the web UI: add, list, remove")
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a case manager (the password is asked for, never shown)")
    add_store_option(add)
    add.add_argument("username", help="1-64 letters, digits, '.', '_', '@' or '-'")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input (for scripts)")
    add.set_defaults(func=cmd_users_add)
    listing = actions.add_parser("list", help="list the case managers")
    add_store_option(listing)
    add_format_option(listing)
    listing.set_defaults(func=cmd_users_list)
    remove = actions.add_parser("remove", help="remove a case manager")
    add_store_option(remove)
    remove.add_argument("username")
    remove.set_defaults(func=cmd_users_remove)
