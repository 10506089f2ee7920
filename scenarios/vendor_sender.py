"""The vendor as sending node: the happy flow (it notifies, the simulator pulls) and its negative variations."""
from __future__ import annotations

import json
from typing import Any, Callable, ClassVar, Mapping

from scenarios.base import Scenario
from scenarios.runner import Harness, StepFailed, StepSkipped
from scenarios.steps import StepDef, Steps
from speeltuin.records import Exchange, Notification, NotificationOrigin, PullStatus
from speeltuin.results import ExpectedFinding
from validators.json_walk import dig
from validators.query import same_request


class VendorAsSender(Scenario, kind="happy"):
    id = "SND-01"
    title = "Vendor as sending node: notifies the simulator and serves the pull"
    description = ("The vendor obtains a notification token and POSTs a Notification Task to the simulator "
                   "(receiving node), which then pulls every offered query and the referral letter.")
    outcome = ("The notification accepted (201), every listed query and the referral letter pulled, zero error "
               "findings.")
    rules = ("TOK-001", "JWT-001", "NOTIF-001", "TOKR-001", "HTTP-001", "BUNDLE-001", "DOC-001", "BUNDLE-019",
             "BUNDLE-020")
    spec = "SPEC §3 steps 2-6, §4, §5.2-§5.3, §5.4, §6"
    vendor_role = "sender"
    session_prefix = "send"
    # answers to its pull holding every patient's data: the proxy sees two patients in one answer (BUNDLE-020)
    catches = ("serves-every-patient",)

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

    def vendor_notifies(self, h: Harness, **extra: str) -> str:
        acted = self.act(h, "notify", **extra)
        received = h.wait_for("a Notification Task from the vendor",
                              lambda: "Task received" if self._received(h) else None)
        return f"{acted}; {received}"

    def _received(self, h: Harness) -> list[Notification]:
        """The notifications the vendor sent in this scenario, oldest first."""
        return [n for n in h.store.list_notifications(self.session_id)
                if n.origin == NotificationOrigin.RECEIVED and n.created_at >= self.started_at]

    def accepted(self, h: Harness) -> str:
        def recorded() -> list | None:  # the simulator stores the Task before the proxy has recorded its answer
            posts = [ex for ex in self.exchanges(h) if ex.tag == "notification"]
            return posts or None

        posts = h.wait_for("the proxy's record of the notification", recorded)
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
            raise StepFailed(self.pull_failure(h, status, summary))
        results, documents = summary.get("results", []), summary.get("documents", [])
        return (f"{len(results)} queries answered 200 ({sum(r.get('entries', 0) for r in results)} entries), "
                f"{len(documents)} referral letter(s), {sum(d['bytes'] for d in documents)} bytes of PDF")

    def pull_failure(self, h: Harness, status: str, summary: Mapping[str, Any]) -> str:
        """The step detail of a pull that did not end 'done', with what the vendor's answers said."""
        session = h.store.get_session(self.session_id)
        fhir_base = (session.config.vendor_fhir_base or "") if session else ""
        return describe_failed_pull(status, summary, fhir_base=fhir_base, said=answers_in(self.exchanges(h)))

    def probe_step(self, kind: str, title: str = "") -> StepDef:
        """A step that makes the simulator probe the vendor's servers (simulator/outbound/probes.py)."""
        return StepDef(f"probe-{kind}", title or f"Probe: {kind}", lambda h: self.probe(h, kind))

    def probe(self, h: Harness, kind: str) -> str:
        response = h.simulator.api("POST", f"/sessions/{self.session_id}/probes/{kind}")
        if response.status_code != 200:
            raise StepFailed(f"probe {kind} could not be made: {response.text[:300]}")
        result = response.json()
        errors = [f for f in result["findings"] if f["severity"] == "error"]
        shown = "; ".join(f"{f['rule']}: {f['message']}" for f in errors or result["findings"])
        if errors:
            raise StepFailed(f"{result['method']} {result['url']} → {result['status']}: {shown}")
        noted = f" (noted: {shown})" if result["findings"] else ""
        return f"{result['method']} {result['url']} → {result['status']}, as required{noted}"


