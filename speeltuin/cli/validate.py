"""`speeltuin validate` and `speeltuin rules`: the stable CLI contract CI pipelines depend on.

Exit status of validate: 0 no error findings, 1 error findings, 2 usage error or unreadable input.
`--format json` output follows validators/validate_output.schema.json; `rules --format json` follows
validators/rules_output.schema.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from speeltuin.cli.common import ExitCode, Subcommands, UserError, add_format_option
from validators import safe_json

SUFFIXES = (".json", ".xml", ".jwt", ".jws", ".txt", ".form", ".pdf")
MAX_FILE_BYTES = 50 * 1024 * 1024


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not inside:  # a CI gate pointed at the wrong folder must not pass on nothing
                raise UserError(f"no files to validate in {name} (looked for {', '.join(SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"cannot read {name}: No such file or directory")
    return list(dict.fromkeys(found))  # a file named twice is validated once


def _suppressions(pairs: list[str], known: set[str]) -> dict[str, str]:
    suppressed = {}
    for pair in pairs:
        rule_id, sep, reason = pair.partition("=")
        if not sep or not reason.strip():
            raise UserError(f"--suppress takes RULE=REASON, got {pair!r}")
        if rule_id not in known:
            raise UserError(f"--suppress: no rule {rule_id!r} in the catalogue (see `speeltuin rules`)")
        suppressed[rule_id] = reason.strip()
    return suppressed


def cmd_validate(args: argparse.Namespace) -> int:
    from validators.catalogue import load_all
    from validators.dispatch import UnreadableInput, apply_suppressions, validate_bytes

    suppressed = _suppressions(args.suppress or [], set(load_all()))
    if args.audience is not None and not args.audience.strip():
        raise UserError("--audience needs the token endpoint URL")
    jwks = _jwks(args.jwks) if args.jwks else None
    files: list[dict[str, Any]] = []
    for path in _files(args.paths):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise UserError(f"cannot read {path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            result = validate_bytes(data, kind=args.kind, audience=args.audience, jwks=jwks)
        except UnreadableInput as exc:
            raise UserError(f"cannot read {path}: {exc}") from exc
        kept, dropped = apply_suppressions(result.findings, suppressed)
        entry: dict[str, Any] = {"path": str(path), "kind": result.kind, "findings": [f.to_dict() for f in kept]}
        if dropped:
            entry["suppressed"] = [{**f.to_dict(), "reason": reason} for f, reason in dropped]
        files.append(entry)
    summary = {f"{severity}s": sum(1 for file in files for f in file["findings"] if f["severity"] == severity)
               for severity in ("error", "warning", "info")}
    if args.format == "json":
        print(json.dumps({"files": files, "summary": summary}, indent=2, ensure_ascii=False))
    else:
        for file in files:
            for f in file["findings"]:
                print(f"{file['path']}: {f['severity'].upper()} {f['rule']} {f['location']}: {f['message']}")
            for f in file.get("suppressed", []):
                print(f"{file['path']}: suppressed {f['rule']} {f['location']}: {f['message']} ({f['reason']})")
        print(f"{summary['errors']} errors, {summary['warnings']} warnings, {summary['infos']} infos "
              f"in {len(files)} files")
    return ExitCode.FAILED if summary["errors"] else ExitCode.OK


def _jwks(path: str) -> dict:
    try:
        data = safe_json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UserError(f"--jwks {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise UserError(f'--jwks {path} is not a JWKS ({{"keys": [...]}})')
    return data


def cmd_rules(args: argparse.Namespace) -> int:
    from validators.catalogue import catalogue

    rules = [{"id": e.rule.id, "severity": e.rule.severity, "title": e.rule.title, "reference": e.rule.reference,
              "where": e.where.to_dict() if e.where else None} for e in catalogue().values()]
    if args.format == "json":
        print(json.dumps({"rules": rules}, indent=2, ensure_ascii=False))
    else:
        for r in rules:
            print(f"{r['id']:<20} {r['severity']:<8} {r['title']}  [{r['reference']}]")
    return ExitCode.OK


def register(sub: Subcommands) -> None:
    from validators.dispatch import KINDS

    validate = sub.add_parser("validate", help="validate files: Tasks, assertions, token requests, Bundles, …")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    validate.add_argument("--kind", choices=("auto",) + KINDS, default="auto")
    add_format_option(validate)
    validate.add_argument("--audience", help="token endpoint URL the assertions must name as aud")
    validate.add_argument("--jwks", help="JWKS file with the keys that sign the assertions")
    validate.add_argument("--suppress", action="append", metavar="RULE=REASON",
                          help="leave a rule out, with the reason (repeatable)")
    validate.set_defaults(func=cmd_validate)
    rules = sub.add_parser("rules", help="list the rule catalogue")
    add_format_option(rules)
    rules.set_defaults(func=cmd_rules)
