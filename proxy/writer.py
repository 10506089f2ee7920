"""The proxy's writer: one process that judges captured flows and records them, off the flows' path.

The addon's hooks only take a snapshot of a flow (proxy.judge.CapturedFlow) and put it in a queue; this process
(started with the `spawn` method: nothing of mitmproxy's event loop is inherited) takes them in order, judges them
(proxy.judge.Judge), and writes them in batches with one transaction each. So the vendor's round trip waits neither
for the validators nor for the database, and the validators' CPU time is not taken from mitmproxy's event loop.

`written` counts the flows recorded so far; the addon answers a flush request (FLUSH_PATH) once it has reached the
count of flows submitted before the request: that is how a scenario waits for the writer instead of a fixed time.
A batch that cannot be written (the database away) is tried again until it is, never dropped.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import time
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from proxy.judge import CapturedFlow, Judge
from speeltuin.records import Exchange, FlowDirection, Tag
from speeltuin.store import Store
from validators.rules.internal import VALIDATOR_FAILED

log = logging.getLogger(__name__)

BATCH = 200  # flows written in one transaction at most
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # waits before writing a failed batch again (the last one repeats)
STOP = None  # put in the queue: write what is queued, then stop
NICENESS = 10


def run(database_url: str, public_url: str, trusted_ca_pem: bytes | None, vendor_ca: str | None,
        inbox: "multiprocessing.Queue[Any]", written: Synchronized) -> None:
    """The writer process's body."""
    logging.basicConfig(level=logging.WARNING, format="speeltuin proxy writer: %(message)s")
    # Background work: when the machine is busy, the flows being answered come first and the writer catches up
    # after (a burst is queued, not refused). NICENESS is relative to mitmdump's own.
    os.nice(NICENESS)
    store = Store(database_url)
    judge = Judge(store, public_url, trusted_ca_pem, vendor_ca=vendor_ca)
    try:
        stopping = False
        while not stopping:
            flows = [inbox.get()]
            while len(flows) < BATCH:
                try:
                    flows.append(inbox.get_nowait())
                except queue.Empty:
                    break
            stopping = STOP in flows
            batch = [flow for flow in flows if flow is not STOP]
            _write(store, [_exchange(judge, flow) for flow in batch])
            with written.get_lock():
                written.value += len(batch)
    finally:
        store.close()


def _exchange(judge: Judge, flow: CapturedFlow) -> Exchange:
    """The judged exchange; should attributing or redacting fail, the flow is still recorded, unjudged."""
    try:
        return judge.exchange(flow)
    except Exception as exc:  # noqa: BLE001 - evidence is never lost
        log.exception("could not judge %s %s", flow.method, flow.url)
        return Exchange(source="proxy", tag=Tag.OTHER, direction=FlowDirection.UNKNOWN, method=flow.method,
                        url=flow.url, status=flow.status, request_headers={}, request_body="",
                        response_headers={}, response_body="", started_at=flow.started_at,
                        error=f"not judged: {type(exc).__name__}",
                        findings=[VALIDATOR_FAILED.finding(f"proxy.judge raised {type(exc).__name__}", "exchange")])


def _write(store: Store, batch: list[Exchange]) -> None:
    for attempt in itertools.count():
        try:
            store.add_exchanges(batch)
            return
        except Exception:  # noqa: BLE001 - the database may come back; the batch waits for it
            wait = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            log.exception("could not write %d exchange(s); trying again in %.1f s", len(batch), wait)
            time.sleep(wait)


class Writer:
    """The addon's handle on the writer process: submit flows, know how far it has written, stop it."""

    def __init__(self, database_url: str, public_url: str, trusted_ca_pem: bytes | None = None,
                 vendor_ca: str | None = None) -> None:
        self._args = (database_url, public_url, trusted_ca_pem, vendor_ca)
        self._context = multiprocessing.get_context("spawn")
        self.written: Synchronized = self._context.Value("q", 0)
        self.submitted = 0
        self._inbox: "multiprocessing.Queue[Any]" = self._context.Queue()
        self._process = self._start()

    def _start(self) -> Any:
        process = self._context.Process(target=run, args=(*self._args, self._inbox, self.written),
                                        name="speeltuin-proxy-writer", daemon=True)
        process.start()
        return process

    def submit(self, flow: CapturedFlow) -> int:
        """Queue a flow; its number (the writer has recorded it once `written` reaches it)."""
        if not self._process.is_alive():  # it died (killed, out of memory): a new one takes over the queue
            log.error("the writer process ended (exit code %s); starting a new one", self._process.exitcode)
            self._process = self._start()
        self._inbox.put(flow)
        self.submitted += 1
        return self.submitted

    def has_written(self, number: int) -> bool:
        return self.written.value >= number

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, then stop."""
        self._inbox.put(STOP)
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("the writer did not finish within %.0f s; %d flow(s) not written",
                      timeout, self.submitted - self.written.value)
            self._process.terminate()
        self._inbox.close()
