"""The `speeltuin` commands that manage a simulator's store: sessions, notify, cancel, patients, pki.

They work on the same database as `speeltuin serve` (`--db`, default $SPEELTUIN_DATABASE_URL or the
SQLite file), so a case manager can prepare and drive sessions with or without the server running.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from simulator.store import DEFAULT_DB_PATH, Store, sqlite_url

if TYPE_CHECKING:
    from simulator.mtls import TlsFiles

EXIT_OK = 0


class AdminUserError(Exception):
    """A mistake the user can fix; the CLI shows it as one line (exit 2)."""


def default_db_url() -> str:
    return os.environ.get("SPEELTUIN_DATABASE_URL") or sqlite_url(DEFAULT_DB_PATH)


def _store(args: argparse.Namespace) -> Store:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return Store(args.db)
    except SQLAlchemyError as exc:
        raise AdminUserError(f"cannot open the database {args.db!r}: {str(exc).splitlines()[0]}") from exc


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", help="this node's certificate (PEM, from `speeltuin pki issue`)")
    parser.add_argument("--tls-key", help="its private key (PEM)")
    parser.add_argument("--tls-ca", help="the test CA (PEM) that client and vendor certificates chain to")


def tls_files(args: argparse.Namespace) -> "TlsFiles | None":
    """The TLS files named by the options: all three or none."""
    from simulator.mtls import TlsFiles

    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if not any(given):
        return None
    if not all(given):
        raise AdminUserError("--tls-cert, --tls-key and --tls-ca go together")
    files = TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_ca))
    for path in (files.cert, files.key, files.ca):
        if not path.is_file():
            raise AdminUserError(f"cannot read {path}: no such file")
    return files


def _print(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.format == "json" else text(data))


def _load_json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AdminUserError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise AdminUserError(f"{what} {path} is not valid JSON: {exc}") from exc


# --- sessions -----------------------------------------------------------------------------------
def cmd_session_create(args: argparse.Namespace) -> int:
    from simulator.sessions import SessionError, create_session, session_view

    request: dict[str, Any] = {"name": args.name, "vendor_role": args.vendor_role, "vendor_ura": args.vendor_ura,
                               "id": args.id, "vendor_client_id": args.vendor_client_id,
                               "vendor_token_url": args.vendor_token_url,
                               "vendor_notification_base": args.vendor_notification_base,
                               "vendor_fhir_base": args.vendor_fhir_base, "vendor_jwks_url": args.vendor_jwks_url,
                               "mtls": args.mtls}
    if args.vendor_jwks:
        request["vendor_jwks"] = _load_json_file(args.vendor_jwks, "JWKS file")
    if args.vendor_cert:
        request["vendor_jwks"] = _jwks_from_certificate(args.vendor_cert)
    store = _store(args)
    try:
        session = create_session(store, {k: v for k, v in request.items() if v is not None},
                                 own_ura=args.ura, own_client_id=args.client_id)
    except SessionError as exc:
        raise AdminUserError(str(exc)) from exc
    _print(args, session_view(session, args.public_url), _session_text)
    return EXIT_OK


def _jwks_from_certificate(path: str) -> dict[str, Any]:
    from cryptography import x509

    from simulator.pki import jwks_for

    try:
        chain = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        raise AdminUserError(f"cannot read certificate {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise AdminUserError(f"{path} holds no PEM certificate") from exc
    return jwks_for(chain[0], *chain[1:])


def _session_text(view: dict[str, Any]) -> str:
    lines = [f"session {view['id']} ({view['name']}): vendor is the {view['vendor_role']}, "
             f"the simulator the {view['simulator_role']}"]
    lines += [f"  {key}: {value}" for key, value in view["endpoints"].items()]
    return "\n".join(lines)


def cmd_session_list(args: argparse.Namespace) -> int:
    from simulator.sessions import session_view

    views = [session_view(s, args.public_url) for s in _store(args).list_sessions()]
    _print(args, views, lambda vs: "\n".join(f"{v['id']}\t{v['vendor_role']}\t{v['name']}" for v in vs)
           or "no sessions")
    return EXIT_OK


def cmd_session_show(args: argparse.Namespace) -> int:
    from simulator.sessions import session_view

    session = _store(args).get_session(args.session)
    if session is None:
        raise AdminUserError(f"no session {args.session!r}")
    _print(args, session_view(session, args.public_url), _session_text)
    return EXIT_OK


def cmd_session_delete(args: argparse.Namespace) -> int:
    if not _store(args).delete_session(args.session):
        raise AdminUserError(f"no session {args.session!r}")
    print(f"deleted session {args.session} with its notifications, tokens, exchanges and findings")
    return EXIT_OK


# --- notify and cancel ---------------------------------------------------------------------------
def _notifier_parts(args: argparse.Namespace) -> tuple[Store, Any, Any]:
    from simulator.keys import Signer

    store = _store(args)
    session = store.get_session(args.session)
    if session is None:
        raise AdminUserError(f"no session {args.session!r}")
    return store, Signer.load_or_create(store), session


def _delivery_text(result: dict[str, Any]) -> str:
    """What was sent and what the vendor answered, for people (`--format json` gives all of it)."""
    task, delivery = result["task"], result["delivery"]
    offered = sum(1 for i in task.get("input", []) if "valueString" in i) - 1  # minus the authorization base
    lines = [f"sent: Task {task['identifier'][0]['value']} ({task['status']}) for BSN "
             f"{task['for']['identifier']['value']}, {offered} queries, available until "
             f"{task['restriction']['period']['end']}; notification {result['notification_id']}"]
    if "status" in delivery:
        lines.append(f"vendor answered: {delivery['status']}"
                     + (f", Location {delivery['location']}" if delivery.get("location") else ""))
        if delivery.get("body") and delivery["status"] >= 300:
            lines.append(f"  {delivery['body'][:500]}")
    else:
        lines.append(f"vendor not reached: {delivery.get('error')}")
    return "\n".join(lines)


def cmd_notify(args: argparse.Namespace) -> int:
    from simulator.notifier import NotifyError, notify
    from simulator.patient_data import PatientData

    store, signer, session = _notifier_parts(args)
    if not 0 < args.period_days <= 3650:
        raise AdminUserError("--period-days must be from 1 to 3650")
    try:
        result = notify(store, signer, PatientData(store), session, args.patient, period_days=args.period_days,
                        workflow_task=args.workflow_task, tls=tls_files(args))
    except NotifyError as exc:
        raise AdminUserError(str(exc)) from exc
    _print(args, result, _delivery_text)
    return EXIT_OK if result["delivery"].get("status") in (200, 201) else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    from simulator.notifier import NotifyError, cancel

    store, signer, session = _notifier_parts(args)
    try:
        result = cancel(store, signer, session, args.notification, tls=tls_files(args))
    except NotifyError as exc:
        raise AdminUserError(str(exc)) from exc
    _print(args, result, _delivery_text)
    return EXIT_OK if result["delivery"].get("status") == 200 else 1


# --- patients and pki ------------------------------------------------------------------------------
def cmd_patients_list(args: argparse.Namespace) -> int:
    from simulator.patient_data import PatientData
    from testdata.patient_import import patient_to_dict

    rows = [patient_to_dict(p) for p in PatientData(_store(args)).all_patients()]
    _print(args, rows, lambda rs: "\n".join(
        f"{r['bsn']}\t{r['given']} {r['family']}\t{r['birth_date']}\t{r['sex']}\t{r['content']}"
        + (f"\tdeceased {r['deceased']}" if r.get("deceased") else "") for r in rs))
    return EXIT_OK


def cmd_patients_import(args: argparse.Namespace) -> int:
    from simulator.patient_data import PatientData
    from testdata.patient_import import PatientImportError, read_patient_file

    try:
        patients = read_patient_file(Path(args.file))
    except PatientImportError as exc:
        raise AdminUserError(str(exc)) from exc
    PatientData(_store(args)).import_patients(patients)
    print(f"imported {len(patients)} patient(s): {', '.join(p.bsn for p in patients)}")
    return EXIT_OK


def cmd_patients_import_fhir(args: argparse.Namespace) -> int:
    """Load FHIR test data; all or nothing. With --strict a file with error findings stops the load."""
    from datetime import date

    from testdata.fhir_import import FhirImportError, files_under, group_by_patient, judge, load_file, rows_to_store

    try:
        loaded = [load_file(path, today=date.today()) for path in files_under([Path(p) for p in args.paths])]
        judged = [(file, judge(file)) for file in loaded]
        for file, findings in judged:
            for f in findings:
                if f.severity == "error":
                    print(f"{file.path}: ERROR {f.rule} {f.location}: {f.message}")
        refused = [file.path for file, findings in judged if any(f.severity == "error" for f in findings)]
        if refused and args.strict:
            print(f"nothing loaded: --strict and {len(refused)} file(s) with error findings")
            return 1
        grouped = group_by_patient([r for file in loaded for r in file.resources])
        rows = rows_to_store(grouped)
    except FhirImportError as exc:
        raise AdminUserError(str(exc)) from exc
    try:
        _store(args).load_resources(rows, replace=args.replace)
    except ValueError as exc:
        raise AdminUserError(f"nothing loaded: {exc}") from exc
    patients = ", ".join(f"{bsn} ({len(members)})" for bsn, members in sorted(grouped.patients.items()))
    print(f"loaded {len(rows)} resources from {len(loaded)} files: patients {patients or 'none'}; "
          f"{len(grouped.shared)} shared")
    return 0


def cmd_patients_show(args: argparse.Namespace) -> int:
    """What each BgZ query returns for one patient, so a case manager sees what a pull will get."""
    from simulator.fhir_search import SearchError, parse_relative_query, search
    from simulator.patient_data import PatientData
    from validators.spec import BGZ_QUERIES, DOCUMENTS_QUERY

    data = PatientData(_store(args))
    if data.patient(args.bsn) is None:
        raise AdminUserError(f"no test patient with BSN {args.bsn}")
    own, shared = data.resources(args.bsn), data.shared()
    rows = []
    for query in (*BGZ_QUERIES, DOCUMENTS_QUERY):
        resource_type, params, lastn = parse_relative_query(query.query)
        try:
            result = search(own, shared, resource_type, params, lastn=lastn)
            rows.append({"query": query.number, "search": query.query, "matches": len(result.matches),
                         "includes": len(result.includes)})
        except SearchError as exc:
            rows.append({"query": query.number, "search": query.query, "error": str(exc)})
    _print(args, rows, lambda rs: "\n".join(
        f"{r['query']:>2}  {r.get('matches', '-'):>3} match {r.get('includes', 0):>3} incl  {r['search']}"
        + (f"  ({r['error']})" if "error" in r else "") for r in rs))
    return EXIT_OK


def cmd_pki_init(args: argparse.Namespace) -> int:
    from simulator.pki import PkiError, init_ca

    try:
        print(f"test CA certificate: {init_ca(Path(args.dir))}")
    except PkiError as exc:
        raise AdminUserError(str(exc)) from exc
    return EXIT_OK


def cmd_pki_issue(args: argparse.Namespace) -> int:
    from simulator.pki import PkiError, issue

    try:
        issued = issue(Path(args.dir), name=args.name, ura=args.ura, uzi_number=args.uzi, agb=args.agb)
    except PkiError as exc:
        raise AdminUserError(str(exc)) from exc
    print(f"key: {issued.key_path}\ncertificate: {issued.cert_path}\njwks: {issued.jwks_path}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    def common(parser: argparse.ArgumentParser, *, formats: bool = True) -> argparse.ArgumentParser:
        parser.add_argument("--db", default=default_db_url(), help="SQLAlchemy URL of the simulator's store")
        if formats:
            parser.add_argument("--format", choices=("text", "json"), default="text")
        return parser

    session = sub.add_parser("session", help="create, list, show or delete validation sessions")
    actions = session.add_subparsers(dest="action", required=True)
    create = common(actions.add_parser("create", help="create a session for one vendor system"))
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
    create.add_argument("--public-url", default="http://127.0.0.1:8080", help="where vendors reach the simulator")
    create.add_argument("--ura", default="90000101", help="URA of the organisation the simulator plays")
    create.add_argument("--client-id", default="speeltuin-simulator")
    create.add_argument("--mtls", action="store_true", help="require the vendor's client certificate (test CA)")
    create.set_defaults(func=cmd_session_create)
    for name, func, helptext in (("list", cmd_session_list, "list the sessions"),
                                 ("show", cmd_session_show, "show one session and its endpoints"),
                                 ("delete", cmd_session_delete, "delete a session and all it recorded")):
        parser = common(actions.add_parser(name, help=helptext), formats=name != "delete")
        if name != "list":
            parser.add_argument("session")
        if name != "delete":
            parser.add_argument("--public-url", default="http://127.0.0.1:8080")
        parser.set_defaults(func=func)

    notify = common(sub.add_parser("notify", help="make the simulator (sending node) notify the vendor"))
    notify.add_argument("--session", required=True)
    notify.add_argument("--patient", required=True, help="BSN of a test patient")
    notify.add_argument("--workflow-task", action="store_true", help="offer a Workflow Task too (basedOn)")
    notify.add_argument("--period-days", type=int, default=365, help="availability period (default 365)")
    add_tls_options(notify)
    notify.set_defaults(func=cmd_notify)
    cancel = common(sub.add_parser("cancel", help="cancel a notification the simulator sent"))
    cancel.add_argument("--session", required=True)
    cancel.add_argument("--notification", required=True)
    add_tls_options(cancel)
    cancel.set_defaults(func=cmd_cancel)

    patients = sub.add_parser("patients", help="list or import test patients")
    patient_actions = patients.add_subparsers(dest="action", required=True)
    common(patient_actions.add_parser("list", help="built-in and imported patients")).set_defaults(
        func=cmd_patients_list)
    imports = common(patient_actions.add_parser("import", help="import a CSV or JSON patient list"), formats=False)
    imports.add_argument("file")
    imports.set_defaults(func=cmd_patients_import)
    fhir = common(patient_actions.add_parser("import-fhir", help="load FHIR STU3 resources (XML/JSON, Bundles)"),
                  formats=False)
    fhir.add_argument("paths", nargs="+", metavar="PATH")
    fhir.add_argument("--replace", action="store_true", help="replace resources loaded before")
    fhir.add_argument("--strict", action="store_true", help="load nothing when a file has error findings")
    fhir.set_defaults(func=cmd_patients_import_fhir)
    show = common(patient_actions.add_parser("show", help="what each BgZ query returns for one patient"))
    show.add_argument("bsn")
    show.set_defaults(func=cmd_patients_show)

    pki = sub.add_parser("pki", help="the test CA and UZI-style certificates carrying a URA")
    pki_actions = pki.add_subparsers(dest="action", required=True)
    init = pki_actions.add_parser("init", help="create the test CA")
    init.add_argument("--dir", default="instance/pki")
    init.set_defaults(func=cmd_pki_init)
    issue_cmd = pki_actions.add_parser("issue", help="issue a key, certificate and JWKS for one system")
    issue_cmd.add_argument("--dir", default="instance/pki")
    issue_cmd.add_argument("--name", required=True)
    issue_cmd.add_argument("--ura", required=True)
    issue_cmd.add_argument("--uzi", default="900000001", help="UZI server number")
    issue_cmd.add_argument("--agb", default="00000000")
    issue_cmd.set_defaults(func=cmd_pki_issue)
