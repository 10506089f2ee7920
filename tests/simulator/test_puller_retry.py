"""The puller retries a vendor's 5xx a bounded number of times, honouring Retry-After (SPEC: be robust,
never hammer). The vendor here is a small stand-in server on loopback: an outside party, not our code."""
from __future__ import annotations

import threading
from email.utils import formatdate
from typing import Iterator

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from simulator.outbound.puller import MAX_ATTEMPTS, MAX_WAIT_S, get_with_retry, retry_delay


@pytest.fixture
def flaky_vendor() -> Iterator[tuple[str, list[str]]]:
    """Answers each path's first requests per a script: '503:2' = 503 with Retry-After 2, then 200."""
    seen: list[str] = []
    scripts = {"/once": ["503:2"], "/always": ["503:1"] * 10, "/huge": ["503:3600"], "/date": ["503:date"]}

    @Request.application
    def app(request: Request) -> Response:
        seen.append(request.path)
        script = scripts.get(request.path, [])
        if script:
            status, _, after = script.pop(0).partition(":")
            retry = formatdate(0, usegmt=True) if after == "date" else after
            return Response("busy", status=int(status), headers={"Retry-After": retry})
        return Response('{"resourceType": "Bundle"}', content_type="application/fhir+json")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}", seen
    server.shutdown()


def _get(url: str, waits: list[float]) -> requests.Response:
    return get_with_retry(requests.Session(), url, headers={}, timeout=5, sleep=waits.append)


def test_retry_after_is_honoured_then_success(flaky_vendor) -> None:
    base, seen = flaky_vendor
    waits: list[float] = []
    assert _get(f"{base}/once", waits).status_code == 200
    assert waits == [2.0] and seen == ["/once", "/once"]


def test_retries_are_bounded(flaky_vendor) -> None:
    base, seen = flaky_vendor
    waits: list[float] = []
    assert _get(f"{base}/always", waits).status_code == 503
    assert len(seen) == MAX_ATTEMPTS and len(waits) == MAX_ATTEMPTS - 1


def test_waits_are_capped_and_dates_understood(flaky_vendor) -> None:
    base, _seen = flaky_vendor
    waits: list[float] = []
    _get(f"{base}/huge", waits)
    _get(f"{base}/date", waits)  # a date in the past: retry at once
    assert waits == [MAX_WAIT_S, 0.0]
    assert retry_delay(None, 1) == 0.5 and retry_delay(None, 2) == 1.0


def test_without_retries_a_5xx_is_final(flaky_vendor) -> None:
    """The ignores-retry-after fault: the first 503 is the answer, nothing waited for."""
    base, seen = flaky_vendor
    waits: list[float] = []
    response = get_with_retry(requests.Session(), f"{base}/once", headers={}, timeout=5, sleep=waits.append,
                              retry_server_errors=False)
    assert response.status_code == 503 and waits == [] and seen == ["/once"]


def test_refused_connection_is_retried_then_raised() -> None:
    waits: list[float] = []
    with pytest.raises(requests.ConnectionError):
        _get("http://127.0.0.1:9/nothing-listens-here", waits)
    assert len(waits) == MAX_ATTEMPTS - 1
