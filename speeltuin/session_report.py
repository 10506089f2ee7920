"""A validation session's evidence: its recorded exchanges (one page at a time) and its report.

The kernel of what the simulator's evidence API and `speeltuin report` / `speeltuin exchanges` show, so the
API and the CLI give the same answers: the report is the result model every writer in speeltuin/reports/
renders, built from the session's exchanges and suppressions. A session may hold tens of thousands of exchanges
with their bodies, so the report is counted in SQL and holds one page of them at most (REPORT_PAGE_SIZE);
`session_exchanges` hands out all of them a batch at a time for the writers that stream.
"""
from __future__ import annotations

import math
import time
from dataclasses import InitVar, dataclass
from typing import Any, Iterator

from speeltuin.pull_evidence import evidence_of_sent
from speeltuin.records import Exchange, NotificationOrigin, Session, Tag
from speeltuin.results import COUNT_KEYS, Excuses, RunResult, ScenarioResult, Step
from speeltuin.store import Store
from validators.findings import SEVERITIES

SESSION_KEY_HEADER = "X-Session-Key"  # the header a session's own access key travels in
ACCESS_KEY_NOTE = (f"Keep this access key: it is shown only this once. Send it as {SESSION_KEY_HEADER} to read "
                   "this session's exchanges and report.")
NO_ERRORS_STEP = "No error findings in the recorded exchanges"
MAX_EVIDENCE_LINES = 20  # error findings listed in the step's evidence; the report lists every exchange
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
REPORT_PAGE_SIZE = 200  # exchanges on a page of the HTML report (a megabyte or two with their bodies)
MAX_PULL_LINES = 20  # sent notifications whose pull the report sums up, the newest
MAX_EXCHANGE_ID = 2**31 - 1  # exchange ids are SQL INTEGERs: a larger cursor is no exchange's


class UnknownSession(LookupError):
    """No session has this id."""


class BadParameter(ValueError):
    """A filter value that cannot be used; `name` is the parameter, the message says what is allowed."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class ExchangeQuery:
    """The filters and page of `Store.query_exchanges`, checked."""

    tag: str | None = None
    severity: str | None = None
    since: float | None = None
    after: int | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, *, tag: str | None = None, severity: str | None = None, since: str | None = None,
              after: str | None = None, limit: str | None = None) -> "ExchangeQuery":
        """Read the filters as given on a URL or a command line (text, None when absent)."""
        tags = [t.value for t in Tag]
        if tag is not None and tag not in tags:
            raise BadParameter("tag", f"must be one of {', '.join(tags)}, got {tag!r}")
        if severity is not None and severity not in SEVERITIES:
            raise BadParameter("severity", f"must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        return cls(tag=tag, severity=severity, since=None if since is None else _since(since),
                   after=None if after is None else _whole(after, "after", 0, MAX_EXCHANGE_ID),
                   limit=DEFAULT_LIMIT if limit is None else _whole(limit, "limit", 1, MAX_LIMIT))


def _since(value: str) -> float:
    try:
        since = float(value)
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        raise BadParameter("since", f"must be a time in epoch seconds (e.g. 1767225600.5), got {value!r}")
    return since


def _whole(value: str, name: str, low: int, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadParameter(name, f"must be a whole number {allowed}, got {value!r}")
    return number


def query_exchanges(store: Store, session_id: str, query: ExchangeQuery) -> dict[str, Any]:
    """One page of the session's exchanges with their findings, as the API and `--format json` show it."""
    if store.get_session(session_id) is None:
        raise UnknownSession(f"no session {session_id!r}")
    page, cursor = store.query_exchanges(session_id, tag=query.tag, severity=query.severity, since=query.since,
                                         after=query.after, limit=query.limit)
    suppressions = store.list_suppressions(session_id)
    return {"exchanges": [exchange_view(ex, suppressions) for ex in page], "next": cursor}


