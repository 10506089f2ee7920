"""The BgZ referral Workflow Task (SPEC §3 step 1): the optional Task a Notification Task's basedOn points to.

Profile http://nictiz.nl/fhir/StructureDefinition/BgZ-verwijzing-Task, code SNOMED 3457005 (patient referral).
"""
from __future__ import annotations

from validators import spec
from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.json_walk import dig
from validators.rules.identifiers import (
    check_bsn,
    check_identifier,
    check_identifier_system,
    check_ura,
    is_placeholder_system,
)
from validators.rules.notification import check_task_inputs, parse_datetime_tz, task_type_findings

_REF = "SPEC §3 step 1"


NOT_TASK = rule("WF-001", "error", "Workflow Task is not a FHIR Task resource", _REF)
STATUS = rule("WF-004", "error", "status missing or not a FHIR STU3 Task status", _REF)
INTENT = rule("WF-005", "error", "intent missing or not a FHIR STU3 request intent", _REF)
AUTHORED_ON = rule("WF-009", "error", "authoredOn missing or not a dateTime with timezone", _REF)
PATIENT_MISMATCH = rule("WF-010", "error", "Workflow Task patient differs from the Notification Task's", "SPEC §3, §4")


@emits(NOT_TASK, STATUS, INTENT, AUTHORED_ON, PATIENT_MISMATCH)
def check_workflow_task(task: object, *, notification: dict | None = None) -> list[Finding]:
    """The Workflow Task on its own; with the `notification` that points to it, also the shared patient."""
    findings = task_type_findings(task, NOT_TASK)
    if not isinstance(task, dict):
        return findings
    _check_profile(task, findings)
    _check_code(task, findings)
    status, intent = task.get("status"), task.get("intent")
    if not isinstance(status, str) or status not in spec.TASK_STATUSES:
        findings.append(STATUS.finding(f"saw status {show(status)}; expected one of {', '.join(spec.TASK_STATUSES)}",
                                       "Task.status"))
    if not isinstance(intent, str) or intent not in spec.TASK_INTENTS:
        findings.append(INTENT.finding(f"saw intent {show(intent)}; expected one of {', '.join(spec.TASK_INTENTS)}",
                                       "Task.intent"))
    _check_for(task, findings)
    _check_organizations(task, findings)
    authored = task.get("authoredOn")
    if parse_datetime_tz(authored) is None:
        findings.append(AUTHORED_ON.finding(f"saw {show(authored)}; expected a dateTime with time and timezone",
                                            "Task.authoredOn"))
    _check_inputs(task, findings)
    if isinstance(notification, dict):
        mine, theirs = dig(task, "for", "identifier", "value"), dig(notification, "for", "identifier", "value")
        if mine != theirs:
            findings.append(PATIENT_MISMATCH.finding(f"Workflow Task for {show(mine)}; the Notification Task is for "
                                                     f"{show(theirs)}", "Task.for.identifier.value"))
    return findings


PROFILE = rule("WF-002", "error", "meta.profile does not claim the BgZ-verwijzing-Task profile", _REF)


@emits(PROFILE)
def _check_profile(task: dict, findings: list[Finding]) -> None:
    profiles = dig(task, "meta", "profile")
    profiles = profiles if isinstance(profiles, list) else []
    # A canonical may carry a version: `...|1.0.0`.
    if any(isinstance(p, str) and p.split("|", 1)[0] == spec.WORKFLOW_TASK_PROFILE for p in profiles):
        return
    findings.append(PROFILE.finding(f"saw meta.profile {show(profiles, 200)}; expected {spec.WORKFLOW_TASK_PROFILE!r}",
                                    "Task.meta.profile"))


CODE = rule("WF-003", "error", "code is not SNOMED 3457005 (patient referral)", _REF)


@emits(CODE)
def _check_code(task: dict, findings: list[Finding]) -> None:
    codings = dig(task, "code", "coding")
    codings = [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []
    wanted = (spec.WORKFLOW_TASK_CODE["system"], spec.WORKFLOW_TASK_CODE["code"])
    if any((c.get("system"), c.get("code")) == wanted for c in codings):
        return
    seen = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings) or "no coding"
    findings.append(CODE.finding(f"saw {show(seen, 200)}; expected {wanted[0]}|{wanted[1]}", "Task.code.coding"))