class UpdatePulledAgain(VendorAsSender, kind="happy"):
    id = "SND-02"
    title = "Vendor as sending node: sends an update with the same groupIdentifier, pulled again"
    description = ("After the first notification and its pull, the vendor sends an updated data set: a new "
                   "Notification Task with the same `groupIdentifier` (SPEC §3 step 7). The simulator pulls again.")
    outcome = "A second notification accepted (201) with the first's groupIdentifier, and pulled completely."
    rules = ("NOTIF-006", "NOTIF-007")
    spec = "SPEC §3 step 7, §4"
    catches = ("update-with-new-group",)
    session_prefix = "update"

    def steps(self) -> Steps:
        return super().steps().insert_before(
            "no-errors",
            StepDef("vendor-updates", "Vendor sends an update", self.vendor_updates),
            StepDef("same-group", "The update keeps the groupIdentifier", self.same_group),
            StepDef("await-second-pull", "Simulator pulls the update", self.await_second_pull))

    def vendor_updates(self, h: Harness) -> str:
        first = self._received(h)[0]
        acted = self.act(h, "update", task_identifier=first.identifier, group_identifier=first.group_identifier)
        waited = h.wait_for("the vendor's update", lambda: "update received" if len(self._received(h)) > 1 else None)
        return f"{acted}; {waited}"

    def same_group(self, h: Harness) -> str:
        first, update = self._received(h)[:2]
        if update.group_identifier != first.group_identifier:
            raise StepFailed(f"the update has groupIdentifier {update.group_identifier}; the first notification "
                             f"{first.group_identifier}")
        if update.identifier == first.identifier:
            raise StepFailed(f"the update repeats the first notification's identifier {first.identifier}")
        return f"groupIdentifier {first.group_identifier} kept, new identifier {update.identifier}"

    def await_second_pull(self, h: Harness) -> str:
        def done() -> str | None:
            update = self._received(h)[1]
            return None if update.pull_status in (None, PullStatus.PENDING, PullStatus.PULLING) else update.pull_status

        status = h.wait_for("the simulator's pull of the update", done)
        if status != "done":
            raise StepFailed("the update: " + self.pull_failure(h, status, self._received(h)[1].pull_summary or {}))
        return "the update pulled completely"


class ProbeRefused(VendorAsSender):
    """After a complete pull the simulator makes requests on purpose that the vendor's authorization server or
    FHIR server must refuse (simulator/outbound/probes.py): one step per probe, before the final check."""

    probes: ClassVar[tuple[tuple[str, str], ...]] = ()  # (probe kind, step title)

    def steps(self) -> Steps:
        probing = (self.probe_step(kind, title) for kind, title in self.probes)
        return super().steps().insert_before("no-errors", *probing)


def _probed_on_purpose(tag: str, probe: str, *rules: str) -> tuple[ExpectedFinding, ...]:
    """What the proxy finds in the simulator's own deliberately bad request: the vendor is not to blame for it."""
    return tuple(ExpectedFinding("to-vendor", tag, rule, f"the simulator's probe '{probe}' is wrong on purpose")
                 for rule in rules)


_TOKEN_REFUSAL = "400 `invalid_grant` (or 401 `invalid_client`) with an RFC 6749 §5.2 error body, and no token."


class WrongAudienceRefused(ProbeRefused, kind="negative"):
    id = "SND-04"
    title = "Vendor as sending node: its authorization server refuses assertions with another aud"
    description = "The simulator asks for a pull token with assertions whose `aud` is not the exact token URL."
    outcome = _TOKEN_REFUSAL
    rules = ("JWT-013",)
    spec = "SPEC §5.2"
    catches = ("accepts-wrong-aud",)
    session_prefix = "wrongaud"
    probes = (("wrong-aud", "Probe: assertions with another aud are refused"),)
    expected = _probed_on_purpose("token-request", "wrong-aud", "JWT-013")


