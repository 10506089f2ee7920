"""The two happy scenarios: the vendor as receiving node, and the vendor as sending node."""
from __future__ import annotations

import json
from typing import Callable

from scenarios.pairing import PairingError, pair_sessions
from scenarios.runner import Harness, Scenario, StepFailed, error_findings, same_request
from speeltuin.records import NotificationOrigin, PullStatus, new_id
from validators.task_reader import pull_targets


class _Pair:
    """The two session ids of one scenario: the simulator's and the reference vendor's."""

    def __init__(self, prefix: str) -> None:
        suffix = new_id()
        self.simulator = f"{prefix}-sim-{suffix}"
        self.vendor = f"{prefix}-ref-{suffix}"


def _pair(h: Harness, ids: _Pair, vendor_role: str, title: str) -> dict[str, str]:
    try:
        return pair_sessions(h.simulator, h.vendor, vendor_role=vendor_role, sim_id=ids.simulator,
                             ven_id=ids.vendor, name=title)
    except PairingError as exc:
        raise StepFailed(str(exc)) from exc


def no_errors(h: Harness, scenario: Scenario, session_id: str) -> str:
    exchanges = h.exchanges(session_id)
    excuses = scenario.excuses(h, session_id)
    bad = error_findings(exchanges, excuses)
    if bad:
        shown = "\n".join(bad[:20])
        raise StepFailed(f"{len(bad)} error finding(s):\n{shown}")
    notes = [f"{len(excuses.suppressions)} rule(s) suppressed for this session"] if excuses.suppressions else []
    notes += [f"{len(excuses.expected)} finding kind(s) provoked on purpose"] if excuses.expected else []
    noted = f" ({'; '.join(notes)})" if notes else ""
    return f"{len(exchanges)} exchanges recorded by the proxy, no error findings{noted}"


def _attachments(bundle_text: str) -> int:
    """How many documents a recorded DocumentReference searchset offers (attachment URLs)."""
    try:
        bundle = json.loads(bundle_text)
    except ValueError:
        return 0
    return sum(1 for entry in bundle.get("entry", []) if isinstance(entry, dict)
               for content in (entry.get("resource") or {}).get("content", []) or []
               if isinstance(content, dict) and (content.get("attachment") or {}).get("url"))


class VendorAsReceiver(Scenario):
    id = "happy-vendor-receiver"
    title = "Vendor as receiving node: accepts a notification and pulls the BgZ and the referral letter"
    description = ("The simulator (sending node) notifies the vendor; the vendor obtains a pull token with the "
                   "authorization base, runs every query the Task lists and fetches the referral letter.")
    vendor_role = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.ids = _Pair("recv")
        self.task: dict | None = None

    def session_id(self, harness: Harness) -> str | None:
        return self.ids.simulator

    def steps(self) -> list[tuple[str, Callable[[Harness], str]]]:
        return [
            ("Create the validation session", self.create_sessions),
            ("Simulator notifies the vendor (token, then POST Task)", self.notify),
            ("Vendor pulls every offered query and document", self.await_pull),
            ("Vendor's token request was granted", self.token_granted),
            ("No error findings in the recorded exchanges", lambda h: no_errors(h, self, self.ids.simulator)),
        ]

    def create_sessions(self, h: Harness) -> str:
        endpoints = _pair(h, self.ids, "receiver", self.title)
        return f"simulator session {self.ids.simulator}; vendor pulls from {endpoints['fhir_base']}"

    def notify(self, h: Harness) -> str:
        response = h.simulator.api("POST", f"/sessions/{self.ids.simulator}/notify", json={"bsn": h.patient_bsn})
        if response.status_code != 200:
            raise StepFailed(f"notify failed: {response.status_code} {response.text[:300]}")
        result = response.json()
        self.task = result["task"]
        delivery = result["delivery"]
        if delivery.get("status") != 201:
            raise StepFailed(f"the vendor answered the notification with {delivery}")
        return f"vendor answered 201, Location {delivery.get('location')}"

    def await_pull(self, h: Harness) -> str:
        targets = pull_targets(self.task or {})

        def done() -> str | None:
            seen = [ex for ex in h.exchanges(self.ids.simulator) if ex.direction == "to-simulator"]
            answered = {path: next((ex for ex in seen if ex.status == 200 and same_request(ex.url, path)), None)
                        for _kind, path in targets}
            if any(ex is None for ex in answered.values()):
                return None
            offered = sum(_attachments(ex.response_body) for path, ex in answered.items()
                          if path.startswith("DocumentReference"))
            letters = [ex for ex in seen if ex.tag == "binary" and ex.status == 200]
            if len(letters) < offered:
                return None
            return f"{len(targets)} queries answered 200, {len(letters)} of {offered} document(s) fetched"

        return h.wait_for(f"the vendor to pull {len(targets)} queries and the referral letter", done)

    def token_granted(self, h: Harness) -> str:
        grants = [ex for ex in h.exchanges(self.ids.simulator)
                  if ex.tag == "token-request" and ex.direction == "to-simulator"]
        if not any(ex.status == 200 for ex in grants):
            raise StepFailed(f"no granted token request among {len(grants)}")
        return f"{len(grants)} token request(s), granted"


