"""`speeltuin patients list/import/import-fhir/show`: the test patients, built-in, imported and loaded."""
from __future__ import annotations

import argparse
from pathlib import Path

from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    add_store_option,
    open_store,
    print_as,
)


def cmd_patients_list(args: argparse.Namespace) -> int:
    from simulator.fhir.patient_data import PatientData
    from testdata.patient_import import patient_to_dict

    rows = [patient_to_dict(p) for p in PatientData(open_store(args)).all_patients()]
    print_as(args, rows, lambda rs: "\n".join(
        f"{r['bsn']}\t{r['given']} {r['family']}\t{r['birth_date']}\t{r['sex']}\t{r['content']}"
        + (f"\tdeceased {r['deceased']}" if r.get("deceased") else "") for r in rs))
    return ExitCode.OK


def cmd_patients_import(args: argparse.Namespace) -> int:
    from simulator.fhir.patient_data import PatientData
    from testdata.patient_import import PatientImportError, read_patient_file

    try:
        patients = read_patient_file(Path(args.file))
    except PatientImportError as exc:
        raise UserError(str(exc)) from exc
    PatientData(open_store(args)).import_patients(patients)
    print(f"imported {len(patients)} patient(s): {', '.join(p.bsn for p in patients)}")
    return ExitCode.OK


def cmd_patients_import_fhir(args: argparse.Namespace) -> int:
    """Load FHIR test data; all or nothing. With --strict a file with error findings stops the load."""
    from datetime import date

    from testdata.fhir_import import (
        FhirImportError,
        files_under,
        group_by_patient,
        load_files,
        rows_to_store,
        unique_resources,
    )

    try:
        loaded = load_files(files_under([Path(p) for p in args.paths]), today=date.today())
        for file in loaded:
            for f in file.findings:
                if f.severity == "error":
                    print(f"{file.path}: ERROR {f.rule} {f.location}: {f.message}")
        refused = [file.path for file in loaded if any(f.severity == "error" for f in file.findings)]
        if refused and args.strict:
            print(f"nothing loaded: --strict and {len(refused)} file(s) with error findings")
            return ExitCode.FAILED
        resources, duplicates = unique_resources(loaded)
        for warning in duplicates:
            print(f"warning: {warning}")
        grouped = group_by_patient(resources)
        rows = rows_to_store(grouped)
    except FhirImportError as exc:
        raise UserError(str(exc)) from exc
    try:
        open_store(args).load_resource_texts(rows, replace=args.replace)
    except ValueError as exc:
        raise UserError(f"nothing loaded: {exc}") from exc
    patients = ", ".join(f"{bsn} ({len(members)})" for bsn, members in sorted(grouped.patients.items()))
    print(f"loaded {len(rows)} resources from {len(loaded)} files: patients {patients or 'none'}; "
          f"{len(grouped.shared)} shared")
    return ExitCode.OK


def cmd_patients_show(args: argparse.Namespace) -> int:
    """What each BgZ query returns for one patient, so a case manager sees what a pull will get."""
    from simulator.fhir.patient_data import PatientData
    from simulator.fhir.search import SearchError, search
    from validators.spec import BGZ_QUERIES, DOCUMENTS_QUERY

    data = PatientData(open_store(args))
    if data.patient(args.bsn) is None:
        raise UserError(f"no test patient with BSN {args.bsn}")
    own, shared = data.resources(args.bsn), data.shared()
    rows = []
    for query in (*BGZ_QUERIES, DOCUMENTS_QUERY):
        try:
            result = search(own, shared, query.resource_type, query.search.params, lastn=query.search.lastn)
            rows.append({"query": query.number, "search": query.query, "matches": len(result.matches),
                         "includes": len(result.includes)})
        except SearchError as exc:
            rows.append({"query": query.number, "search": query.query, "error": str(exc)})
    print_as(args, rows, lambda rs: "\n".join(
        f"{r['query']:>2}  {r.get('matches', '-'):>3} match {r.get('includes', 0):>3} incl  {r['search']}"
        + (f"  ({r['error']})" if "error" in r else "") for r in rs))
    return ExitCode.OK


def register(sub: Subcommands) -> None:
    patients = sub.add_parser("patients", help="list or import test patients")
    actions = patients.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="built-in and imported patients")
    add_store_option(listing, with_format=True)
    listing.set_defaults(func=cmd_patients_list)
    imports = actions.add_parser("import", help="import a CSV or JSON patient list")
    add_store_option(imports)
    imports.add_argument("file")
    imports.set_defaults(func=cmd_patients_import)
    fhir = actions.add_parser("import-fhir", help="load FHIR STU3 resources (XML/JSON, Bundles)")
    add_store_option(fhir)
    fhir.add_argument("paths", nargs="+", metavar="PATH")
    fhir.add_argument("--replace", action="store_true", help="replace resources loaded before")
    fhir.add_argument("--strict", action="store_true", help="load nothing when a file has error findings")
    fhir.set_defaults(func=cmd_patients_import_fhir)
    show = actions.add_parser("show", help="what each BgZ query returns for one patient")
    add_store_option(show, with_format=True)
    show.add_argument("bsn")
    show.set_defaults(func=cmd_patients_show)
