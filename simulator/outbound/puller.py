"""The receiving node's puller: pull token with the authorization base, then every query and document.

Told get-workflow-task, it first reads the Workflow Task (SPEC §3 step 1) with the pull token, judges it, and pulls
the queries it lists as well as the Notification Task's own: SPEC is silent on both lists, so [choice] the union,
each request once, recorded with the list(s) that named it.
"""
from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Callable
from urllib.parse import unquote, urljoin

import requests

from simulator import faults as fault_names
from simulator.outbound.client import DIRECT, OutboundError, Transport, client_for, fetch_token, require
from speeltuin.keys import Signer
from speeltuin.records import PULL_HEADER, Notification, PullStatus, Session
from speeltuin.store import Store
from validators.query import parse_params
from validators.rules.workflow_task import check_workflow_task
from validators.stu3 import FHIR_JSON
from validators.task_reader import own_targets, workflow_task_reads

# which Task listed a request (a pull result's `listed_in`)
NOTIFICATION_TASK, WORKFLOW_TASK = "notification-task", "workflow-task"


# Which process pulls (machine, process id, and a mark of this run of it): a simulator that starts again after it was
# killed finds the pulls its dead predecessor left unfinished by this mark (recover_interrupted_pulls); pulls of other
# live processes on the same store, or of this one, are not touched.
WORKER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def recover_interrupted_pulls(store: Store) -> list[str]:
    """Mark as failed, with the reason, every pull whose process on this machine no longer runs (killed while it
    pulled, or before it began); the ids of those notifications. The sender may notify again."""
    failed = []
    for notification in store.unfinished_pulls():
        summary = dict(notification.pull_summary or {})
        worker = str(summary.get("worker") or "")
        if not _dead(worker):
            continue  # another machine's, or a live process's: not ours to judge
        summary.update(error=f"interrupted: the simulator that pulled it ({worker or 'unknown'}) stopped before it "
                             "finished; the sender may notify again", finished_at=time.time())
        store.update_notification(notification.id, pull_status=PullStatus.FAILED, pull_summary=summary)
        failed.append(notification.id)
    return failed


def _dead(worker: str) -> bool:
    """Whether the process a WORKER mark names has ended (only knowable on this machine)."""
    if not worker:
        return True  # recorded before pulls were marked with their process: no such process runs any more
    host, pid, run = (worker.split(":") + ["", "", ""])[:3]
    if worker == WORKER or host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return run != WORKER.rsplit(":", 1)[1]  # an earlier run under the same process id
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class PullStopped(Exception):
    """The notification was cancelled or its period ended: no further request may be made."""


# A refused pull-token request is asked once: invalid_grant is no transient error (SPEC §5.2), so asking again is
# pointless. (The retries-refused-token fault asks fault_names.REFUSED_TOKEN_TRIES times.)
TOKEN_TRIES = 1


