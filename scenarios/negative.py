"""Non-happy scenarios: each is a happy flow with one step overridden or a few added (DESIGN: variations,
not copies). They show the vendor refusing what it must refuse."""
from __future__ import annotations

from typing import Callable

from scenarios.happy import VendorAsReceiver, VendorAsSender, _Pair, no_errors
from scenarios.model import ExpectedFinding
from scenarios.runner import Harness, Scenario, StepFailed
from validators.rules.notification import check_notification_task

Steps = list[tuple[str, Callable[[Harness], str]]]
QUIET_PERIOD_S = 3.0  # how long a vendor is watched for a pull it must not make


class DefectiveTaskRefused(VendorAsReceiver):
    id = "negative-defective-task"
    title = "Vendor as receiving node: refuses a Notification Task with a known defect"
    description = ("The simulator sends a Task whose identifier is a JSON object instead of an array (a defect of "
                   "published examples, SPEC §4). The vendor must answer 4xx with an OperationOutcome and not pull.")
    defect = "identifier-object"

    def __init__(self) -> None:
        super().__init__()
        self.ids = _Pair("defect")

    def steps(self) -> Steps:
        return [
            ("Create the validation session", self.create_sessions),
            ("Simulator sends a defective Task; the vendor refuses it", self.notify_defective),
            ("Vendor does not pull for the refused Task", self.no_pull),
            ("No unexpected error findings", lambda h: no_errors(h, self, self.ids.simulator)),
        ]

    def notify_defective(self, h: Harness) -> str:
        response = h.simulator.api("POST", f"/sessions/{self.ids.simulator}/notify",
                                   json={"bsn": h.patient_bsn, "defect": self.defect})
        if response.status_code != 200:
            raise StepFailed(f"notify failed: {response.status_code} {response.text[:300]}")
        result = response.json()
        reason = f"the simulator sent the defect '{self.defect}' on purpose"
        self.expected = [ExpectedFinding("to-vendor", "notification", f.rule, reason)
                         for f in check_notification_task(result["task"])]
        delivery = result["delivery"]
        status, body = delivery.get("status"), delivery.get("body") or ""
        if not isinstance(status, int) or not 400 <= status < 500:
            raise StepFailed(f"the vendor answered the defective Task with {status}; expected 4xx")
        if '"OperationOutcome"' not in body.replace(" ", "") and "OperationOutcome" not in body:
            raise StepFailed(f"the vendor's {status} carries no OperationOutcome: {body[:300]}")
        return f"vendor refused with {status} and an OperationOutcome"

    def no_pull(self, h: Harness) -> str:
        import time

        time.sleep(QUIET_PERIOD_S)
        asked = [ex for ex in h.exchanges(self.ids.simulator) if ex.direction == "to-simulator"]
        if asked:
            raise StepFailed(f"the vendor made {len(asked)} request(s) for a Task it refused: "
                             + ", ".join(f"{ex.method} {ex.url}" for ex in asked[:5]))
        return f"no request from the vendor in {QUIET_PERIOD_S:.0f} s"


class CancellationAccepted(VendorAsReceiver):
    id = "negative-cancellation"
    title = "Vendor as receiving node: accepts the cancellation of a notification"
    description = ("After a complete pull the simulator cancels the notification with a conditional update "
                   "(PUT Task?identifier=…, status cancelled). The vendor must answer 200 (SPEC §3 step 8).")

    def __init__(self) -> None:
        super().__init__()
        self.ids = _Pair("cancel")

    def steps(self) -> Steps:
        happy = super().steps()
        return happy[:3] + [("Simulator cancels; the vendor accepts the cancellation", self.cancel)] + happy[-1:]

    def cancel(self, h: Harness) -> str:
        sent = h.simulator.api("GET", f"/sessions/{self.ids.simulator}/notifications").json()
        response = h.simulator.api("POST", f"/sessions/{self.ids.simulator}/notifications/{sent[-1]['id']}/cancel")
        if response.status_code != 200:
            raise StepFailed(f"cancel failed: {response.status_code} {response.text[:300]}")
        status = response.json()["delivery"].get("status")
        if status != 200:
            raise StepFailed(f"the vendor answered the cancellation with {response.json()['delivery']}")
        return "vendor answered 200 to the conditional update"


class ResourceServerRefusals(VendorAsSender):
    id = "negative-resource-server"
    title = "Vendor as sending node: its resource server refuses what it must refuse"
    description = ("After a complete pull the simulator probes the vendor's FHIR server: no token and a bad "
                   "token (401 with WWW-Authenticate), another patient (403/404, or nothing of theirs), a "
                   "malformed query (400), every error an OperationOutcome (SPEC §5.4).")
    probes = ("no-token", "bad-token", "other-patient", "malformed-query")

    def __init__(self) -> None:
        super().__init__()
        self.ids = _Pair("probe")

    def steps(self) -> Steps:
        happy = super().steps()
        probes: Steps = [(f"Probe: {kind}", self._probe_step(kind)) for kind in self.probes]
        return happy[:-1] + probes + happy[-1:]

    def _probe_step(self, kind: str) -> Callable[[Harness], str]:
        def step(h: Harness) -> str:
            if kind == "no-token":  # the simulator leaves the token out on purpose
                self.expected.append(ExpectedFinding("to-vendor", "search", "BEAR-001",
                                                     "the simulator probed without a token on purpose"))
            return run_probe(h, self.ids.simulator, kind)

        return step


class TokensRefusedAfterCancellation(VendorAsSender):
    id = "negative-token-after-cancellation"
    title = "Vendor as sending node: refuses pull tokens after it cancelled the notification"
    description = ("The vendor cancels its notification; the simulator then asks for a pull token with the "
                   "authorization base. The vendor's authorization server must answer 400 invalid_grant.")

    def __init__(self) -> None:
        super().__init__()
        self.ids = _Pair("revoke")

    def steps(self) -> Steps:
        happy = super().steps()
        return happy[:-1] + [
            ("Vendor cancels its notification", self.vendor_cancels),
            ("Probe: pull token after cancellation", lambda h: run_probe(h, self.ids.simulator,
                                                                         "token-after-cancellation")),
        ] + happy[-1:]

    def vendor_cancels(self, h: Harness) -> str:
        # A real vendor is asked to cancel; the reference vendor is driven through its admin API.
        response = h.vendor.api("POST", f"/sessions/{self.ids.vendor}/notifications/"
                                        f"{self.vendor_notification_id}/cancel")
        if response.status_code != 200:
            raise StepFailed(f"could not make the reference vendor cancel: {response.status_code} {response.text}")

        def cancelled() -> str | None:
            received = self._received(h)
            return "the simulator received the cancellation" if received[-1].status == "cancelled" else None

        return h.wait_for("the vendor's cancellation", cancelled)


def run_probe(h: Harness, session_id: str, kind: str) -> str:
    response = h.simulator.api("POST", f"/sessions/{session_id}/probes/{kind}")
    if response.status_code != 200:
        raise StepFailed(f"probe {kind} could not be made: {response.text[:300]}")
    result = response.json()
    if result["findings"]:
        shown = "; ".join(f"{f['rule']}: {f['message']}" for f in result["findings"])
        raise StepFailed(f"{result['method']} {result['url']} → {result['status']}: {shown}")
    return f"{result['method']} {result['url']} → {result['status']}, as required"


def negative_scenarios() -> list[Scenario]:
    return [DefectiveTaskRefused(), CancellationAccepted(), ResourceServerRefusals(), TokensRefusedAfterCancellation()]
