"""Loading 1,000 FHIR resources with `patients import-fhir` (read, fill, judge, group, store): prints the time.

Run from the repository root (the project installed in .venv, as `make install` does): .venv/bin/python benchmarks/import_fhir.py
Input: the Nictiz corpus (XML) copied with fresh ids until there are 1,000 files, half of them as JSON.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from speeltuin.defaults import sqlite_url
from speeltuin.store import Store
from testdata.fhir_import import files_under, group_by_patient, judge, load_file, rows_to_store

CORPUS = ROOT.parent / "shared" / "corpus" / "nictiz-zib2017-examples"
TARGET = 1000


def make_input(directory: Path) -> None:
    """Rounds of the corpus; round r gives every id and every relative reference the suffix -r."""
    sources = sorted(CORPUS.glob("*.xml"))
    for n in range(TARGET):
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


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "input"
        directory.mkdir()
        make_input(directory)
        store = Store(sqlite_url(Path(tmp) / "bench.sqlite"))
        started = time.perf_counter()
        loaded = [load_file(p, today=date.today()) for p in files_under([directory])]
        findings = sum(len(judge(f)) for f in loaded)
        grouped = group_by_patient([r for f in loaded for r in f.resources])
        rows = rows_to_store(grouped)
        store.load_resources(rows, replace=False)
        elapsed = time.perf_counter() - started
        print(f"import-fhir: {len(rows)} resources from {len(loaded)} files (XML and JSON) in {elapsed:.2f} s "
              f"= {len(rows) / elapsed:,.0f} resources/s; {len(grouped.patients)} patients, "
              f"{len(grouped.shared)} shared, {findings} findings (target: under 10 s)")
        store.close()


if __name__ == "__main__":
    main()