class ExpiredAssertionRefused(ProbeRefused, kind="negative"):
    id = "SND-05"
    title = "Vendor as sending node: its authorization server refuses expired assertions"
    description = "The simulator asks for a pull token with assertions whose `exp` has passed."
    outcome = _TOKEN_REFUSAL
    rules = ("JWT-015",)
    spec = "SPEC §5.2"
    catches = ("accepts-expired-assertion",)
    session_prefix = "expired"
    probes = (("expired-assertion", "Probe: expired assertions are refused"),)
    expected = _probed_on_purpose("token-request", "expired-assertion", "JWT-015")


class UnknownKeyRefused(ProbeRefused, kind="negative"):
    id = "SND-06"
    title = "Vendor as sending node: its authorization server refuses assertions signed with an unknown key"
    description = "The simulator asks for a pull token with assertions signed by a key (`kid`) not in its JWKS."
    outcome = _TOKEN_REFUSAL
    rules = ("JWT-005",)
    spec = "SPEC §5.2"
    catches = ("accepts-unknown-key",)
    session_prefix = "unknownkey"
    probes = (("unknown-key", "Probe: assertions signed with an unknown key are refused"),)
    expected = _probed_on_purpose("token-request", "unknown-key", "JWT-005")


class UnsignedOrHmacRefused(ProbeRefused, kind="negative"):
    id = "SND-07"
    title = "Vendor as sending node: its authorization server refuses unsigned and HMAC assertions"
    description = ("The simulator asks for a pull token with unsigned assertions (`alg` none), then with HS256 "
                   "assertions keyed with its own public key (key confusion).")
    outcome = _TOKEN_REFUSAL + " Both times."
    rules = ("JWT-003",)
    spec = "SPEC §5.2"
    catches = ("accepts-alg-none", "accepts-alg-hmac")
    session_prefix = "alg"
    probes = (("alg-none", "Probe: unsigned assertions are refused"),
              ("alg-hmac", "Probe: HMAC assertions keyed with the public key are refused"))
    expected = _probed_on_purpose("token-request", "alg-none or alg-hmac", "JWT-003")


class ReplayedJtiRefused(ProbeRefused, kind="negative"):
    id = "SND-08"
    title = "Vendor as sending node: its authorization server refuses a replayed assertion"
    description = "The simulator sends the same token request twice: the second one's `jti` was used before."
    outcome = "The first request may be granted; the second is refused. " + _TOKEN_REFUSAL
    rules = ("JWT-024",)
    spec = "SPEC §5.2"
    catches = ("accepts-replayed-jti",)
    session_prefix = "replay"
    probes = (("replayed-jti", "Probe: a replayed assertion is refused"),)
    expected = _probed_on_purpose("token-request", "replayed-jti", "JWT-024")


class UnknownAuthorizationBaseRefused(ProbeRefused, kind="negative"):
    id = "SND-09"
    title = "Vendor as sending node: its authorization server refuses an authorization base it never issued"
    description = "The simulator asks for a pull token with a random `authorization_base`."
    outcome = "400 `invalid_grant`, and no token."
    rules = ("TOK-015",)
    spec = "SPEC §5.2, §5.3"
    catches = ("accepts-unknown-authorization-base",)
    session_prefix = "unknownbase"
    probes = (("unknown-authorization-base", "Probe: an unknown authorization base is refused"),)


class RefusesWithoutToken(ProbeRefused, kind="negative"):
    id = "SND-10"
    title = "Vendor as sending node: its FHIR server refuses a search without a token"
    description = "After a complete pull the simulator searches the vendor's FHIR server without a token."
    outcome = "401 with `WWW-Authenticate: Bearer error=\"invalid_token\"` and an OperationOutcome."
    rules = ("HTTP-006", "HTTP-004", "HTTP-003")
    spec = "SPEC §5.2, §5.4"
    catches = ("serves-without-token",)
    session_prefix = "notoken"
    probes = (("no-token", "Probe: a search without a token is refused"),)
    expected = (ExpectedFinding("to-vendor", "search", "BEAR-001", "the simulator probed without a token on purpose"),)


