"""How fast is validating a BgZ searchset Bundle, compared with only reading its JSON?

Builds a Bundle of generated BgZ content (testdata.bgz_content for the "full" test patients, cycled
with id suffixes until it has ENTRIES entries, default 1,000, all ids and fullUrls unique), writes
it to a temporary file, and times in one run (best of REPEAT):

- json.loads of the file's bytes;
- validate: json.loads + bundle.check_searchset + bgz_profiles.check_resource on every entry;
- validate + structure: the same plus structure.check_structure (the STU3 model check).

Run from the repository root (the project installed in .venv, as `make install` does):  .venv/bin/python benchmarks/validate_bundle.py [ENTRIES]
"""
from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from testdata.bgz_content import patient_resources
from testdata.patients import PATIENTS
from validators.findings import Finding
from validators.rules.bgz_profiles import check_resource
from validators.rules.bundle import check_searchset
from validators.rules.structure import check_structure

BASE = "https://sender.example/fhir"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
REPEAT = 3


def build_bundle(entries: int = 1000, *, now: datetime = NOW) -> dict:
    """A searchset of `entries` BgZ resources (Binary PDFs left out: a search answer does not carry them)."""
    pool = [r for p in PATIENTS if p.content == "full" for r in patient_resources(p, now=now)
            if r["resourceType"] != "Binary"]
    entry: list[dict] = []
    cycle = 0
    while len(entry) < entries:
        for original in pool[: entries - len(entry)]:
            resource = copy.deepcopy(original)
            if cycle:
                resource["id"] = f"{original['id']}-{cycle}"
            entry.append({"fullUrl": f"{BASE}/{resource['resourceType']}/{resource['id']}",
                          "search": {"mode": "match"}, "resource": resource})
        cycle += 1
    return {"resourceType": "Bundle", "id": "benchmark", "type": "searchset", "total": len(entry),
            "link": [{"relation": "self", "url": f"{BASE}/Patient/$everything"}], "entry": entry}


def validate(bundle: dict, *, structure: bool = False) -> list[Finding]:
    """What the CLI does with a searchset: Bundle rules, profile facts of every entry, optionally the model check."""
    findings = check_searchset(bundle)
    entries = bundle.get("entry")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            findings.extend(check_resource(resource, location=f"Bundle.entry[{i}].resource"))
    if structure:
        findings.extend(check_structure(bundle))
    return findings


def best(work: Callable[[], object], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str]) -> int:
    entries = int(argv[1]) if len(argv) > 1 else 1000
    bundle = build_bundle(entries)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "searchset.json"
        path.write_text(json.dumps(bundle), encoding="utf-8")
        data = path.read_bytes()
    check_structure(bundle)  # warm up: the STU3 models are built on first use

    loads = best(lambda: json.loads(data))
    plain = best(lambda: validate(json.loads(data)))
    full = best(lambda: validate(json.loads(data), structure=True))
    findings = validate(json.loads(data), structure=True)

    print(f"bundle: {entries} entries, {len(data) / 1e6:.2f} MB of JSON (best of {REPEAT} runs each)")
    print(f"json.loads: {entries} resources in {loads:.3f} s")
    for label, seconds in (("validate", plain), ("validate + check_structure", full)):
        print(f"{label}: {entries} resources in {seconds:.3f} s = {entries / seconds:,.0f} resources/s; "
              f"json.loads {loads:.3f} s; ratio {seconds / loads:,.0f}x")
    severities = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    print("findings: " + ", ".join(f"{n} {s}" for s, n in severities.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