def pull(store: Store, signer: Signer, session: Session, notification: Notification, *,
         timeout: float = 15.0, transport: Transport = DIRECT, faults: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Run the whole pull for one received notification and record its outcome on the notification.

    Before every request the notification is read again: after a cancellation or after
    restriction.period.end nothing more is fetched (SPEC §3 step 8). `faults`: the receiving-side fault switches
    in force (simulator/faults.py): retries-refused-token and ignores-retry-after bend this pull.
    The summary counts the pull-token requests made (`token_requests`); each result names the Task(s) that listed
    it (`listed_in`), and `workflow_tasks` tells of each Workflow Task read: its findings, or why it is unread.
    """
    summary: dict[str, Any] = {"started_at": time.time(), "results": [], "documents": [], "token_requests": 0,
                               "worker": WORKER}
    retry = fault_names.IGNORES_RETRY_AFTER not in faults
    token_tries, token_interval = TOKEN_TRIES, 0.0
    if fault_names.RETRIES_REFUSED_TOKEN in faults:
        token_tries, token_interval = fault_names.REFUSED_TOKEN_TRIES, fault_names.REFUSED_TOKEN_INTERVAL_S
    store.update_notification(notification.id, pull_status=PullStatus.PULLING, pull_summary=summary)
    status = PullStatus.DONE

    def check_allowed() -> None:
        if not _still_allowed(store, notification.id):
            raise PullStopped("notification cancelled or its availability period ended")

    try:
        check_allowed()
        token_url = require(session, "vendor_token_url")
        fhir_base = require(session, "vendor_fhir_base") + "/"
        http = client_for(session, transport)
        form = partial(signer.token_request_form,  # fresh assertions (a fresh jti) for each try
                       session.config.own_client_id, session.config.own_ura, session.config.vendor_token_aud or token_url,
                       notification.authorization_base)
        token = _pull_token(http, token_url, form, timeout, summary, tries=token_tries, interval=token_interval,
                            check_allowed=check_allowed)
        http.headers["Authorization"] = f"Bearer {token}"
        http.headers[PULL_HEADER] = notification.id  # the proxy judges the answers for this notification's patient
        listed = {NOTIFICATION_TASK: own_targets(notification.task), WORKFLOW_TASK: []}
        for path in workflow_task_reads(notification.task):
            check_allowed()
            read = _read_workflow_task(http, fhir_base, path, notification.task, timeout, retry=retry)
            summary["results"].append({"kind": "read", "path": path, "listed_in": [NOTIFICATION_TASK],
                                       **read.result})
            summary.setdefault("workflow_tasks", []).append({"path": path, **read.record})
            if read.task is None:
                status = PullStatus.FAILED
                summary["error"] = f"the Workflow Task {path} could not be read: {read.record['error']}"
            else:
                listed[WORKFLOW_TASK] += own_targets(read.task)
        for kind, path, listed_in in union_of_targets(listed):
            check_allowed()
            url = _on_base(fhir_base, path)
            if url is None:
                summary["results"].append({"kind": kind, "path": path, "listed_in": listed_in, **_ELSEWHERE})
                status = PullStatus.FAILED
                continue
            result, bundle = _get_json(http, url, timeout, retry=retry)
            summary["results"].append({"kind": kind, "path": path, "listed_in": listed_in, **result})
            if result["status"] != 200:
                status = PullStatus.FAILED
            for url in _document_urls(bundle, fhir_base):
                check_allowed()
                summary["documents"].append(_get_document(http, url, timeout, retry=retry))
        if any(d["status"] != 200 or not d.get("pdf") for d in summary["documents"]):
            status = PullStatus.FAILED
    except PullStopped as exc:
        summary["stopped"] = str(exc)
        status = PullStatus.STOPPED
    except (OutboundError, requests.RequestException) as exc:
        summary["error"] = str(exc)
        status = PullStatus.FAILED
    summary["finished_at"] = time.time()
    store.update_notification(notification.id, pull_status=status, pull_summary=summary)
    return summary


def _request_key(path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What a relative query or read asks, whatever its percent-encoding and the order of its parameters."""
    route, _, query = path.partition("?")
    return unquote(route), tuple(sorted(parse_params(query, strict=False)))


def union_of_targets(listed: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str, list[str]]]:
    """(kind, path, the lists that name it) of each request once, in the order first listed."""
    union: dict[tuple, tuple[str, str, list[str]]] = {}
    for source, targets in listed.items():
        for kind, path in targets:
            _kind, _path, sources = union.setdefault(_request_key(path), (kind, path, []))
            if source not in sources:
                sources.append(source)
    return list(union.values())


@dataclass(frozen=True)
class _WorkflowTaskRead:
    result: dict[str, Any]  # as every pull result: status, and why it is unusable
    record: dict[str, Any]  # the summary's account of it: its findings and how many requests it lists, or the error
    task: dict[str, Any] | None  # None: not read (its queries cannot be known)


# the result of a listed request that is not made
_ELSEWHERE: dict[str, Any] = {"status": None, "error": "not under the sender's FHIR base: not requested"}


def _on_base(fhir_base: str, path: str) -> str | None:
    """The URL of a Task's relative path on the sender's FHIR base; None when it leads elsewhere (an absolute URL,
    `..`): the pull token is for that server only."""
    url = urljoin(fhir_base, path)
    return url if url.startswith(fhir_base) else None