def exchange_view(ex: Exchange, suppressions: dict[str, str]) -> dict[str, Any]:
    """An exchange as JSON; a finding of a rule suppressed for the session carries the recorded reason."""
    return {"id": ex.id, "session_id": ex.session_id, "source": ex.source, "tag": str(ex.tag),
            "direction": str(ex.direction), "method": ex.method, "url": ex.url, "status": ex.status,
            "started_at": ex.started_at, "duration_ms": ex.duration_ms, "error": ex.error,
            "notification_id": ex.notification_id,
            "request_headers": ex.request_headers, "request_body": ex.request_body,
            "response_headers": ex.response_headers, "response_body": ex.response_body,
            "findings": [{**f.to_dict(), "suppressed": suppressions.get(f.rule)} for f in ex.findings]}


@dataclass
class SessionScenario(ScenarioResult):
    """A session's recorded traffic as one scenario: its findings counted in SQL over the whole session (`counted`,
    by COUNT_KEYS), its `exchanges` one page of them at most."""

    counted: InitVar[dict[str, int] | None] = None  # not a field: the JSON report has them as "counts"

    def __post_init__(self, counted: dict[str, int] | None) -> None:
        self._counted = counted or dict.fromkeys(COUNT_KEYS, 0)

    def counts(self) -> dict[str, int]:
        return dict(self._counted)


@dataclass(frozen=True)
class ReportPage:
    """Page `number` of `count` of a session's report: the report (`run`) with the page's exchanges, which come
    after the first `offset` of the `total` recorded."""

    run: RunResult
    number: int
    count: int
    offset: int
    total: int


def parse_page(value: str | None) -> int:
    """The page of a report as given on a URL (None: the first)."""
    return 1 if value is None else _whole(value, "page", 1)


def session_report(store: Store, session_id: str, *, page: int = 1, page_size: int = REPORT_PAGE_SIZE) -> RunResult:
    """The session's report: one scenario for its recorded traffic, one step that passes when no exchange has
    an error finding (suppressed rules are shown with their reason, not counted). The scenario holds the
    exchanges of one page (`page_size` 0: none, for the writers that need only the counts and the evidence)."""
    return report_page(store, session_id, page, page_size).run


def report_page(store: Store, session_id: str, number: int = 1, size: int = REPORT_PAGE_SIZE) -> ReportPage:
    """Page `number` of the session's report, `size` exchanges a page (0: a page without them). BadParameter
    for a page the session does not have."""
    session = store.get_session(session_id)
    if session is None:
        raise UnknownSession(f"no session {session_id!r}")
    total = store.session_activity([session.id]).get(session.id, {}).get("exchanges", 0)
    count = max(1, math.ceil(total / size)) if size else 1
    if not 1 <= number <= count:
        raise BadParameter("page", f"must be a whole number from 1 to {count}, got {str(number)!r}")
    offset = (number - 1) * size
    exchanges = store.exchange_page(session.id, offset, size) if size else []
    return ReportPage(_report(store, session, total, exchanges), number, count, offset, total)


def session_exchanges(store: Store, session_id: str, batch: int = REPORT_PAGE_SIZE) -> Iterator[Exchange]:
    """Every exchange of the session with its findings, in the order they were recorded, read `batch` at a time
    (for the writers that stream a whole session)."""
    after = None
    while True:
        page, after = store.query_exchanges(session_id, after=after, limit=batch)
        yield from page
        if after is None:
            return