class RefusesUnknownToken(ProbeRefused, kind="negative"):
    id = "SND-11"
    title = "Vendor as sending node: its FHIR server refuses a token it never issued"
    description = ("After a complete pull the simulator searches with a well-formed bearer token the vendor never "
                   "issued.")
    outcome = "401 with `WWW-Authenticate: Bearer error=\"invalid_token\"` and an OperationOutcome."
    rules = ("HTTP-007", "HTTP-004", "HTTP-003")
    spec = "SPEC §5.2, §5.4"
    catches = ("accepts-unknown-token",)
    session_prefix = "badtoken"
    probes = (("unknown-token", "Probe: a search with an unknown token is refused"),)


class RefusesOtherPatient(ProbeRefused, kind="negative"):
    id = "SND-12"
    title = "Vendor as sending node: its FHIR server gives none of another patient's data"
    description = ("With this notification's token the simulator asks for another patient's data. SPEC §5.4 "
                   "wants 403 (or 404); another 4xx without the data is noted, not failed.")
    outcome = ("403 or 404 with an OperationOutcome, and no resource of the other patient (another 4xx without "
               "their data is noted, HTTP-011, not failed).")
    rules = ("HTTP-008", "HTTP-011", "HTTP-003")
    spec = "SPEC §5.4"
    catches = ("leaks-other-patient",)
    session_prefix = "otherpat"
    probes = (("other-patient", "Probe: another patient's data is refused"),)


class RefusesMalformedQuery(ProbeRefused, kind="negative"):
    id = "SND-13"
    title = "Vendor as sending node: its FHIR server answers a malformed search with 400"
    description = ("With this notification's token the simulator sends a query the vendor's own Task offered, "
                   "with a malformed parameter added.")
    outcome = "400 with an OperationOutcome."
    rules = ("HTTP-009", "HTTP-003")
    spec = "SPEC §5.4"
    catches = ("malformed-query-not-400",)
    session_prefix = "malformed"
    probes = (("malformed-query", "Probe: a malformed search is answered 400"),)


class HonoursAcceptXml(ProbeRefused, kind="negative"):
    id = "SND-14"
    title = "Vendor as sending node: its FHIR server honours Accept: application/fhir+xml or answers 406"
    description = "The simulator runs a query the vendor's Task offered with `Accept: application/fhir+xml` only."
    outcome = "The answer in FHIR XML (`application/fhir+xml`), or 406."
    rules = ("HTTP-005",)
    spec = "SPEC §3 step 5, §5.4"
    catches = ("ignores-accept-xml",)
    session_prefix = "acceptxml"
    probes = (("accept-xml", "Probe: Accept XML is honoured (or 406)"),)


class TokensRefusedAfterCancellation(VendorAsSender, kind="negative"):
    id = "SND-03"
    title = "Vendor as sending node: refuses pull tokens after it cancelled the notification"
    description = ("The vendor cancels its notification; the simulator then asks for a pull token with the "
                   "authorization base. The vendor's authorization server must answer 400 invalid_grant.")
    outcome = "The cancellation arrives as a conditional update; the token request afterwards gets `invalid_grant`."
    rules = ("NOTIF-033", "NOTIF-037", "TOKR-006")
    spec = "SPEC §3 step 8, §5.2"
    catches = ("grants-after-cancellation",)
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


# How the simulator's pull summary names a request the Workflow Task listed (simulator.outbound.puller.WORKFLOW_TASK;
# the scenarios read the simulator's records, they do not import it).
_LISTED_BY_WORKFLOW_TASK = "workflow-task"


