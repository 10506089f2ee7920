"""The vendor as receiving node: the happy flow (notified, it pulls) and its negative variations."""
from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from scenarios.base import Scenario
from scenarios.runner import Harness, StepFailed
from scenarios.steps import StepDef, Steps
from speeltuin.records import Exchange
from speeltuin.results import ExpectedFinding
from validators.query import same_request
from validators.rules.notification import check_notification_task
from validators.task_reader import pull_targets


def _attachments(bundle_text: str) -> int:
    """How many documents a recorded DocumentReference searchset offers (attachment URLs)."""
    try:
        bundle = json.loads(bundle_text)
    except ValueError:
        return 0
    return sum(1 for entry in bundle.get("entry", []) if isinstance(entry, dict)
               for content in (entry.get("resource") or {}).get("content", []) or []
               if isinstance(content, dict) and (content.get("attachment") or {}).get("url"))


class VendorAsReceiver(Scenario, kind="happy"):
    id = "RCV-01"
    title = "Vendor as receiving node: accepts a notification and pulls the BgZ and the referral letter"
    description = ("The simulator (sending node) notifies the vendor; the vendor obtains a pull token with the "
                   "authorization base, runs every query the Task lists and fetches the referral letter.")
    outcome = ("201 on the notification, a pull token granted for the `authorization_base`, every listed query "
               "and the referral letter pulled within the time limit, no error findings.")
    rules = ("TOK-001", "JWT-001", "JWT-013", "JWT-020", "BEAR-001", "BEAR-004")
    spec = "SPEC §3 steps 2-6, §5.2-§5.3, §6"
    vendor_role = "receiver"
    session_prefix = "recv"
    patient: ClassVar[str | None] = None  # a test patient of its own, else the run's (--patient)

    def __init__(self) -> None:
        super().__init__()
        self.task: dict | None = None

    def steps(self) -> Steps:
        return Steps(
            StepDef("create-sessions", "Create the validation session", self.create_sessions),
            StepDef("notify", "Simulator notifies the vendor (token, then POST Task)", self.notify),
            StepDef("await-pull", "Vendor pulls every offered query and document", self.await_pull),
            StepDef("token-granted", "Vendor's token request was granted", self.token_granted),
            StepDef("no-errors", "No error findings in the recorded exchanges", self.no_errors),
        )

    def create_sessions(self, h: Harness) -> str:
        endpoints = self.open_session(h)
        return f"simulator session {self.session_id}; vendor pulls from {endpoints['fhir_base']}"

    def send_notification(self, h: Harness, **extra: Any) -> dict[str, Any]:
        """Make the simulator notify the vendor; its answer: the Task sent and the vendor's delivery answer."""
        response = h.simulator.api("POST", f"/sessions/{self.session_id}/notify",
                                   json={"bsn": self.patient or h.patient_bsn, **extra})
        if response.status_code != 200:
            raise StepFailed(f"notify failed: {response.status_code} {response.text[:300]}")
        return response.json()

    def provoke(self, h: Harness, *names: str) -> str:
        """Make the simulator provoke the vendor in this session from now on (simulator/provocations.py)."""
        response = h.simulator.api("PUT", f"/sessions/{self.session_id}/provoke", json={"provoke": list(names)})
        if response.status_code != 200:
            raise StepFailed(f"could not switch on {', '.join(names) or 'nothing'}: {response.status_code} "
                             f"{response.text[:300]}")
        switched = ", ".join(names) or "nothing any more"
        return f"the simulator provokes {switched} in session {self.session_id}"

    def notify(self, h: Harness) -> str:
        result = self.send_notification(h)
        self.task = result["task"]
        delivery = result["delivery"]
        if delivery.get("status") != 201:
            raise StepFailed(f"the vendor answered the notification with {delivery}")
        return f"vendor answered 201, Location {delivery.get('location')}"

    def await_pull(self, h: Harness) -> str:
        targets = pull_targets(self.task or {})
        nudged = self.act(h, "pull")

        def done() -> str | None:
            seen = [ex for ex in self.exchanges(h) if ex.direction == "to-simulator"]
            answered = {path: next((ex for ex in seen if ex.status == 200 and same_request(ex.url, path)), None)
                        for _kind, path in targets}
            if any(ex is None for ex in answered.values()):
                return None
            offered = sum(_attachments(ex.response_body) for path, ex in answered.items()
                          if path.startswith("DocumentReference"))
            letters = [ex for ex in seen if ex.tag == "binary" and ex.status == 200]
            if len(letters) < offered:
                return None
            return f"{len(targets)} queries answered 200, {len(letters)} of {offered} document(s) fetched ({nudged})"

        return h.wait_for(f"the vendor to pull {len(targets)} queries and the referral letter", done)

    def no_pull(self, h: Harness) -> str:
        """For the variations: the vendor makes no request at all (it refused what it was sent)."""
        asked = self.asked_while_quiet(h, since=self.started_at)
        if asked:
            raise StepFailed(f"the vendor made {len(asked)} request(s) for a Task it refused: {_listed(asked)}")
        return f"no request from the vendor in {h.quiet_s:g} s"

    def asked_while_quiet(self, h: Harness, *, since: float) -> list[Exchange]:
        """Watch the vendor for the quiet period; what it asked the simulator from `since` on."""
        h.pause(h.quiet_s)
        return [ex for ex in self.exchanges(h) if ex.direction == "to-simulator" and ex.started_at >= since]

    def token_granted(self, h: Harness) -> str:
        grants = [ex for ex in self.exchanges(h)
                  if ex.tag == "token-request" and ex.direction == "to-simulator"]
        if not any(ex.status == 200 for ex in grants):
            raise StepFailed(f"no granted token request among {len(grants)}")
        return f"{len(grants)} token request(s), granted"