def _report(store: Store, session: Session, total: int, exchanges: list[Exchange]) -> RunResult:
    excuses = Excuses(store.list_suppressions(session.id))
    counted = dict.fromkeys(COUNT_KEYS, 0)
    for (rule, severity), count in store.finding_counts(session.id).items():
        counted["suppressed" if rule in excuses.suppressions else severity] += count
    scenario = SessionScenario(
        id=f"session-{session.id}", title=f"Recorded traffic of session {session.name}",
        description="Every exchange recorded for this validation session, judged by the validators as it "
                    "happened. Rules suppressed for the session are shown with the recorded reason, not counted.",
        vendor_role=session.vendor_role.value, session_id=session.id, exchanges=exchanges, excuses=excuses,
        steps=[_verdict(store, session.id, total, counted["error"], excuses)], counted=counted)
    config = session.config
    environment = {"session": f"{session.id} ({session.name})", "vendor role": session.vendor_role.value,
                   "vendor URA": config.vendor_ura, "vendor client id": config.vendor_client_id,
                   "simulator URA": config.own_ura}
    environment.update({key.replace("_", " "): value for key, value in config.to_dict().items()
                        if key.endswith(("_url", "_base")) and value})
    environment.update(_pulls_of_sent(store, session.id))
    return RunResult(id=f"session-{session.id}", title=f"session {session.name} ({session.id})",
                     started_at=session.created_at, finished_at=time.time(), scenarios=[scenario],
                     environment=environment)


def _pulls_of_sent(store: Store, session_id: str) -> dict[str, str]:
    """What the receiver pulled of each notification the simulator sent (the newest MAX_PULL_LINES), one line each."""
    sent = [n for n in store.list_notifications(session_id) if n.origin == NotificationOrigin.SENT]
    evidence = evidence_of_sent(store, session_id, sent[-MAX_PULL_LINES:])
    lines = {f"pull of notification {n.identifier} (BSN {n.patient_bsn}, {n.status})": evidence[n.id].summary()
             for n in sent[-MAX_PULL_LINES:]}
    if len(sent) > MAX_PULL_LINES:
        lines["pulls of older notifications"] = f"{len(sent) - MAX_PULL_LINES} more, not listed here"
    return lines


def _verdict(store: Store, session_id: str, total: int, errors: int, excuses: Excuses) -> Step:
    """The report's one step: failed with the first error findings as evidence, or passed."""
    if errors:
        first = store.first_findings(session_id, "error", leave_out=excuses.suppressions, limit=MAX_EVIDENCE_LINES)
        lines = [f"{method} {url} → {rule}: {message}" for method, url, rule, message in first]  # as error_findings
        more = f"\n… and {errors - len(lines)} more" if errors > len(lines) else ""
        return Step(NO_ERRORS_STEP, "failed", f"{errors} error finding(s) in {total} exchanges:\n"
                    + "\n".join(lines) + more)
    noted = f" ({len(excuses.suppressions)} rule(s) suppressed for this session)" if excuses.suppressions else ""
    return Step(NO_ERRORS_STEP, "passed", f"{total} exchanges recorded, no error findings{noted}"
                if total else "no exchanges recorded yet, so no error findings")


def run_progress(store: Store, run_id: str) -> dict[str, Any] | None:
    """How a run stands (live while it runs): its status, each scenario's steps, and what is waited for."""
    run = store.get_run(run_id)
    if run is None:
        return None
    steps = store.run_steps(run_id)
    order = [s["id"] if isinstance(s, dict) else s for s in run.get("scenarios", [])]
    by_scenario: dict[str, list[dict[str, Any]]] = {scenario_id: [] for scenario_id in order}
    for step in steps:
        by_scenario.setdefault(step["scenario_id"], []).append(
            {key: step[key] for key in ("name", "title", "status", "detail", "waiting_for", "wait_until",
                                        "instruction", "session_id", "updated_at")})
    waiting = [{"scenario": s["scenario_id"], "step": s["name"], "waiting_for": s["waiting_for"],
                "until": s["wait_until"], "instruction": s["instruction"]} for s in steps if s["status"] == "waiting"]
    return {"id": run_id, "title": run.get("title", ""), "status": run.get("status", "running"),
            "started_at": run.get("started_at"), "finished_at": run.get("finished_at"),
            "sessions": sorted({s["session_id"] for s in steps if s["session_id"]} | set(run.get("sessions", []))
                               | {session for session in [store.queued_session(run_id)] if session}),
            "waiting": waiting, "error": run.get("error"),
            "scenarios": [{"id": scenario_id, "steps": found} for scenario_id, found in by_scenario.items()]}
