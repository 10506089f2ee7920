"""`speeltuin report` and `speeltuin exchanges`: a session's evidence, read from the store (no server needed).

The same answers as the simulator's evidence API (`/api/sessions/<id>/report.*`, `/api/sessions/<id>/exchanges`).
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from speeltuin.cli.common import (
    ExitCode,
    Subcommands,
    UserError,
    add_format_option,
    add_store_option,
    open_store,
    print_as,
)

REPORT_FORMATS = ("html", "json", "junit", "testreport")


def cmd_report(args: argparse.Namespace) -> int:
    from simulator.endpoints.evidence_api import session_document
    from speeltuin.session_report import REPORT_PAGE_SIZE, ReportPage, UnknownSession

    store, out = open_store(args), Path(args.out) if args.out else None

    def document(number: int = 1) -> tuple[ReportPage, str | Iterable[str]]:  # HTML pages link by file name
        return session_document(store, args.session, args.format, number, lambda n: page_file(out, n).name)

    try:
        first, body = document()
    except UnknownSession as exc:
        raise UserError(str(exc)) from exc
    if out is None:
        if first.count > 1:
            raise UserError(f"the HTML report of session {args.session} has {first.count} pages of "
                            f"{REPORT_PAGE_SIZE} exchanges: write them to files with --out FILE")
        _write(sys.stdout, body)
        print()
        return _exit(first.run.status)
    _save(out, body)
    for number in range(2, first.count + 1):
        _save(page_file(out, number), document(number)[1])
    more = (f" and {first.count - 1} more page(s) next to it, {page_file(out, 2).name} to "
            f"{page_file(out, first.count).name}") if first.count > 1 else ""
    print(f"{first.run.status}: {args.format} report of session {args.session} written to {out}{more}")
    return _exit(first.run.status)


def page_file(out: Path | None, number: int) -> Path:
    """Where page `number` of an HTML report written to `out` goes: `out` itself, then report-2.html, ..."""
    base = out or Path("report.html")
    return base if number == 1 else base.with_name(f"{base.stem}-{number}{base.suffix}")


def _save(path: Path, body: str | Iterable[str]) -> None:
    try:
        with path.open("w", encoding="utf-8") as file:
            _write(file, body)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write(file: Any, body: str | Iterable[str]) -> None:
    """Write a report as it comes (a streamed one piece by piece)."""
    for piece in [body] if isinstance(body, str) else body:
        file.write(piece)


def _exit(status: str) -> int:
    return ExitCode.FAILED if status == "failed" else ExitCode.OK


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _exchanges_text(page: dict[str, Any]) -> str:
    lines = []
    for ex in page["exchanges"]:
        counts = {severity: 0 for severity in ("error", "warning", "info")}
        for f in ex["findings"]:
            counts[f["severity"]] = counts.get(f["severity"], 0) + 1
        counted = ", ".join(f"{n} {severity}{'s' if n != 1 else ''}" for severity, n in counts.items())
        status = ex["status"] if ex["status"] is not None else "no answer"
        lines.append(f"{ex['id']}\t{_time(ex['started_at'])}\t{ex['direction']}\t{ex['tag']}\t"
                     f"{ex['method']} {ex['url']}\t{status}\t{counted}")
        for f in ex["findings"]:
            where = f" at {f['location']}" if f["location"] else ""
            excused = f" (suppressed: {f['suppressed']})" if f["suppressed"] else ""
            lines.append(f"    {f['severity']} {f['rule']}: {f['message']}{where}{excused}")
    if not lines:
        lines.append("no exchanges")
    if page["next"] is not None:
        lines.append(f"more: add --after {page['next']}")
    return "\n".join(lines)


def cmd_exchanges(args: argparse.Namespace) -> int:
    from speeltuin.session_report import BadParameter, ExchangeQuery, UnknownSession, query_exchanges

    try:
        query = ExchangeQuery.parse(tag=args.tag, severity=args.severity, since=args.since, after=args.after,
                                    limit=args.limit)
        page = query_exchanges(open_store(args), args.session, query)
    except BadParameter as exc:
        raise UserError(f"--{exc.name} {exc}") from exc
    except UnknownSession as exc:
        raise UserError(str(exc)) from exc
    print_as(args, page, _exchanges_text)
    return ExitCode.OK


def register(sub: Subcommands) -> None:
    report = sub.add_parser("report", help="a session's report: its recorded exchanges and findings "
                                           "(exit 1 when it has error findings)")
    add_store_option(report)
    report.add_argument("--session", required=True)
    report.add_argument("--format", choices=REPORT_FORMATS, default="html",
                        help="html, json, junit (JUnit XML) or testreport (FHIR STU3 TestReport)")
    report.add_argument("--out", metavar="FILE",
                        help="write the report there (default: print it). The HTML report of a session with more "
                             "exchanges than one page holds comes in pages, each with the summary and linked to the "
                             "others: FILE, then FILE-2, FILE-3, ... next to it (report.html, report-2.html, ...); "
                             "such a report needs --out. The other formats are one file, written as they are read")
    report.set_defaults(func=cmd_report)

    exchanges = sub.add_parser("exchanges", help="a session's recorded exchanges with their findings, newest last")
    add_store_option(exchanges)
    exchanges.add_argument("--session", required=True)
    exchanges.add_argument("--tag", help="only this kind: token-request, notification, search, read, binary, ...")
    exchanges.add_argument("--severity", help="only exchanges with a finding of this severity: error, warning, info")
    exchanges.add_argument("--since", metavar="EPOCH", help="only exchanges started after this time (epoch seconds)")
    exchanges.add_argument("--limit", help="at most this many (default 100, at most 1000)")
    exchanges.add_argument("--after", metavar="ID", help="the page after this exchange id (the `next` of a page)")
    add_format_option(exchanges)
    exchanges.set_defaults(func=cmd_exchanges)