class NoTokenNotificationRefused(VendorAsReceiver, kind="negative"):
    id = "RCV-03"
    title = "Vendor as receiving node: refuses a notification without a token"
    description = "The simulator POSTs a valid Notification Task without an Authorization header."
    outcome = ("401 with `WWW-Authenticate: Bearer error=\"invalid_token\"` and an OperationOutcome, and no pull.")
    rules = ("HTTP-006", "HTTP-004", "HTTP-003")
    spec = "SPEC §3 step 3, §5.2, §5.4"
    catches = ("accepts-notification-without-token",)
    session_prefix = "notifynotoken"
    expected = (ExpectedFinding("to-vendor", "notification", "BEAR-001",
                                "the simulator notified without a token on purpose"),)

    def steps(self) -> Steps:
        return (super().steps()
                .replace("notify", StepDef("notify-without-token", "Simulator notifies without a token; the vendor "
                                                                    "refuses", self.notify_without_token))
                .replace("await-pull", StepDef("no-pull", "Vendor does not pull for the refused Task", self.no_pull))
                .remove("token-granted"))

    def notify_without_token(self, h: Harness) -> str:
        delivery = self.send_notification(h, without_token=True)["delivery"]
        status = delivery.get("status")
        problems = [f"{f['rule']}: {f['message']}" for f in delivery.get("findings", [])]
        if status != 401 or problems:
            raise StepFailed(f"the vendor answered a Task without a token with {status}"
                             + (": " + "; ".join(problems) if problems else "; expected 401"))
        return f"vendor refused with 401, {delivery.get('www_authenticate')}, and an OperationOutcome"


MAX_TOKEN_TRIES = 3  # SPEC: a receiver refused a pull token stops after a bounded number of tries


class StopsAfterRefusedToken(VendorAsReceiver, kind="negative"):
    id = "RCV-12"
    title = "Vendor as receiving node: stops asking for a pull token the simulator refuses"
    description = ("The simulator's authorization server answers every pull-token request with `invalid_grant`. "
                   f"The vendor must give up after a bounded number of tries (here: at most {MAX_TOKEN_TRIES}) and "
                   "pull nothing.")
    outcome = f"At most {MAX_TOKEN_TRIES} token requests, none granted, and no FHIR request."
    rules = ("TOKR-006",)
    spec = "SPEC §5.2; RFC 6749 §5.2"
    catches = ("retries-refused-token",)
    session_prefix = "refused"

    def steps(self) -> Steps:
        return (super().steps()
                .insert_before("notify", StepDef("provoke", "Simulator will refuse pull tokens",
                                                 lambda h: self.provoke(h, "refuse-pull-tokens")))
                .replace("await-pull", StepDef("bounded-tries", "Vendor stops after a few refused token requests",
                                               self.bounded_tries))
                .remove("token-granted"))

    def bounded_tries(self, h: Harness) -> str:
        h.wait_for("the vendor's first token request", lambda: self._token_requests(h) or None)
        h.pause(h.quiet_s)
        tries, pulls = self._token_requests(h), [ex for ex in self.exchanges(h) if ex.direction == "to-simulator"
                                                 and ex.tag in ("search", "read", "binary")]
        if len(tries) > MAX_TOKEN_TRIES:
            raise StepFailed(f"the vendor asked {len(tries)} times for a refused pull token (at most "
                             f"{MAX_TOKEN_TRIES})")
        if pulls:
            raise StepFailed(f"the vendor made {len(pulls)} FHIR request(s) without a token it was granted")
        return f"{len(tries)} token request(s), all refused, then no more in {h.quiet_s:g} s"

    def _token_requests(self, h: Harness) -> list:
        return [ex for ex in self.exchanges(h) if ex.direction == "to-simulator" and ex.tag == "token-request"]

    def teardown(self, h: Harness) -> None:
        self.provoke(h)


