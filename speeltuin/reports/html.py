"""The HTML report: scenarios, steps, every exchange with its bodies (secrets redacted) and findings."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

import templates
from speeltuin.results import RunResult

TEMPLATE_DIR = Path(templates.__file__).resolve().parent


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(run: RunResult) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"]))
    env.filters["time"] = _time
    return env.get_template("report.html").render(run=run, counts=run.counts())
