"""Loading 10,000 FHIR resources with `patients import-fhir` (read, fill, judge, deduplicate, group, store): prints
the time (target: under 5 s) and where it goes: reading and judging (in one worker process per CPU), grouping and
deduplicating, storing (SQLite).

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/import_fhir.py [FILES]
Input: the Nictiz corpus (XML) copied with fresh ids until there are FILES files (default 10,000), half of them as
JSON, and one in fifty of them copied once more under another name (a duplicate, loaded once with a warning).
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from speeltuin.defaults import sqlite_url
from speeltuin.store import Store
from testdata.fhir_import import (
    files_under,
    group_by_patient,
    load_file,
    load_files,
    rows_to_store,
    unique_resources,
)

CORPUS = ROOT.parent / "shared" / "corpus" / "nictiz-zib2017-examples"
TARGET = 10_000
DUPLICATE_EVERY = 50


def make_input(directory: Path, files: int = TARGET) -> None:
    """Rounds of the corpus; round r gives every id and every relative reference the suffix -r."""
    sources = sorted(CORPUS.glob("*.xml"))
    for n in range(files):
        source, suffix = sources[n % len(sources)], f"-r{n // len(sources)}"
        text = re.sub(r'(<id value=")([^"]+)(")', lambda m: f"{m.group(1)}{m.group(2)}{suffix}{m.group(3)}",
                      source.read_text(), count=1)
        text = re.sub(r'(reference value="[A-Z][A-Za-z]+/)([^"/]+)(")',
                      lambda m: f"{m.group(1)}{m.group(2)}{suffix}{m.group(3)}", text)
        if n % 2:  # half as JSON, read back through our own reader
            resource = load_file(_write(directory / f"tmp-{n}.xml", text), today=date.today()).resources[0]
            (directory / f"tmp-{n}.xml").unlink()
            (directory / f"r{n:04}.json").write_text(json.dumps(resource))
        else:
            (directory / f"r{n:04}.xml").write_text(text)
        if n % DUPLICATE_EVERY == 0:  # the same resource once more, byte for byte, as published fixtures do
            (directory / f"r{n:04}-copy.xml").write_text(text)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def main(argv: list[str]) -> None:
    files = int(argv[1]) if len(argv) > 1 else TARGET
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "input"
        directory.mkdir()
        make_input(directory, files)
        store = Store(sqlite_url(Path(tmp) / "bench.sqlite"))
        steps: dict[str, float] = {}
        started = last = time.perf_counter()

        def step(name: str) -> None:
            nonlocal last
            now = time.perf_counter()
            steps[name], last = now - last, now

        loaded = load_files(files_under([directory]), today=date.today())
        findings = sum(len(f.findings) for f in loaded)
        step("read and judge")
        resources, duplicates = unique_resources(loaded)
        grouped = group_by_patient(resources)
        rows = rows_to_store(grouped)
        step("group")
        store.load_resource_texts(rows, replace=False)
        step("store")
        elapsed = time.perf_counter() - started
        print(f"import-fhir: {len(rows):,} resources from {len(loaded):,} files (XML and JSON; {len(duplicates)} "
              f"duplicates loaded once) in {elapsed:.2f} s = {len(rows) / elapsed:,.0f} resources/s "
              f"(target: 10,000 in under 5 s); {len(grouped.patients)} patients, {len(grouped.shared)} shared, "
              f"{findings} findings")
        print("  " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items()))
        store.close()


if __name__ == "__main__":
    main(sys.argv)