def _read_workflow_task(http: requests.Session, fhir_base: str, path: str, notification_task: dict[str, Any],
                        timeout: float, *, retry: bool) -> _WorkflowTaskRead:
    """GET the Workflow Task with the pull token and judge it (WF rules, with the Notification Task's patient)."""
    url = _on_base(fhir_base, path)
    if url is None:
        return _WorkflowTaskRead(_ELSEWHERE, dict(_ELSEWHERE), None)
    result, body = _get_json(http, url, timeout, retry=retry)
    if result["status"] != 200:
        error = f"answered {result['status']}"
    elif body is None:
        error = result.get("error", "the answer is not a JSON object")
    elif body.get("resourceType") != "Task":
        error = f"answered resourceType {str(body.get('resourceType'))[:64]!r}, not a Task"
    else:
        error = None
    if error is not None:
        return _WorkflowTaskRead(result, {"status": result["status"], "error": error}, None)
    findings = check_workflow_task(body, notification=notification_task)
    record = {"status": 200, "requests": len(own_targets(body)), "findings": [f.to_dict() for f in findings]}
    return _WorkflowTaskRead(result, record, body)


def _pull_token(http: requests.Session, token_url: str, form: Callable[[], dict[str, str]], timeout: float,
                summary: dict[str, Any], *, tries: int, interval: float, check_allowed: Callable[[], None]) -> str:
    """The pull token, asked at most `tries` times `interval` s apart; counts the requests in the summary.

    Raises OutboundError with the last refusal (PullStopped if the notification ends while waiting).
    """
    for attempt in range(1, tries + 1):
        summary["token_requests"] = attempt
        try:
            return fetch_token(http, token_url, form(), timeout)
        except OutboundError:
            if attempt == tries:
                raise
        time.sleep(interval)
        check_allowed()
    raise AssertionError("unreachable")


def _still_allowed(store: Store, notification_id: str) -> bool:
    current = store.get_notification(notification_id)
    return bool(current and current.status == "requested" and current.period_end > time.time())


RETRY_STATUSES = {500, 502, 503, 504}
MAX_ATTEMPTS = 3
MAX_WAIT_S = 5.0  # bounded: a vendor cannot stall a pull for long with a huge Retry-After


def retry_delay(response: requests.Response | None, attempt: int) -> float:
    """Retry-After (seconds or HTTP date) when the server gives one, else exponential backoff; bounded."""
    delay = 0.5 * 2 ** (attempt - 1)
    header = response.headers.get("Retry-After", "").strip() if response is not None else ""
    if header.isdigit():
        delay = float(header)
    elif header:
        try:
            delay = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError):
            pass
    return max(0.0, min(delay, MAX_WAIT_S))


def get_with_retry(http: requests.Session, url: str, *, headers: dict[str, str], timeout: float,
                   sleep: Callable[[float], None] = time.sleep, retry_server_errors: bool = True) -> requests.Response:
    """GET, retrying 5xx answers and refused connections a bounded number of times.

    `retry_server_errors=False` (the ignores-retry-after fault): a 5xx answer is final.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = http.get(url, timeout=timeout, headers=headers)
        except requests.ConnectionError:
            if attempt == MAX_ATTEMPTS:
                raise
            sleep(retry_delay(None, attempt))
            continue
        if response.status_code not in RETRY_STATUSES or attempt == MAX_ATTEMPTS or not retry_server_errors:
            return response
        sleep(retry_delay(response, attempt))
    raise AssertionError("unreachable")


def _get_json(http: requests.Session, url: str, timeout: float, *,
              retry: bool = True) -> tuple[dict[str, Any], dict | None]:
    response = get_with_retry(http, url, timeout=timeout, headers={"Accept": FHIR_JSON}, retry_server_errors=retry)
    result: dict[str, Any] = {"status": response.status_code}
    try:
        body = response.json()
    except ValueError:
        return {**result, "error": "response is not JSON"}, None
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        result["entries"] = len(body.get("entry", []))
    return result, body if isinstance(body, dict) else None


def _document_urls(bundle: dict | None, fhir_base: str) -> list[str]:
    urls = []
    for entry in (bundle or {}).get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "DocumentReference":
            continue
        for content in resource.get("content", []):
            url = content.get("attachment", {}).get("url")
            if url:
                urls.append(urljoin(fhir_base, url))
    return urls


def _get_document(http: requests.Session, url: str, timeout: float, *, retry: bool = True) -> dict[str, Any]:
    response = get_with_retry(http, url, timeout=timeout, headers={"Accept": "application/pdf"},
                              retry_server_errors=retry)
    return {"url": url, "status": response.status_code, "content_type": response.headers.get("Content-Type"),
            "bytes": len(response.content), "pdf": response.content.startswith(b"%PDF-")}
