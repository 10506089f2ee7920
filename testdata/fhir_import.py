"""Reading a vendor's or Nictiz's own FHIR STU3 test data (issue 5, first part: read, fill, group).

Files or folders of XML and JSON, single resources and Bundles of any type. Qualification fixtures
carry date placeholders `${DATE, T, D, -44}` (today plus the day offset, as a date): they are filled
in before parsing, so fixtures load unchanged. Resources are grouped per patient by the BSN of the
Patient and by references to that Patient; the rest (Practitioner, Organization, Medication, …) is shared.

Reading, judging and summing up a file (its JSON as stored, what grouping looks at) is one step, done in worker
processes for many files: what comes back to the importing process is text and a few names, quick to hand over,
so that process only deduplicates, groups and stores.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Iterator

from validators.findings import Finding
from validators.rules.bundle import patient_bsns
from validators.rules.structure import FhirParseError, parse_fhir

SUFFIXES = (".xml", ".json")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_DATE_PLACEHOLDER = re.compile(r"^\s*DATE\s*,\s*T\s*,\s*D\s*,\s*([+-]?\d{1,6})\s*$")


class FhirImportError(ValueError):
    """A file cannot be loaded; the message names the file and what is wrong. Nothing was loaded."""


@dataclass(frozen=True)
class LoadedResource:
    """One resource as the import needs it: what grouping and deduplication look at, and its JSON as stored."""
    resource_type: str
    id: str | None
    bsn: str | None  # a Patient's BSN
    references: tuple[str, ...]  # the relative `Type/id` it references (contained resources left out)
    text: str  # the resource as JSON

    def resource(self) -> dict:
        return json.loads(self.text)


def summarise(resource: dict) -> LoadedResource:
    found = resource.get("id")
    return LoadedResource(str(resource.get("resourceType")), str(found) if found else None, patient_bsn(resource),
                          tuple(dict.fromkeys(_references(resource))), json.dumps(resource))


@dataclass
class LoadedFile:
    path: Path
    entries: list[LoadedResource]
    findings: list[Finding]  # what reading found and our profile rules for each resource

    @property
    def resources(self) -> list[dict]:
        return [entry.resource() for entry in self.entries]


@dataclass
class Grouped:
    patients: dict[str, list[LoadedResource]] = field(default_factory=dict)  # BSN -> the patient's resources
    shared: list[LoadedResource] = field(default_factory=list)


def fill_placeholders(text: str, *, today: date, source: str) -> str:
    """Replace every `${DATE, T, D, n}` by today + n days (YYYY-MM-DD); any other placeholder is an error."""
    def replace(match: re.Match[str]) -> str:
        found = _DATE_PLACEHOLDER.match(match.group(1))
        if found is None:
            raise FhirImportError(f"{source}: unsupported placeholder {match.group(0)!r}; "
                                  "only ${DATE, T, D, <days>} is filled in")
        return (today + timedelta(days=int(found.group(1)))).isoformat()

    return _PLACEHOLDER.sub(replace, text)


def files_under(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise FhirImportError(f"{path}: no such file or directory")
    return found


def load_file(path: Path, *, today: date) -> LoadedFile:
    """The resources of one file (a Bundle unpacked), placeholders filled, with the reading findings and those of
    our profile rules for each resource."""
    from validators.rules.bgz_profiles import check_resource

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FhirImportError(f"{path}: cannot read: {exc}") from exc
    try:
        parsed = parse_fhir(fill_placeholders(text, today=today, source=str(path)).encode(), source=str(path))
    except FhirParseError as exc:
        raise FhirImportError(str(exc)) from exc
    resources = list(_unpack(parsed.resource))
    findings = list(parsed.findings)
    for index, resource in enumerate(resources):
        findings += check_resource(resource, location=f"{resource.get('resourceType')}[{index}]")
    return LoadedFile(path, [summarise(r) for r in resources], findings)


PARALLEL_FROM = 200  # files: below this, starting worker processes costs more than it saves


def load_files(paths: list[Path], *, today: date) -> list[LoadedFile]:
    """load_file for every path, in order; many files are read by one worker process per CPU (reading and the
    checks are CPU work: a thousand files take seconds)."""
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_FROM or workers < 2:
        return [load_file(path, today=today) for path in paths]
    # fork: the workers start with this process's modules (the STU3 models) already loaded
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(partial(load_file, today=today), paths, chunksize=max(1, len(paths) // (workers * 8))))


def _unpack(resource: dict) -> Iterator[dict]:
    if resource.get("resourceType") == "Bundle":
        for entry in resource.get("entry", []) or []:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                yield from _unpack(entry["resource"])
    else:
        yield resource


def unique_resources(loaded: list[LoadedFile]) -> tuple[list[LoadedResource], list[str]]:
    """Every resource once, and a warning for each one given more than once with the same content (published
    fixtures repeat resources byte for byte, in XML and JSON alike). The same type/id with different content is a
    FhirImportError naming both files: which one to serve cannot be guessed."""
    first: dict[tuple[str, str], tuple[Path, LoadedResource]] = {}  # (type, id) -> the file it came from, itself
    unique: list[LoadedResource] = []
    warnings: list[str] = []
    for file in loaded:
        for entry in file.entries:
            if entry.id is None:
                unique.append(entry)  # rows_to_store names what lacks an id
                continue
            key = (entry.resource_type, entry.id)
            seen = first.get(key)
            if seen is None:
                first[key] = (file.path, entry)
                unique.append(entry)
            elif seen[1].text == entry.text or seen[1].resource() == entry.resource():  # key order, format aside
                warnings.append(f"{key[0]}/{key[1]} is in {seen[0]} and again, with the same content, in "
                                f"{file.path}: loaded once")
            else:
                raise FhirImportError(f"{key[0]}/{key[1]} is in {seen[0]} and, with different content, in "
                                      f"{file.path}: give one of them another id, or leave one out")
    return unique, warnings


def patient_bsn(resource: dict) -> str | None:
    if resource.get("resourceType") != "Patient":
        return None
    return next((str(value) for value in patient_bsns(resource) if value), None)


def group_by_patient(resources: list[LoadedResource]) -> Grouped:
    """Patients by BSN with every resource that references them; what references no known patient is shared."""
    grouped = Grouped()
    by_reference: dict[str, str] = {}
    for entry in resources:
        if entry.bsn is not None:
            grouped.patients.setdefault(entry.bsn, []).append(entry)
            if entry.id is not None:
                by_reference[f"Patient/{entry.id}"] = entry.bsn
    for entry in resources:
        if entry.bsn is not None:
            continue
        owners = {by_reference[ref] for ref in entry.references if ref in by_reference}
        if len(owners) == 1:
            grouped.patients[owners.pop()].append(entry)
        else:  # no known patient (or, oddly, several): serve it to whoever includes it
            grouped.shared.append(entry)
    return grouped


def _references(node: Any) -> Iterator[str]:
    """Every relative `Type/id` reference in a resource (absolute URLs reduced to their last two parts)."""
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and "/" in reference:
            yield "/".join(reference.split("/_history")[0].rstrip("/").split("/")[-2:])
        for key, value in node.items():
            if key != "contained":
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def rows_to_store(grouped: Grouped) -> list[tuple[str | None, str, str, str]]:
    """(BSN or None for shared, resource type, id, JSON) rows; every resource needs an id to be served (and comes
    once: see unique_resources)."""
    rows = [(bsn, e) for bsn, members in grouped.patients.items() for e in members]
    rows += [(None, e) for e in grouped.shared]
    missing = [e.resource_type for _bsn, e in rows if e.id is None]
    if missing:
        raise FhirImportError(f"{len(missing)} resource(s) without an id ({', '.join(sorted(set(missing)))}); "
                              "give every resource an id")
    return [(bsn, e.resource_type, str(e.id), e.text) for bsn, e in rows]