class WorkflowTaskOffered(VendorAsSender, kind="happy"):
    id = "SND-15"
    title = "Vendor as sending node: offers a Workflow Task that lists the queries, read and followed"
    description = ("The vendor notifies with `get-workflow-task` = true and `basedOn` naming its Workflow Task "
                   "(BgZ referral Task), whose inputs list the queries like the Notification Task's. The simulator "
                   "reads it with its pull token, judges it and pulls the queries it lists (SPEC §3 step 1).")
    outcome = ("The Workflow Task served (200) with no error findings and at least one query, each of its queries "
               "answered 200, no error findings (a vendor that offers no Workflow Task, although asked, is skipped "
               "with a note: it is optional, so nothing failed, but nothing was shown either).")
    rules = ("NOTIF-028", "WF-001", "WF-011", "WF-012")
    spec = "SPEC §3 step 1, §4"
    session_prefix = "workflow-send"
    catches = ()  # SND-01 catches what its pull shows

    def steps(self) -> Steps:
        return (super().steps()
                .replace("vendor-notifies", StepDef("vendor-notifies-workflow", "Vendor notifies with "
                                                    "get-workflow-task", self.vendor_notifies_with_workflow_task))
                .insert_after("await-pull", StepDef("workflow-task-followed", "Simulator read the Workflow Task "
                                                                              "and pulled its queries",
                                                    self.workflow_task_followed)))

    def vendor_notifies_with_workflow_task(self, h: Harness) -> str:
        return self.vendor_notifies(h, workflow_task="true")

    def workflow_task_followed(self, h: Harness) -> str:
        summary = self._received(h)[0].pull_summary or {}
        read = summary.get("workflow_tasks") or []
        if not read:
            # Asked for one (workflow_task=true) and none came: a Workflow Task is optional (SPEC §3 step 1), so that is
            # no failure; but nothing was read or followed, and the step must not say it was.
            raise StepSkipped("the vendor offered no Workflow Task, although asked to (workflow_task=true: "
                              "get-workflow-task true and basedOn Task/<id>); it is optional (SPEC §3 step 1), so "
                              "nothing was read or followed")
        for workflow in read:
            if workflow.get("error"):
                raise StepFailed(f"the Workflow Task {workflow.get('path')} could not be read: {workflow['error']}")
            wrong = [f for f in workflow.get("findings", []) if f.get("severity") == "error"]
            if wrong:
                raise StepFailed(f"the Workflow Task {workflow.get('path')}: "
                                 + "; ".join(f"{f['rule']} at {f['location']}: {f['message']}" for f in wrong[:5]))
        listed = [r for r in summary.get("results", []) if _LISTED_BY_WORKFLOW_TASK in r.get("listed_in", [])]
        unanswered = [f"{r['path']} ({r.get('status')})" for r in listed if r.get("status") != 200]
        if not listed:
            raise StepFailed("the Workflow Task lists nothing the simulator could pull")
        if unanswered:
            raise StepFailed(f"of the {len(listed)} queries the Workflow Task lists, not answered 200: "
                             + ", ".join(unanswered[:5]))
        paths = ", ".join(str(w.get("path")) for w in read)
        return f"{paths} read, no error findings; its {len(listed)} queries pulled"


class ClientAndOrganisationChecked(ProbeRefused, kind="negative"):
    id = "SND-16"
    title = ("Vendor as sending node: its authorization server refuses an unregistered client, an assertion that "
             "lives too long, and a grant for another organisation")
    description = ("The simulator asks for a pull token three times, each with one thing wrong: a client id the vendor "
                   "never registered (signed with the registered key), assertions that live an hour (SPEC allows "
                   "300 s), and an authorization assertion whose `sub` is another URA than the Task's owner.")
    outcome = _TOKEN_REFUSAL + " Each time."
    rules = ("JWT-012", "JWT-017", "TOK-015")
    spec = "SPEC §5.2-§5.3"
    catches = ("accepts-unknown-client", "accepts-long-lived-assertion", "grants-other-organisation")
    session_prefix = "client"
    probes = (("unknown-client", "Probe: a client id never registered is refused"),
              ("long-lived-assertion", "Probe: assertions living longer than 300 s are refused"),
              ("other-ura", "Probe: a grant for another organisation than the Task's owner is refused"))
    expected = (_probed_on_purpose("token-request", "unknown-client", "JWT-012")
                + _probed_on_purpose("token-request", "long-lived-assertion", "JWT-017"))