class RetriesWhenUnavailable(VendorAsReceiver, kind="negative"):
    id = "RCV-13"
    title = "Vendor as receiving node: retries after 503 with Retry-After and completes its pull"
    description = ("The simulator's FHIR server answers the vendor's first request 503 with `Retry-After: 1`. The "
                   "vendor must wait and retry, and complete its pull.")
    outcome = "The 503 answered request asked again after the Retry-After, and every query and the letter pulled."
    rules = ("HTTP-003",)
    spec = "SPEC §3 steps 5-6; RFC 9110 §10.2.3"
    catches = ("ignores-retry-after",)
    session_prefix = "unavailable"

    def steps(self) -> Steps:
        return (super().steps()
                .insert_before("notify", StepDef("provoke", "Simulator will answer the first request 503",
                                                 lambda h: self.provoke(h, "unavailable-once")))
                .insert_after("await-pull", StepDef("retried", "Vendor retried what was answered 503",
                                                    self.retried)))

    def retried(self, h: Harness) -> str:
        seen = [ex for ex in self.exchanges(h) if ex.direction == "to-simulator"]
        unavailable = [ex for ex in seen if ex.status == 503]
        if not unavailable:
            raise StepFailed("no request of the vendor was answered 503: nothing to retry")
        first = unavailable[0]
        again = [ex for ex in seen if ex.url == first.url and ex.status == 200 and ex.started_at > first.started_at]
        if not again:
            raise StepFailed(f"{first.method} {first.url} was answered 503 and never asked again")
        waited = again[0].started_at - first.started_at
        return f"{first.method} {first.url}: 503, asked again {waited:.1f} s later and answered 200"

    def teardown(self, h: Harness) -> None:
        self.provoke(h)


class SparsePatientPulled(VendorAsReceiver, kind="happy"):
    id = "RCV-14"
    title = "Vendor as receiving node: pulls a sparse patient, empty answers and all"
    description = ("The notification is for a test patient with little data (999991723: Patient, general "
                   "practitioner, Coverage and the letter): most queries answer an empty searchset, which the "
                   "vendor must take in its stride.")
    outcome = "Every listed query answered 200 (most of them empty) and the letter fetched; no error findings."
    rules = ("BUNDLE-001",)
    spec = "SPEC §6, §6.1"
    session_prefix = "sparse"
    patient = "999991723"


class WorkflowTaskFollowed(VendorAsReceiver, kind="happy"):
    id = "RCV-15"
    title = "Vendor as receiving node: reads the Workflow Task and pulls its queries"
    description = ("The notification says `get-workflow-task` = true and points to a Workflow Task (BgZ "
                   "referral Task) in `basedOn`: the vendor reads it with its pull token and pulls the queries "
                   "it lists (SPEC §3 step 1).")
    outcome = "The Workflow Task read (200) and every query it lists pulled; no error findings."
    rules = ("WF-001", "WF-011", "NOTIF-028")
    spec = "SPEC §3 step 1, §4"
    session_prefix = "workflow"

    def steps(self) -> Steps:
        return (super().steps()
                .replace("notify", StepDef("notify-workflow", "Simulator notifies with get-workflow-task",
                                           self.notify_with_workflow_task))
                .insert_after("await-pull", StepDef("workflow-pulled", "Vendor pulled every query of the Workflow "
                                                                       "Task", self.workflow_pulled)))

    def notify_with_workflow_task(self, h: Harness) -> str:
        result = self.send_notification(h, workflow_task=True)
        self.task = result["task"]
        if result["delivery"].get("status") != 201:
            raise StepFailed(f"the vendor answered the notification with {result['delivery']}")
        return f"vendor answered 201; the Task points to {self.task.get('basedOn')}"

    def workflow_pulled(self, h: Harness) -> str:
        seen = [ex for ex in self.exchanges(h) if ex.direction == "to-simulator" and ex.status == 200]
        reads = [ex for ex in seen if "/fhir/Task/" in ex.url]
        if not reads:
            raise StepFailed("the vendor did not read the Workflow Task")
        try:
            workflow = json.loads(reads[-1].response_body)
        except ValueError as exc:
            raise StepFailed(f"the Workflow Task read is not JSON: {exc}") from exc
        targets = [path for _kind, path in pull_targets(workflow)]
        if not targets:  # the simulator's own Workflow Task lists every query: an empty one is nothing to follow
            raise StepFailed("the Workflow Task read lists no query to pull (WF-011)")
        missing = [path for path in targets if not any(same_request(ex.url, path) for ex in seen)]
        if missing:
            raise StepFailed(f"{len(missing)} of the Workflow Task's {len(targets)} queries not pulled: "
                             + ", ".join(missing[:5]))
        return f"the Workflow Task read; its {len(targets)} queries pulled"


