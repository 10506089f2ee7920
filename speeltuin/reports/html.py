"""The HTML report: scenarios, steps, every exchange with its bodies (secrets redacted) and findings.

A big session's report comes in pages (speeltuin.session_report.ReportPage): each shows the whole summary and one
page of the exchanges, with links to the other pages.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

import templates
from speeltuin.records import shown_body
from speeltuin.results import RunResult

TEMPLATE_DIR = Path(templates.__file__).resolve().parent


class Page(Protocol):
    """Where a page of a report lies: page `number` of `count`, after the first `offset` of `total` exchanges."""

    number: int
    count: int
    offset: int
    total: int


def query_link(number: int) -> str:
    """The address of a report's page next to the one served (same path, `page` parameter)."""
    return f"?page={number}"


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@lru_cache(maxsize=1)
def _template() -> Template:
    """Compiled once: a paged report renders it once a page."""
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"]))
    env.filters["time"] = _time
    env.filters["shown_body"] = shown_body
    return env.get_template("report.html")


def render(run: RunResult, page: Page | None = None, link: Callable[[int], str] = query_link) -> str:
    """The report; `page`: it is one page of a session's report (the run's one scenario holds the page's exchanges),
    and `link` gives the address of page n for the pager."""
    return _template().render(run=run, counts=run.counts(), page=page, link=link)
