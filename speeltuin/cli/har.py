"""`speeltuin export-har`: a session's recorded exchanges as a HAR 1.2 file, read from the store (no server needed).

The file is written as the exchanges are read, a batch at a time, next to its place and moved there when it is
whole: a big session never sits in memory, and a failed export leaves no half file behind.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

from speeltuin.cli.common import ExitCode, Subcommands, UserError, add_store_option, open_store

if TYPE_CHECKING:
    from speeltuin.records import Exchange

STDOUT = "-"


def cmd_export_har(args: argparse.Namespace) -> int:
    from proxy.redaction import redact_headers
    from speeltuin.har import Redaction, har_pieces
    from speeltuin.session_report import session_exchanges

    store = open_store(args)
    session = store.get_session(args.session)
    if session is None:
        raise UserError(f"no session {args.session!r}")
    target = None if args.file == STDOUT else _target(Path(args.file), args.force)
    counted = _Counted(session_exchanges(store, session.id))
    pieces = har_pieces(
        counted, version=_version(), redaction=Redaction(headers=redact_headers),
        suppressions=store.list_suppressions(session.id),
        comment=f"speeltuin validation session {session.id} ({session.name}): the exchanges the proxy recorded, "
                "oldest first, redacted; _speeltuin holds each one's findings",
        about={"session": session.id, "name": session.name, "vendor_role": str(session.vendor_role)})
    if target is None:
        _write(sys.stdout.buffer, pieces)
        sys.stdout.flush()
        return ExitCode.OK
    _save(target, pieces)
    print(f"HAR of session {session.id} ({counted.count} exchanges) written to {target}")
    return ExitCode.OK


def _target(path: Path, force: bool) -> Path:
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the path of the file to write, e.g. {path / 'session.har'}")
    if path.exists() and not force:
        raise UserError(f"{path} exists already; add --force to overwrite it")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: no folder {path.parent}")
    return path


def _save(path: Path, pieces: Iterable[str]) -> None:
    """Write next to `path`, then move the whole file there."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as file:
            _write(file, pieces)
        os.replace(partial, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _write(file: BinaryIO, pieces: Iterable[str]) -> None:
    for piece in pieces:
        file.write(piece.encode("utf-8"))  # HAR files are UTF-8, whatever the terminal's encoding


def _version() -> str:
    try:
        return metadata.version("speeltuin")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Counted:
    """The exchanges as they pass, counted."""

    def __init__(self, exchanges: Iterable[Exchange]) -> None:
        self._exchanges, self.count = exchanges, 0

    def __iter__(self) -> Iterator[Exchange]:
        for ex in self._exchanges:
            self.count += 1
            yield ex


def register(sub: Subcommands) -> None:
    export = sub.add_parser("export-har", help="a session's recorded exchanges as a HAR 1.2 file, redacted, with "
                                               "their findings (for browser dev tools, HAR viewers, mitmproxy)")
    add_store_option(export)
    export.add_argument("--session", required=True)
    export.add_argument("file", metavar="FILE", help="where to write it; - prints it")
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    export.set_defaults(func=cmd_export_har)