def _listed(asked: list[Exchange]) -> str:
    return ", ".join(f"{ex.method} {ex.url}" for ex in asked[:5])


def _sent_on_purpose(defect: str, *rules: str) -> tuple[ExpectedFinding, ...]:
    """What the proxy finds in a Task the simulator damaged on purpose: the vendor is not to blame for it."""
    reason = f"the simulator sent the defect '{defect}' on purpose"
    return tuple(ExpectedFinding("to-vendor", "notification", rule, reason) for rule in rules)


class DefectiveTaskRefused(VendorAsReceiver):
    """The simulator sends a Task with one known defect (simulator/outbound/defects.py); the vendor must refuse it
    with 4xx and an OperationOutcome, and not pull. Each defect is a scenario of its own (no kind here)."""

    outcome = "4xx with an OperationOutcome on the defective Task, and no request for it afterwards."
    spec = "SPEC §4, §5.4"
    catches = ("accepts-defective-task",)
    defect: ClassVar[str] = ""  # one of the simulator's known defects
    # `expected`: what validators.rules.notification.check_notification_task finds in a Task with that defect;
    # the step checks it against the Task the simulator actually sent

    def steps(self) -> Steps:
        notify = StepDef("notify-defective", "Simulator sends a defective Task; the vendor refuses it",
                         self.notify_defective)
        return (super().steps()
                .replace("notify", notify)
                .replace("await-pull", StepDef("no-pull", "Vendor does not pull for the refused Task", self.no_pull))
                .remove("token-granted")
                .replace("no-errors", StepDef("no-errors", "No unexpected error findings", self.no_errors)))

    def notify_defective(self, h: Harness) -> str:
        result = self.send_notification(h, defect=self.defect)
        provoked = {f.rule for f in check_notification_task(result["task"])}
        declared = {e.rule for e in self.expected}
        if provoked != declared:
            raise StepFailed(f"the Task with the defect '{self.defect}' provokes {sorted(provoked) or 'no finding'}; "
                             f"the scenario declares {sorted(declared)}")
        what = f"the Task with the defect '{self.defect}' ({', '.join(self.rules)})"
        delivery = result["delivery"]
        status, body = delivery.get("status"), delivery.get("body") or ""
        if not isinstance(status, int) or not 400 <= status < 500:
            raise StepFailed(f"the vendor answered {what} with {status}; expected 4xx")
        if "OperationOutcome" not in body:
            raise StepFailed(f"the vendor's {status} to {what} carries no OperationOutcome: {body[:300]}")
        return f"vendor refused {what} with {status} and an OperationOutcome"


class OtherOwnerRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-04"
    title = "Vendor as receiving node: refuses a Notification Task owned by another organisation"
    description = ("The Task is valid in itself, but its `owner` names another organisation's URA than the "
                   "vendor's: it is not for this receiver (SPEC §4: owner is the receiving organisation).")
    rules = ("TOK-011",)
    catches = ("accepts-other-owner",)
    session_prefix = "owner"
    defect = "owner-other-organisation"
    expected = ()


class EndedPeriodRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-05"
    title = "Vendor as receiving node: refuses a Notification Task whose period has ended"
    description = "The Task's `restriction.period.end` lies in the past: there is nothing left to pull."
    rules = ("NOTIF-016",)
    catches = ("accepts-expired-period",)
    session_prefix = "ended"
    defect = "period-end-in-the-past"
    expected = _sent_on_purpose(defect, *rules)


class BadBsnRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-06"
    title = "Vendor as receiving node: refuses a Notification Task whose BSN fails the 11-check"
    description = "The Task's `for.identifier` is a 9-digit BSN that fails the 11-check (SPEC §6.3)."
    rules = ("ID-BSN-002",)
    spec = "SPEC §4, §6.3, §5.4"
    session_prefix = "badbsn"
    defect = "bsn-fails-11-check"
    expected = _sent_on_purpose(defect, *rules)


class WrongTaskCodeRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-07"
    title = "Vendor as receiving node: refuses a Notification Task with another Task code"
    description = "The Task's `code` is not `pull-notification` of the TaskCode system."
    rules = ("NOTIF-010",)
    session_prefix = "taskcode"
    defect = "wrong-task-code"
    expected = _sent_on_purpose(defect, *rules)


class IntentRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-08"
    title = "Vendor as receiving node: refuses a Notification Task whose intent is not proposal"
    description = "The Task's `intent` is `order` instead of `proposal`."
    rules = ("NOTIF-009",)
    session_prefix = "intent"
    defect = "intent-not-proposal"
    expected = _sent_on_purpose(defect, *rules)


class NoAuthorizationBaseRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-09"
    title = "Vendor as receiving node: refuses a Notification Task without an authorization base"
    description = "The Task has no `authorization-base` input: the vendor could not ask for a pull token."
    rules = ("NOTIF-024",)
    session_prefix = "noauthbase"
    defect = "no-authorization-base"
    expected = _sent_on_purpose(defect, *rules)


class QueryWithoutTypeRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-10"
    title = "Vendor as receiving node: refuses a Notification Task with a query that names no resource type"
    description = "One search input's query names no STU3 resource type (`?_include=…`)."
    rules = ("NOTIF-030",)
    session_prefix = "notype"
    defect = "query-without-resource-type"
    expected = _sent_on_purpose(defect, *rules)


class IdentifierObjectRefused(DefectiveTaskRefused, kind="negative"):
    id = "RCV-11"
    title = "Vendor as receiving node: refuses a Notification Task whose identifier is an object"
    description = ("The simulator sends a Task whose identifier is a JSON object instead of an array (a defect of "
                   "published examples, SPEC §4).")
    rules = ("NOTIF-002",)
    session_prefix = "defect"
    defect = "identifier-object"
    expected = _sent_on_purpose(defect, *rules)


class CancellationAccepted(VendorAsReceiver, kind="negative"):
    id = "RCV-02"
    title = "Vendor as receiving node: accepts the cancellation of a notification and stops pulling"
    description = ("After a complete pull the simulator cancels the notification with a conditional update "
                   "(PUT Task?identifier=…, status cancelled). The vendor must answer 200 and pull no more "
                   "(SPEC §3 step 8).")
    outcome = "200 on the conditional update, and no request for the cancelled notification afterwards."
    rules = ("NOTIF-033", "NOTIF-037")
    spec = "SPEC §3 step 8"
    catches = ("ignores-cancellation",)
    session_prefix = "cancel"
    cancel_sent_at = 0.0  # when the cancel step began: what the vendor asks after it counts

    def steps(self) -> Steps:
        return (super().steps()
                .remove("token-granted")
                .insert_before("no-errors",
                               StepDef("cancel", "Simulator cancels; the vendor accepts the cancellation", self.cancel),
                               StepDef("no-pull-after-cancel", "Vendor pulls no more", self.no_pull_after_cancel)))

    def no_pull_after_cancel(self, h: Harness) -> str:
        # from when the cancellation was sent: a vendor that ignores it may pull again at once, before this step
        asked = self.asked_while_quiet(h, since=self.cancel_sent_at)
        if asked:
            raise StepFailed(f"the vendor made {len(asked)} request(s) after the cancellation: {_listed(asked)}")
        return f"no request from the vendor in {h.quiet_s:g} s after the cancellation"

    def cancel(self, h: Harness) -> str:
        self.cancel_sent_at = time.time()
        sent = h.simulator.api("GET", f"/sessions/{self.session_id}/notifications").json()
        response = h.simulator.api("POST", f"/sessions/{self.session_id}/notifications/{sent[-1]['id']}/cancel")
        if response.status_code != 200:
            raise StepFailed(f"cancel failed: {response.status_code} {response.text[:300]}")
        status = response.json()["delivery"].get("status")
        if status != 200:
            raise StepFailed(f"the vendor answered the cancellation with {response.json()['delivery']}")
        return "vendor answered 200 to the conditional update"