# --- why a pull failed, as a sentence (SPEC §3 steps 4-6) ------------------------------------------------------------

_SHOWN_FAILURES = 5  # failed requests named one by one; the rest are counted
_SAID = 200  # characters kept of what an answer said


def describe_failed_pull(status: str, summary: Mapping[str, Any], *, fhir_base: str = "",
                         said: Callable[[str, object], str] = lambda target, status: "") -> str:
    """Why the simulator's pull did not end 'done', for a person: the reason it stopped or failed as a whole, and
    which queries, reads and documents failed, with their status and what the answer said.

    `summary` is the simulator's pull summary (simulator.outbound.puller.pull); `said(target, status)` what the
    recorded answer to a request said ("" when none was recorded); `fhir_base`: the vendor's, left off the documents'
    URLs so they read like the queries.
    """
    parts = [f"the pull stopped: {summary['stopped']}"] if summary.get("stopped") else []
    if summary.get("error"):
        parts.append(str(summary["error"]))
    results, documents = list(summary.get("results") or []), list(summary.get("documents") or [])
    failed = [_failed_result(r, said) for r in results if r.get("status") != 200]
    failed += [_failed_document(d, fhir_base, said) for d in documents if d.get("status") != 200 or not d.get("pdf")]
    if failed:
        shown = "; ".join(failed[:_SHOWN_FAILURES])
        more = f"; and {len(failed) - _SHOWN_FAILURES} more" if len(failed) > _SHOWN_FAILURES else ""
        parts.append(f"{len(failed)} of {len(results) + len(documents)} requests failed: {shown}{more}")
    if not parts:
        parts.append("no request failed and no reason was recorded (an error inside the simulator: its log says "
                     "more)")
    return f"pull {status}: " + "; ".join(parts)


def _failed_result(result: Mapping[str, Any], said: Callable[[str, object], str]) -> str:
    path, status = str(result.get("path")), result.get("status")
    if status is None:
        return f"{path} was not requested ({result.get('error') or 'no reason recorded'})"
    why = said(path, status) or result.get("error")
    return f"{path} answered {status}" + (f" ({why})" if why else "")


def _failed_document(document: Mapping[str, Any], fhir_base: str, said: Callable[[str, object], str]) -> str:
    url, status = str(document.get("url")), document.get("status")
    shown = url[len(fhir_base.rstrip("/")) + 1:] if fhir_base and url.startswith(fhir_base.rstrip("/") + "/") else url
    if status == 200:
        return (f"{shown} answered 200 but not with a PDF (Content-Type {document.get('content_type') or 'none'}, "
                f"{document.get('bytes', 0)} bytes)")
    why = said(url, status)
    return f"{shown} answered {status}" + (f" ({why})" if why else "")


def answers_in(exchanges: list[Exchange]) -> Callable[[str, object], str]:
    """`said` for describe_failed_pull: what the latest recorded GET of a target with that status answered."""
    def said(target: str, status: object) -> str:
        for ex in reversed(exchanges):
            if ex.method == "GET" and ex.status == status and same_request(ex.url, target):
                return answer_said(ex)
        return ""

    return said


def answer_said(ex: Exchange) -> str:
    """What an error answer says, in one line: an OperationOutcome's diagnostics (else its issue codes), an OAuth
    error and its description, else the body's text."""
    try:
        body = json.loads(ex.response_body or "null")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = [i for i in body.get("issue") or [] if isinstance(i, dict)]
        texts = (i.get("diagnostics") or dig(i, "details", "text") or i.get("code") for i in issues)
        text = "; ".join(str(t) for t in texts if t)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        text = ": ".join(str(v) for v in (body["error"], body.get("error_description")) if v)
    else:
        text = ex.response_body or ""
    text = " ".join(text.split())
    return text if len(text) <= _SAID else text[:_SAID] + "…"
