"""How fast is validating a BgZ searchset Bundle, compared with only reading its JSON?

Builds Bundles of generated BgZ content (testdata.bgz_content for the "full" test patients, cycled with id
suffixes until it has the entries asked for, all ids and fullUrls unique) and of small Observations, and times in
one run (best of at least REPEAT):

- json.loads of the Bundle's bytes;
- validate: bundle.check_searchset + bgz_profiles.check_resource on every entry of the parsed Bundle;
- validate + structure: the same plus structure.check_structure (the STU3 model check);

for a small and a large Bundle (default 50 and 20,000 entries), of BgZ content and of small Observations, and prints
resources/s for each and the large one's cost per resource against the small one's (validation must be linear).

Validation is timed in CPU time (other processes on the machine do not count) on a Bundle just read and with
Python's cyclic garbage collector settled first: reading 20,000 entries leaves a full collection due, which would
otherwise land in whichever work comes next and charge that work for walking everything the read made. The read's
own figure (json.loads) keeps that cost, in wall time, as a message's arrival does.

Run from the repository root (the project installed in .venv, as `make install` does):
    .venv/bin/python benchmarks/validate_bundle.py [SMALL LARGE]
"""
from __future__ import annotations

import copy
import gc
import json
import sys
import time
from datetime import datetime, timezone
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


def small_observations(entries: int) -> dict:
    """A searchset of `entries` small Observations (BgZ query 9, alcohol use), as a big hospital answer might be."""
    entry = []
    for i in range(entries):
        resource = {"resourceType": "Observation", "id": f"obs-{i}",
                    "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/zib-AlcoholUse"]},
                    "status": "final",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "228273003",
                                         "display": "Finding relating to alcohol drinking behavior"}]},
                    "subject": {"reference": "Patient/p1", "display": "Suzanne Moulin"},
                    "effectiveDateTime": f"20{10 + i % 14:02d}-0{1 + i % 9}-1{i % 10}T10:00:00+01:00",
                    "valueQuantity": {"value": i % 40, "unit": "glasses per week",
                                      "system": "http://unitsofmeasure.org", "code": "{glasses}/wk"}}
        entry.append({"fullUrl": f"{BASE}/Observation/{resource['id']}", "search": {"mode": "match"},
                      "resource": resource})
    return {"resourceType": "Bundle", "id": "benchmark", "type": "searchset", "total": entries,
            "link": [{"relation": "self", "url": f"{BASE}/Observation?code=http://snomed.info/sct|228273003"}],
            "entry": entry}


def best(work: Callable[[dict], object], data: bytes, repeat: int = REPEAT, *, at_least_s: float = 0.5) -> float:
    """The best time of `work` on a Bundle freshly read from `data`, over `repeat` runs (more for quick work: until
    at_least_s has passed, so noise evens out). Only `work` is timed, in CPU time, not reading the JSON nor the
    garbage collection the reading made due."""
    times: list[float] = []
    started_all = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - started_all < at_least_s:
        parsed = json.loads(data)  # as a message arrives: new objects, as the proxy and the CLI see them
        gc.collect()
        started = time.process_time()
        work(parsed)
        times.append(time.process_time() - started)
    return min(times)


def best_wall(work: Callable[[], object], repeat: int = REPEAT) -> float:
    """The best wall time of `work` over `repeat` runs, garbage collection included."""
    times: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(bundle: dict) -> tuple[int, float, float, float, list[Finding]]:
    """(entries, json.loads, validate, validate + structure) in seconds, and the findings."""
    data = json.dumps(bundle).encode()
    entries = len(bundle["entry"])
    loads = best_wall(lambda: json.loads(data))
    plain = best(validate, data)
    full = best(lambda parsed: validate(parsed, structure=True), data)
    return entries, loads, plain, full, validate(json.loads(data), structure=True)


def main(argv: list[str]) -> int:
    small, large = (int(argv[1]), int(argv[2])) if len(argv) > 2 else (50, 20_000)
    check_structure(build_bundle(10))  # warm up: the STU3 models are built on first use
    print(f"validating searchset Bundles (best of at least {REPEAT} runs each); cost per resource of the "
          f"{large:,}-entry Bundle against the {small}-entry one (target: at most 1.5x)")
    for label, make in (("BgZ content", build_bundle), ("small Observations", small_observations)):
        rows = [measure(make(size)) for size in (small, large)]
        for entries, loads, plain, full, findings in rows:
            severities = ", ".join(f"{sum(f.severity == s for f in findings)} {s}" for s in ("error", "warning"))
            print(f"{label:>18}, {entries:>6,} entries: json.loads {entries / loads:>9,.0f} resources/s; validate "
                  f"{entries / plain:>7,.0f}/s; validate + check_structure {entries / full:>6,.0f}/s "
                  f"({full / entries * 1e6:,.0f} us each); findings: {severities}")
        (n_small, _, plain_small, full_small, _), (n_large, _, plain_large, full_large, _) = rows
        for what, a, b in (("validate", plain_small, plain_large), ("validate + check_structure", full_small,
                                                                    full_large)):
            ratio = (b / n_large) / (a / n_small)
            print(f"{label:>18}: {what}: per-resource cost {n_large:,} vs {n_small}: {ratio:.2f}x "
                  f"{'ok' if ratio <= 1.5 else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
