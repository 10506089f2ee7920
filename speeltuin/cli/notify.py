"""`speeltuin notify` and `speeltuin cancel`: the simulator (sending node) notifies the vendor, and cancels."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    add_store_option,
    add_tls_options,
    add_vendor_ca_option,
    open_store,
    print_as,
    tls_files,
    vendor_ca,
)

if TYPE_CHECKING:
    from speeltuin.keys import Signer
    from speeltuin.records import Session
    from speeltuin.store import Store


def _notifier_parts(args: argparse.Namespace) -> "tuple[Store, Signer, Session]":
    from speeltuin.keys import Signer

    store = open_store(args)
    session = store.get_session(args.session)
    if session is None:
        raise UserError(f"no session {args.session!r}")
    return store, Signer.load_or_create(store), session


def _delivery_text(result: dict[str, Any]) -> str:
    """What was sent and what the vendor answered, for people (`--format json` gives all of it)."""
    from validators.json_walk import dig
    from validators.task_reader import identifier_pairs, identifier_value, pull_targets

    task, delivery = result["task"], result["delivery"]
    offered = sum(1 for kind, _path in pull_targets(task) if kind == "search")
    identifier = next((value for _system, value in identifier_pairs(task)), None)
    lines = [f"sent: Task {identifier} ({task.get('status')}) for BSN {identifier_value(task, 'for')}, "
             f"{offered} queries, available until {dig(task, 'restriction', 'period', 'end')}; "
             f"notification {result['notification_id']}"]
    if "status" in delivery:
        lines.append(f"vendor answered: {delivery['status']}"
                     + (f", Location {delivery['location']}" if delivery.get("location") else ""))
        if delivery.get("body") and delivery["status"] >= 300:
            lines.append(f"  {delivery['body'][:500]}")
    else:
        lines.append(f"vendor not reached: {delivery.get('error')}")
    return "\n".join(lines)


def cmd_notify(args: argparse.Namespace) -> int:
    from simulator.fhir.patient_data import PatientData
    from simulator.outbound.client import Transport
    from simulator.outbound.notifier import NotifyError, notify

    store, signer, session = _notifier_parts(args)
    if not 0 < args.period_days <= 3650:
        raise UserError("--period-days must be from 1 to 3650")
    try:
        result = notify(store, signer, PatientData(store), session, args.patient, period_days=args.period_days,
                        workflow_task=args.workflow_task, transport=Transport(tls_files(args), vendor_ca=vendor_ca(args)))
    except NotifyError as exc:
        raise UserError(str(exc)) from exc
    print_as(args, result, _delivery_text)
    return ExitCode.OK if result["delivery"].get("status") in (200, 201) else ExitCode.FAILED


def cmd_cancel(args: argparse.Namespace) -> int:
    from simulator.outbound.client import Transport
    from simulator.outbound.notifier import NotifyError, cancel

    store, signer, session = _notifier_parts(args)
    try:
        result = cancel(store, signer, session, args.notification, transport=Transport(tls_files(args), vendor_ca=vendor_ca(args)))
    except NotifyError as exc:
        raise UserError(str(exc)) from exc
    print_as(args, result, _delivery_text)
    return ExitCode.OK if result["delivery"].get("status") == 200 else ExitCode.FAILED


def register(sub: Subcommands) -> None:
    notify = sub.add_parser("notify", help="make the simulator (sending node) notify the vendor")
    add_store_option(notify, with_format=True)
    notify.add_argument("--session", required=True)
    notify.add_argument("--patient", required=True, help="BSN of a test patient")
    notify.add_argument("--workflow-task", action="store_true", help="offer a Workflow Task too (basedOn)")
    notify.add_argument("--period-days", type=int, default=365, help="availability period (default 365)")
    add_tls_options(notify)
    add_vendor_ca_option(notify)
    notify.set_defaults(func=cmd_notify)
    cancel = sub.add_parser("cancel", help="cancel a notification the simulator sent")
    add_store_option(cancel, with_format=True)
    cancel.add_argument("--session", required=True)
    cancel.add_argument("--notification", required=True)
    add_tls_options(cancel)
    add_vendor_ca_option(cancel)
    cancel.set_defaults(func=cmd_cancel)