FOR = rule("WF-006", "error", "for.identifier (the patient's BSN) missing", _REF)


@emits(FOR)
def _check_for(task: dict, findings: list[Finding]) -> None:
    identifier = dig(task, "for", "identifier")
    if not isinstance(identifier, dict):
        findings.append(FOR.finding(f"saw for {show(task.get('for'))}; expected for.identifier with the patient's BSN",
                                    "Task.for.identifier"))
        return
    findings.extend(check_identifier_system(identifier.get("system"), spec.BSN_SYSTEM, "Task.for.identifier.system"))
    findings.extend(check_bsn(identifier.get("value"), "Task.for.identifier.value"))


REQUESTER = rule("WF-007", "error", "requester names no organization by URA", _REF)
OWNER = rule("WF-008", "error", "owner.identifier (receiving organization, URA) missing", _REF)


@emits(REQUESTER, OWNER)
def _check_organizations(task: dict, findings: list[Finding]) -> None:
    # The referring organization may be the requester's agent or its onBehalfOf; either names it by URA.
    candidates = [(f"Task.requester.{part}.identifier", dig(task, "requester", part, "identifier"))
                  for part in ("agent", "onBehalfOf")]
    ura_identifiers = [(path, i) for path, i in candidates
                       if isinstance(i, dict) and i.get("system") == spec.URA_SYSTEM]
    if ura_identifiers:
        for path, identifier in ura_identifiers:
            findings.extend(check_ura(identifier.get("value"), f"{path}.value"))
    else:
        for path, identifier in candidates:  # a template's system instead of the URA system is its own defect
            if isinstance(identifier, dict) and is_placeholder_system(identifier.get("system")):
                findings.extend(check_identifier(identifier, path))
        seen = ", ".join(f"{path}.system={show(dig(i, 'system'))}" for path, i in candidates if i is not None)
        findings.append(REQUESTER.finding(f"saw {seen or 'no requester identifier'}; expected requester.agent or "
                                          f"requester.onBehalfOf identifier with system {spec.URA_SYSTEM!r}",
                                          "Task.requester"))
    owner = dig(task, "owner", "identifier")
    if not isinstance(owner, dict):
        findings.append(OWNER.finding(f"saw owner {show(task.get('owner'))}; expected an Identifier with system "
                                      f"{spec.URA_SYSTEM!r} and a URA", "Task.owner.identifier"))
        return
    findings.extend(check_identifier_system(owner.get("system"), spec.URA_SYSTEM, "Task.owner.identifier.system"))
    findings.extend(check_ura(owner.get("value"), "Task.owner.identifier.value"))


NOTHING_TO_PULL = rule("WF-011", "error", "Workflow Task lists nothing to pull (no query or read input)", _REF)
INPUT = rule("WF-012", "error", "Workflow Task input is not a well-formed query or read input", _REF)


@emits(NOTHING_TO_PULL, INPUT)
def _check_inputs(task: dict, findings: list[Finding]) -> None:
    """The inputs a receiver told get-workflow-task pulls: queries and reads, listed as in a Notification Task."""
    shared: list[Finding] = []
    checked = check_task_inputs(task, shared)
    # The Notification Task's input checks, reported under this rule: a defect in the Workflow Task is told apart
    # from one in the Notification Task (and suppressed apart); the evidence names the check that saw it.
    findings.extend(INPUT.finding(f"{f.message} (the check of {f.rule})", f.location) if f.severity == "error"
                    else f for f in shared)
    for item in checked:
        if item.kind is not None and not item.lists_a_pull:
            # Only the kind is named: an authorization base here would be a credential handed to the wrong place.
            findings.append(INPUT.finding(f"saw an input of kind {item.kind!r}; a Workflow Task lists queries and "
                                          "reads only (that belongs in the Notification Task)",
                                          f"{item.location}.type"))
    if not any(item.lists_a_pull for item in checked):
        given = task.get("input")
        seen = f"{len(given)} input(s), none a query or read" if isinstance(given, list) and given else "no input"
        findings.append(NOTHING_TO_PULL.finding(f"saw {seen}; a receiver told get-workflow-task reads this Task to "
                                                "learn what to pull (valueString 'Type?params' or valueReference "
                                                "'Type/id')", "Task.input"))
