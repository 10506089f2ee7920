"""Report writers: one small module per format, all fed the same RunResult."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from speeltuin.results import RunResult
from speeltuin.reports import html, json_report, junit, testreport

WRITERS: dict[str, tuple[str, Callable[[RunResult], str]]] = {
    "html": ("report.html", html.render),
    "json": ("report.json", json_report.render),
    "junit": ("junit.xml", junit.render),
    "testreport": ("testreport.json", testreport.render),  # FHIR STU3 TestReport; not written by default
}


def write_reports(run: RunResult, out_dir: Path, formats: tuple[str, ...] = ("html", "json", "junit")) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in formats:
        filename, render = WRITERS[name]
        path = out_dir / filename
        path.write_text(render(run), encoding="utf-8")
        written[name] = path
    return written
