"""The vendor as sending node: the happy flow (it notifies, the simulator pulls) and its negative variations."""
from __future__ import annotations

from scenarios.base import Scenario
from speeltuin.results import ExpectedFinding
from scenarios.runner import Harness, StepFailed
from scenarios.steps import StepDef, Steps
from speeltuin.records import Notification, NotificationOrigin, PullStatus


class VendorAsSender(Scenario, kind="happy"):
    id = "happy-vendor-sender"
    title = "Vendor as sending node: notifies the simulator and serves the pull"
    description = ("The vendor obtains a notification token and POSTs a Notification Task to the simulator "
                   "(receiving node), which then pulls every offered query and the referral letter.")
    vendor_role = "sender"
    session_prefix = "send"

    def steps(self) -> Steps:
        return Steps(
            StepDef("create-sessions", "Create the validation session", self.create_sessions),
            StepDef("vendor-notifies", "Vendor notifies the simulator", self.vendor_notifies),
            StepDef("task-accepted", "Simulator accepted the Notification Task", self.accepted),
            StepDef("await-pull", "Simulator pulls every offered query and the referral letter", self.await_pull),
            StepDef("no-errors", "No error findings in the recorded exchanges", self.no_errors),
        )

    def create_sessions(self, h: Harness) -> str:
        endpoints = self.open_session(h)
        return f"simulator session {self.session_id}; vendor notifies {endpoints['notification_url']}"

    def vendor_notifies(self, h: Harness) -> str:
        acted = self.act(h, "notify")
        received = h.wait_for("a Notification Task from the vendor",
                              lambda: "Task received" if self._received(h) else None)
        return f"{acted}; {received}"

    def _received(self, h: Harness) -> list[Notification]:
        """The notifications the vendor sent in this scenario, oldest first."""
        return [n for n in h.store.list_notifications(self.session_id)
                if n.origin == NotificationOrigin.RECEIVED and n.created_at >= self.started_at]

    def accepted(self, h: Harness) -> str:
        posts = [ex for ex in self.exchanges(h) if ex.tag == "notification"]
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

    def probe_step(self, kind: str, title: str = "") -> StepDef:
        """A step that makes the simulator probe the vendor's servers (simulator/outbound/probes.py)."""
        return StepDef(f"probe-{kind}", title or f"Probe: {kind}", lambda h: self.probe(h, kind))

    def probe(self, h: Harness, kind: str) -> str:
        response = h.simulator.api("POST", f"/sessions/{self.session_id}/probes/{kind}")
        if response.status_code != 200:
            raise StepFailed(f"probe {kind} could not be made: {response.text[:300]}")
        result = response.json()
        if result["findings"]:
            shown = "; ".join(f"{f['rule']}: {f['message']}" for f in result["findings"])
            raise StepFailed(f"{result['method']} {result['url']} → {result['status']}: {shown}")
        return f"{result['method']} {result['url']} → {result['status']}, as required"


class ResourceServerRefusals(VendorAsSender, kind="negative"):
    id = "negative-resource-server"
    title = "Vendor as sending node: its resource server refuses what it must refuse"
    description = ("After a complete pull the simulator probes the vendor's FHIR server: no token and a bad "
                   "token (401 with WWW-Authenticate), another patient (403/404, or nothing of theirs), a "
                   "malformed query (400), every error an OperationOutcome (SPEC §5.4).")
    session_prefix = "probe"
    probes = ("no-token", "bad-token", "other-patient", "malformed-query")
    expected = (ExpectedFinding("to-vendor", "search", "BEAR-001", "the simulator probed without a token on purpose"),)

    def steps(self) -> Steps:
        return super().steps().insert_before("no-errors", *(self.probe_step(kind) for kind in self.probes))


class TokensRefusedAfterCancellation(VendorAsSender, kind="negative"):
    id = "negative-token-after-cancellation"
    title = "Vendor as sending node: refuses pull tokens after it cancelled the notification"
    description = ("The vendor cancels its notification; the simulator then asks for a pull token with the "
                   "authorization base. The vendor's authorization server must answer 400 invalid_grant.")
    session_prefix = "revoke"

    def steps(self) -> Steps:
        return super().steps().insert_before(
            "no-errors",
            StepDef("vendor-cancels", "Vendor cancels its notification", self.vendor_cancels),
            self.probe_step("token-after-cancellation", "Probe: pull token after cancellation"))

    def vendor_cancels(self, h: Harness) -> str:
        received = self._received(h)
        acted = self.act(h, "cancel", task_identifier=received[-1].identifier if received else "")

        def cancelled() -> str | None:
            received = self._received(h)
            return "the simulator received the cancellation" if received[-1].status == "cancelled" else None

        waited = h.wait_for("the vendor's cancellation", cancelled)
        return f"{acted}; {waited}"