class VendorAsSender(Scenario):
    id = "happy-vendor-sender"
    title = "Vendor as sending node: notifies the simulator and serves the pull"
    description = ("The vendor obtains a notification token and POSTs a Notification Task to the simulator "
                   "(receiving node), which then pulls every offered query and the referral letter.")
    vendor_role = "sender"

    def __init__(self) -> None:
        super().__init__()
        self.ids = _Pair("send")
        self.vendor_notification_id: str | None = None

    def session_id(self, harness: Harness) -> str | None:
        return self.ids.simulator

    def steps(self) -> list[tuple[str, Callable[[Harness], str]]]:
        return [
            ("Create the validation session", self.create_sessions),
            ("Vendor notifies the simulator", self.vendor_notifies),
            ("Simulator accepted the Notification Task", self.accepted),
            ("Simulator pulls every offered query and the referral letter", self.await_pull),
            ("No error findings in the recorded exchanges", lambda h: no_errors(h, self, self.ids.simulator)),
        ]

    def create_sessions(self, h: Harness) -> str:
        endpoints = _pair(h, self.ids, "sender", self.title)
        return f"simulator session {self.ids.simulator}; vendor notifies {endpoints['notification_url']}"

    def vendor_notifies(self, h: Harness) -> str:
        # A real vendor is asked to notify; the reference vendor is driven through its admin API.
        response = h.vendor.api("POST", f"/sessions/{self.ids.vendor}/notify", json={"bsn": h.patient_bsn})
        if response.status_code != 200:
            raise StepFailed(f"could not make the reference vendor notify: {response.status_code} {response.text}")
        self.vendor_notification_id = response.json()["notification_id"]
        return h.wait_for("a Notification Task from the vendor", lambda: "Task received" if self._received(h) else None)

    def _received(self, h: Harness) -> list:
        return [n for n in h.store.list_notifications(self.ids.simulator) if n.origin == NotificationOrigin.RECEIVED]

    def accepted(self, h: Harness) -> str:
        posts = [ex for ex in h.exchanges(self.ids.simulator) if ex.tag == "notification"]
        if not any(ex.status == 201 for ex in posts):
            raise StepFailed(f"no notification answered 201 among {[ex.status for ex in posts]}")
        return f"Task {self._received(h)[0].id} stored, answered 201"

    def await_pull(self, h: Harness) -> str:
        def done() -> str | None:
            received = self._received(h)
            if not received or received[0].pull_status in (None, PullStatus.PENDING, PullStatus.PULLING):
                return None
            return received[0].pull_status

        status = h.wait_for("the simulator's pull to finish", done)
        summary = self._received(h)[0].pull_summary or {}
        if status != "done":
            raise StepFailed(f"pull {status}: {summary.get('error') or summary.get('results')}")
        results, documents = summary.get("results", []), summary.get("documents", [])
        return (f"{len(results)} queries answered 200 ({sum(r.get('entries', 0) for r in results)} entries), "
                f"{len(documents)} referral letter(s), {sum(d['bytes'] for d in documents)} bytes of PDF")


def happy_scenarios() -> list[Scenario]:
    return [VendorAsReceiver(), VendorAsSender()]
