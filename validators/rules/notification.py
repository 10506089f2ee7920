"""The Notification Task (FHIR STU3 Task) of SPEC §4, as sent for a new, updated or cancelled data set."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from validators import spec
from validators.evidence import show
from validators.findings import Finding, Rule, emits, rule
from validators.json_walk import dig
from validators.query import read_relative_query
from validators.rules.identifiers import check_bsn, check_identifier, check_identifier_system, check_ura
from validators.rules.structure import is_resource_type
from validators.task_reader import authorization_bases, identifier_pairs

_REF = "SPEC §4"
_CANCEL_REF = "SPEC §3 step 8"

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_URN_UUID = re.compile("urn:uuid:" + _UUID)
_DATETIME_TZ = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
_TASK_REF = re.compile("Task/" + _FHIR_ID)
_RELATIVE_REF = re.compile("[A-Z][A-Za-z]+/" + _FHIR_ID)
# `Type`, `Type?params`, `Type/$operation?params` (e.g. Observation/$lastn)
_RELATIVE_QUERY = re.compile(r"[A-Z][A-Za-z]+(/\$[A-Za-z][A-Za-z0-9-]*)?(\?[^\s#]*)?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# input kinds, keyed by TaskParameter code; the 1.4 slice names map to the kind they stand for
_PARAMETER_KINDS = {
    spec.INPUT_AUTHORIZATION_BASE: spec.INPUT_AUTHORIZATION_BASE,
    spec.INPUT_GET_WORKFLOW_TASK: spec.INPUT_GET_WORKFLOW_TASK,
    spec.INPUT_READ_RESOURCE: spec.INPUT_READ_RESOURCE,
    spec.INPUT_SEARCH_RESOURCE: spec.INPUT_SEARCH_RESOURCE,
}
_PARAMETER_KINDS_14 = {
    spec.INPUT_READ_RESOURCE_14: spec.INPUT_READ_RESOURCE,
    spec.INPUT_SEARCH_RESOURCE_14: spec.INPUT_SEARCH_RESOURCE,
}
_SECTION = "section"  # the kind of an input typed by a BgZ section code (SPEC §6) instead of a TaskParameter code
_QUERY_KINDS = frozenset({spec.INPUT_READ_RESOURCE, spec.INPUT_SEARCH_RESOURCE, _SECTION})
_SECTION_CODES = frozenset((q.type_system, q.type_code) for q in (*spec.BGZ_QUERIES, spec.DOCUMENTS_QUERY))


def parse_datetime_tz(value: object) -> datetime | None:
    """A FHIR dateTime with time and timezone as an aware datetime; None for anything else."""
    if not isinstance(value, str) or not _DATETIME_TZ.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13
        return None


def task_type_findings(task: object, not_task: Rule) -> list[Finding]:
    """What is wrong with `task` being a FHIR Task at all; shared by the Task checks of each kind."""
    if not isinstance(task, dict):
        return [not_task.finding(f"saw JSON {type(task).__name__}; expected a Task resource object", "Task")]
    if task.get("resourceType") != "Task":
        return [not_task.finding(f"saw resourceType {show(task.get('resourceType'))}; expected 'Task'",
                                 "Task.resourceType")]
    return []


NOT_TASK = rule("NOTIF-001", "error", "not a FHIR Task resource", _REF)


@emits(NOT_TASK)
def check_notification_task(task: object, *, now: datetime | None = None) -> list[Finding]:
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    findings = task_type_findings(task, NOT_TASK)
    if not isinstance(task, dict):
        return findings
    _check_identifier(task, findings)
    _check_group_identifier(task, findings)
    _check_status_intent_code(task, findings)
    _check_for(task, findings)
    _check_dates(task, now, findings)
    _check_parties(task, findings)
    _check_based_on(task, findings)
    _check_inputs(task, findings)
    return findings


IDENTIFIER_OBJECT = rule("NOTIF-002", "error", "identifier is a JSON object instead of an array (known defect)", _REF)
IDENTIFIER_COUNT = rule("NOTIF-003", "error", "not exactly one identifier", _REF)
IDENTIFIER_SYSTEM = rule("NOTIF-004", "error", "identifier system is not urn:ietf:rfc:3986", _REF)
IDENTIFIER_VALUE = rule("NOTIF-005", "error", "identifier value is not urn:uuid:<uuid>", _REF)


@emits(IDENTIFIER_OBJECT, IDENTIFIER_COUNT, IDENTIFIER_SYSTEM, IDENTIFIER_VALUE)
def _check_identifier(task: dict, findings: list[Finding]) -> None:
    identifier = task.get("identifier")
    if isinstance(identifier, dict):
        findings.append(IDENTIFIER_OBJECT.finding("identifier is a JSON object; STU3 Task.identifier is an array "
                                                  "([{...}])", "Task.identifier"))
        entries = [("Task.identifier", identifier)]
    elif isinstance(identifier, list):
        entries = [(f"Task.identifier[{i}]", entry) for i, entry in enumerate(identifier)]
    else:
        entries = []
    if len(entries) != 1:
        findings.append(IDENTIFIER_COUNT.finding(f"saw {len(entries)} identifiers; expected exactly one",
                                                 "Task.identifier"))
    for location, entry in entries:
        system, value = dig(entry, "system"), dig(entry, "value")
        if system != spec.RFC3986:
            findings.append(IDENTIFIER_SYSTEM.finding(f"saw system {show(system)}; expected {spec.RFC3986!r}",
                                                      f"{location}.system"))
        if not isinstance(value, str) or not _URN_UUID.fullmatch(value):
            findings.append(IDENTIFIER_VALUE.finding(f"saw value {show(value)}; expected 'urn:uuid:' and a UUID",
                                                     f"{location}.value"))


GROUP_MISSING = rule("NOTIF-006", "error", "groupIdentifier missing", _REF)
GROUP_VALUE = rule("NOTIF-007", "error", "groupIdentifier value is not urn:uuid:<uuid> (known defect)", _REF)


@emits(GROUP_MISSING, GROUP_VALUE)
def _check_group_identifier(task: dict, findings: list[Finding]) -> None:
    group = task.get("groupIdentifier")
    if not isinstance(group, dict):
        findings.append(GROUP_MISSING.finding(f"saw groupIdentifier {show(group)}; expected an Identifier with a "
                                              "urn:uuid value shared by all updates of the data set",
                                              "Task.groupIdentifier"))
        return
    value = group.get("value")
    if not isinstance(value, str) or not _URN_UUID.fullmatch(value):
        findings.append(GROUP_VALUE.finding(f"saw value {show(value)}; expected 'urn:uuid:' and a UUID",
                                            "Task.groupIdentifier.value"))


STATUS = rule("NOTIF-008", "error", "status is neither requested nor cancelled", _REF)
INTENT = rule("NOTIF-009", "error", "intent is not proposal", _REF)
CODE = rule("NOTIF-010", "error", "code is not TaskCode pull-notification", _REF)
CODE_PLURAL = rule("NOTIF-011", "error", "code uses the plural TaskCodes system (known defect)", _REF)


@emits(STATUS, INTENT, CODE, CODE_PLURAL)
def _check_status_intent_code(task: dict, findings: list[Finding]) -> None:
    status = task.get("status")
    if status not in (spec.TASK_STATUS_REQUESTED, spec.TASK_STATUS_CANCELLED):
        findings.append(STATUS.finding(f"saw status {show(status)}; expected 'requested' or 'cancelled'",
                                       "Task.status"))
    intent = task.get("intent")
    if intent != spec.TASK_INTENT:
        findings.append(INTENT.finding(f"saw intent {show(intent)}; expected {spec.TASK_INTENT!r}", "Task.intent"))
    codings = dig(task, "code", "coding")
    codings = codings if isinstance(codings, list) else []
    pairs = [(dig(c, "system"), dig(c, "code")) for c in codings]
    if (spec.TASK_CODE_SYSTEM, spec.TASK_CODE_PULL_NOTIFICATION) in pairs:
        return
    for index, (system, _code) in enumerate(pairs):
        if system == spec.TASK_CODE_SYSTEM + "s":
            findings.append(CODE_PLURAL.finding(f"saw system {system!r}; expected {spec.TASK_CODE_SYSTEM!r}",
                                                f"Task.code.coding[{index}].system"))
            return
    seen = ", ".join(f"{s}|{c}" for s, c in pairs) or "no coding"
    findings.append(CODE.finding(f"saw {show(seen, 200)}; expected "
                                 f"{spec.TASK_CODE_SYSTEM}|{spec.TASK_CODE_PULL_NOTIFICATION}", "Task.code.coding"))


FOR_MISSING = rule("NOTIF-012", "error", "for.identifier (the patient's BSN) missing", _REF)


@emits(FOR_MISSING)
def _check_for(task: dict, findings: list[Finding]) -> None:
    identifier = dig(task, "for", "identifier")
    if not isinstance(identifier, dict):
        findings.append(FOR_MISSING.finding(f"saw for {show(task.get('for'))}; expected for.identifier with the "
                                            "patient's BSN", "Task.for.identifier"))
        return
    findings.extend(check_identifier_system(identifier.get("system"), spec.BSN_SYSTEM, "Task.for.identifier.system"))
    findings.extend(check_bsn(identifier.get("value"), "Task.for.identifier.value"))


AUTHORED_ON = rule("NOTIF-013", "error", "authoredOn missing or not a dateTime with timezone", _REF)
END_FORMAT = rule("NOTIF-014", "error", "restriction.period.end missing or not a dateTime with timezone", _REF)
END_BEFORE_AUTHORED = rule("NOTIF-015", "error", "restriction.period.end is not after authoredOn", _REF)
END_PAST = rule("NOTIF-016", "error", "restriction.period.end of a requested notification is not in the future",
                _REF)


@emits(AUTHORED_ON, END_FORMAT, END_BEFORE_AUTHORED, END_PAST)
def _check_dates(task: dict, now: datetime, findings: list[Finding]) -> None:
    raw_authored, raw_end = task.get("authoredOn"), dig(task, "restriction", "period", "end")
    authored, end = parse_datetime_tz(raw_authored), parse_datetime_tz(raw_end)
    expected = "expected a dateTime with time and timezone, e.g. 2024-05-01T10:00:00+02:00"
    if authored is None:
        findings.append(AUTHORED_ON.finding(f"saw {show(raw_authored)}; {expected}", "Task.authoredOn"))
    if end is None:
        findings.append(END_FORMAT.finding(f"saw {show(raw_end)}; {expected}", "Task.restriction.period.end"))
        return
    if authored is not None and end <= authored:
        findings.append(END_BEFORE_AUTHORED.finding(f"end {raw_end} is not after authoredOn {raw_authored}",
                                                    "Task.restriction.period.end"))
    # A cancellation may be sent after the period ended; only a live notification must still be available.
    if task.get("status") == spec.TASK_STATUS_REQUESTED and end <= now:
        findings.append(END_PAST.finding(f"end {raw_end} is not after now ({now.isoformat(timespec='seconds')})",
                                         "Task.restriction.period.end"))


AGENT = rule("NOTIF-017", "error", "requester.agent.identifier lacks system or value", _REF)
ON_BEHALF_OF = rule("NOTIF-018", "error", "requester.onBehalfOf.identifier (sending organization) missing", _REF)
OWNER = rule("NOTIF-019", "error", "owner.identifier (receiving organization) missing", _REF)


@emits(AGENT, ON_BEHALF_OF, OWNER)
def _check_parties(task: dict, findings: list[Finding]) -> None:
    agent = dig(task, "requester", "agent", "identifier")
    system, value = dig(agent, "system"), dig(agent, "value")
    if not (isinstance(system, str) and system and isinstance(value, str) and value):
        findings.append(AGENT.finding(f"saw system {show(system)} and value {show(value)}; expected both, "
                                      "identifying the sending system", "Task.requester.agent.identifier"))
    else:  # e.g. an UZI system number, or a placeholder system
        findings.extend(check_identifier(agent, "Task.requester.agent.identifier"))
    for path, missing in (("requester.onBehalfOf.identifier", ON_BEHALF_OF), ("owner.identifier", OWNER)):
        identifier = dig(task, *path.split("."))
        location = f"Task.{path}"
        if not isinstance(identifier, dict):
            findings.append(missing.finding(f"saw {show(identifier)}; expected an Identifier with system "
                                            f"{spec.URA_SYSTEM!r} and a URA", location))
            continue
        findings.extend(check_identifier_system(identifier.get("system"), spec.URA_SYSTEM, f"{location}.system"))
        findings.extend(check_ura(identifier.get("value"), f"{location}.value"))


BASED_ON = rule("NOTIF-020", "error", "basedOn is not a relative Task/<id> reference", _REF)


@emits(BASED_ON)
def _check_based_on(task: dict, findings: list[Finding]) -> None:
    based_on = task.get("basedOn")
    if based_on is None:
        return
    entries = based_on if isinstance(based_on, list) else [based_on]
    for index, entry in enumerate(entries):
        reference = dig(entry, "reference")
        if isinstance(reference, str) and _TASK_REF.fullmatch(reference):
            continue
        hint = " (no leading slash)" if isinstance(reference, str) and reference.startswith("/") else ""
        findings.append(BASED_ON.finding(f"saw reference {show(reference)}; expected 'Task/<id>'{hint}",
                                         f"Task.basedOn[{index}].reference"))


AUTH_BASE_COUNT = rule("NOTIF-024", "error", "not exactly one authorization-base input", _REF)
WORKFLOW_BASED_ON = rule("NOTIF-028", "error", "get-workflow-task is true but basedOn is absent", _REF)


@emits(AUTH_BASE_COUNT, WORKFLOW_BASED_ON)
def _check_inputs(task: dict, findings: list[Finding]) -> None:
    checked = check_task_inputs(task, findings)
    base_count = sum(c.kind == spec.INPUT_AUTHORIZATION_BASE for c in checked)
    # Only a true value asks for the Workflow Task: one given only as extensions (data-absent-reason) does not.
    wants_workflow_task = any(c.kind == spec.INPUT_GET_WORKFLOW_TASK and c.item.get("valueBoolean") is True
                              for c in checked)
    if base_count != 1:
        findings.append(AUTH_BASE_COUNT.finding(f"saw {base_count} authorization-base inputs; expected "
                                                "exactly one", "Task.input"))
    if wants_workflow_task and not task.get("basedOn"):
        findings.append(WORKFLOW_BASED_ON.finding("get-workflow-task is true but there is no basedOn reference to "
                                                  "the Workflow Task", "Task.basedOn"))


@dataclass(frozen=True)
class CheckedInput:
    """One input object of a Task, after its type and value[x] were checked."""

    location: str
    kind: str | None  # a TaskParameter code, _SECTION (a BgZ section code), None when the type names nothing known
    item: dict  # the input object itself

    @property
    def lists_a_pull(self) -> bool:
        """Whether it offers a query or a read (what get-workflow-task and a pull follow)."""
        return self.kind in _QUERY_KINDS


INPUT_TYPE = rule("NOTIF-021", "error", "input is not a list of parameters with type.coding", _REF)
VALUE_KEY = rule("NOTIF-026", "error", "input has 'value' instead of a typed value[x] such as valueString "
                 "(known defect)", _REF)


@emits(INPUT_TYPE, VALUE_KEY)
def check_task_inputs(task: dict, findings: list[Finding]) -> list[CheckedInput]:
    """Each of Task.input: its type, and the value[x] its kind needs (SPEC §4 inputs table).

    Shared by the Notification Task and the Workflow Task, whose inputs list the queries alike (SPEC §3 step 1).
    """
    inputs = task.get("input", [])
    if not isinstance(inputs, list):
        findings.append(INPUT_TYPE.finding(f"input is JSON {type(inputs).__name__}; expected an array", "Task.input"))
        inputs = []
    checked = []
    for index, item in enumerate(inputs):
        location = f"Task.input[{index}]"
        if not isinstance(item, dict):
            findings.append(INPUT_TYPE.finding(f"saw JSON {type(item).__name__}; expected a parameter object",
                                               location))
            continue
        coded = dig(item, "type", "coding")
        if isinstance(coded, list) and coded:
            kind = _input_kind(coded, location, findings)
        else:
            findings.append(INPUT_TYPE.finding(f"saw type {show(item.get('type'))}; expected type.coding",
                                               f"{location}.type.coding"))
            kind = None
        checked.append(CheckedInput(location, kind, item))
        if "value" in item:
            # Only the shape is shown: the value may be an authorization base, which works like a credential.
            findings.append(VALUE_KEY.finding(f"saw key 'value' ({_shape(item['value'])}); expected a typed key "
                                              "such as valueString", f"{location}.value"))
            if not any(key.startswith("value") and key != "value" for key in item):
                continue  # the value is already reported; judging its absence again would repeat the finding
        _check_input_value(kind, item, location, findings)
    return checked


AUTH_BASE_VALUE = rule("NOTIF-025", "error", "authorization-base input lacks a non-empty valueString", _REF)
WORKFLOW_VALUE = rule("NOTIF-027", "error", "get-workflow-task input lacks valueBoolean", _REF)
SECTION_VALUE = rule("NOTIF-032", "error", "section-code input has neither valueString query nor valueReference",
                     _REF)


@emits(AUTH_BASE_VALUE, WORKFLOW_VALUE, SECTION_VALUE)
def _check_input_value(kind: str | None, item: dict, location: str, findings: list[Finding]) -> None:
    """The value[x] each kind of input needs (SPEC §4 inputs table)."""
    if kind == spec.INPUT_AUTHORIZATION_BASE:
        value = item.get("valueString")
        if not isinstance(value, str) or not value.strip():
            findings.append(AUTH_BASE_VALUE.finding(f"saw valueString {show(value)}{_value_keys(item)}; expected "
                                                    "the opaque authorization base", f"{location}.valueString"))
    elif kind == spec.INPUT_GET_WORKFLOW_TASK:
        value = item.get("valueBoolean")
        # A primitive with only extensions (FHIR ele-1, e.g. data-absent-reason) is present: it lacks nothing.
        if not isinstance(value, bool) and not (value is None and _only_extensions(item, "valueBoolean")):
            findings.append(WORKFLOW_VALUE.finding(f"saw valueBoolean {show(value)}{_value_keys(item)}; expected "
                                                   "true or false", f"{location}.valueBoolean"))
    elif kind == spec.INPUT_READ_RESOURCE:
        _check_reference(item.get("valueReference"), f"{location}.valueReference.reference", findings)
    elif kind == spec.INPUT_SEARCH_RESOURCE:
        _check_query(item.get("valueString"), f"{location}.valueString", findings)
    elif kind == _SECTION:
        if "valueString" in item:
            _check_query(item["valueString"], f"{location}.valueString", findings)
        elif "valueReference" in item:
            _check_reference(item["valueReference"], f"{location}.valueReference.reference", findings)
        else:
            findings.append(SECTION_VALUE.finding(f"saw keys {sorted(item)}; expected valueString (relative query) "
                                                  "or valueReference", location))


def _shape(value: object) -> str:
    return f"a string of {len(value)} characters" if isinstance(value, str) else f"JSON {type(value).__name__}"


def _only_extensions(item: dict, key: str) -> bool:
    """Whether primitive `key` is given as extensions alone (`_key` in FHIR JSON, an element without @value in XML)."""
    extensions = dig(item, "_" + key, "extension")
    return isinstance(extensions, list) and bool(extensions)


def _value_keys(item: dict) -> str:
    """Evidence of which value[x] an input carries when the expected one is absent."""
    keys = sorted(key for key in item if key.lstrip("_").startswith("value"))
    return f" (value keys present: {', '.join(keys)})" if keys else " (no value[x])"


INPUT_CODE_14 = rule("NOTIF-022", "warning", "input code is a Twiin 1.4 slice name (variant)", _REF)
INPUT_CODE_UNKNOWN = rule("NOTIF-023", "error", "input type is neither a TaskParameter code nor a BgZ section code",
                          _REF)


@emits(INPUT_CODE_14, INPUT_CODE_UNKNOWN)
def _input_kind(codings: list, location: str, findings: list[Finding]) -> str | None:
    """What the input is for, from its (non-empty) type.coding; reports unknown and variant codes."""
    for index, coding in enumerate(codings):
        system, code = dig(coding, "system"), dig(coding, "code")
        if not isinstance(system, str) or not isinstance(code, str):  # keeps unhashable JSON out of the lookups
            continue
        if system == spec.TASK_PARAMETER_SYSTEM and code in _PARAMETER_KINDS:
            return _PARAMETER_KINDS[code]
        if system == spec.TASK_PARAMETER_SYSTEM and code in _PARAMETER_KINDS_14:
            findings.append(INPUT_CODE_14.finding(f"saw code {code!r} (Twiin 1.4 slice name); the TaskParameter "
                                                  f"code is {_PARAMETER_KINDS_14[code]!r}",
                                                  f"{location}.type.coding[{index}].code"))
            return _PARAMETER_KINDS_14[code]
        if (system, code) in _SECTION_CODES:
            return _SECTION
    seen = ", ".join(f"{dig(c, 'system')}|{dig(c, 'code')}" for c in codings)
    findings.append(INPUT_CODE_UNKNOWN.finding(f"saw {show(seen, 200)}; expected a {spec.TASK_PARAMETER_SYSTEM} "
                                               "code or a LOINC/SNOMED section code of the BgZ table",
                                               f"{location}.type.coding"))
    return None


READ_REFERENCE = rule("NOTIF-029", "error", "read input valueReference is not a relative Type/id reference", _REF)


@emits(READ_REFERENCE)
def _check_reference(value: object, location: str, findings: list[Finding]) -> None:
    reference = dig(value, "reference")
    if isinstance(reference, str) and _RELATIVE_REF.fullmatch(reference):
        _check_resource_type(reference.split("/", 1)[0], f"reference {show(reference, 100)}", location, findings)
        return
    findings.append(READ_REFERENCE.finding(f"saw reference {show(reference, 100)}; expected a relative 'Type/id'",
                                           location))


SEARCH_QUERY = rule("NOTIF-030", "error", "search input valueString is not a relative query Type?params", _REF)
PERCENT_ESCAPE = rule("NOTIF-031", "error", "query has a broken percent-escape", _REF)


@emits(SEARCH_QUERY, PERCENT_ESCAPE)
def _check_query(value: object, location: str, findings: list[Finding]) -> None:
    if not isinstance(value, str) or not value:
        findings.append(SEARCH_QUERY.finding(f"saw valueString {show(value)}; expected a relative query "
                                             "'Type?params'", location))
        return
    if _SCHEME.match(value):
        findings.append(SEARCH_QUERY.finding(f"saw absolute URL {show(value, 100)}; expected a query relative to "
                                             "the sender's FHIR base, e.g. 'Condition'", location))
    elif not _RELATIVE_QUERY.fullmatch(value):
        hint = " (no leading slash)" if value.startswith("/") else ""
        findings.append(SEARCH_QUERY.finding(f"saw {show(value, 100)}; expected 'Type', 'Type?params' or "
                                             f"'Type/$operation?params'{hint}", location))
    else:
        _check_resource_type(read_relative_query(value).resource_type, f"query {show(value, 100)}", location,
                             findings)
    broken = [f"{value[m.start():m.start() + 3]!r} at {m.start()}" for m in _BROKEN_ESCAPE.finditer(value)]
    if broken:
        findings.append(PERCENT_ESCAPE.finding(f"broken percent-escape {', '.join(broken[:5])}; '%' must be "
                                               "followed by two hex digits (e.g. %7C)", location))


QUERY_TYPE = rule("NOTIF-039", "error", "query or read input names a resource type FHIR STU3 does not define",
                  "SPEC §4, §6.4")


@emits(QUERY_TYPE)
def _check_resource_type(name: str, what: str, location: str, findings: list[Finding]) -> None:
    """The type of a well-formed query or reference (the form itself is NOTIF-029/NOTIF-030)."""
    if is_resource_type(name):
        return
    hint = f" (did you mean {name[:-1]!r}?)" if name.endswith("s") and is_resource_type(name[:-1]) else ""
    findings.append(QUERY_TYPE.finding(f"{what} names resource type {name!r}, which FHIR STU3 does not "
                                       f"define{hint}", location))


# --- cancellation (SPEC §3 step 8) -----------------------------------------------------------------

def _pairs_text(pairs: list[tuple[Any, Any]]) -> str:
    return show(", ".join(f"{s}|{v}" for s, v in pairs) or "none", 200)


CANCEL_STATUS = rule("NOTIF-033", "error", "cancellation Task status is not cancelled", _CANCEL_REF)
CANCEL_IDENTIFIER = rule("NOTIF-034", "error", "cancellation identifier differs from the original notification's",
                         _CANCEL_REF)
CANCEL_GROUP = rule("NOTIF-035", "error", "cancellation groupIdentifier differs from the original notification's",
                    _CANCEL_REF)
CANCEL_AUTH_BASE = rule("NOTIF-036", "error", "cancellation authorization-base differs from the original "
                        "notification's", _CANCEL_REF)


@emits(CANCEL_STATUS, CANCEL_IDENTIFIER, CANCEL_GROUP, CANCEL_AUTH_BASE)
def check_cancellation_task(task: object, *, original: dict | None = None,
                            now: datetime | None = None) -> list[Finding]:
    """A cancellation is the Notification Task sent again with status cancelled (SPEC §3 step 8).

    Every Notification Task rule applies (a period that has ended is fine for a cancellation); with the
    `original` notification, identifier, groupIdentifier and authorization base must be the same.
    """
    findings = check_notification_task(task, now=now)
    if not isinstance(task, dict):
        return findings
    status = task.get("status")
    if status != spec.TASK_STATUS_CANCELLED:
        # The cancellation rule says it more precisely than "neither requested nor cancelled".
        findings = [f for f in findings if f.rule != STATUS.id]
        findings.append(CANCEL_STATUS.finding(f"saw status {show(status)}; a cancellation has status 'cancelled'",
                                              "Task.status"))
    if not isinstance(original, dict):
        return findings
    mine, theirs = identifier_pairs(task), identifier_pairs(original)
    if sorted(map(repr, mine)) != sorted(map(repr, theirs)):
        findings.append(CANCEL_IDENTIFIER.finding(f"saw {_pairs_text(mine)}; the original notification has "
                                                  f"{_pairs_text(theirs)}", "Task.identifier"))
    group, original_group = task.get("groupIdentifier"), original.get("groupIdentifier")
    pair = (dig(group, "system"), dig(group, "value"))
    original_pair = (dig(original_group, "system"), dig(original_group, "value"))
    if pair != original_pair:
        findings.append(CANCEL_GROUP.finding(f"saw {_pairs_text([pair])}; the original notification has "
                                             f"{_pairs_text([original_pair])}", "Task.groupIdentifier"))
    bases, original_bases = authorization_bases(task), authorization_bases(original)
    if bases != original_bases:
        # An authorization base works like a credential: its length is the evidence, not its text.
        def lengths(values: list[Any]) -> str:
            return ", ".join(f"{len(v)} characters" if isinstance(v, str) else show(v) for v in values) or "none"
        findings.append(CANCEL_AUTH_BASE.finding(f"authorization-base ({lengths(bases)}) is not the original's "
                                                 f"({lengths(original_bases)})", "Task.input"))
    return findings


CANCEL_REQUEST = rule("NOTIF-037", "error", "cancellation is not a conditional update PUT Task?identifier="
                      "<system>|<value>", _CANCEL_REF)
CANCEL_URL_IDENTIFIER = rule("NOTIF-038", "error", "conditional-update identifier does not match the Task's "
                             "identifier", _CANCEL_REF)


@emits(CANCEL_REQUEST, CANCEL_URL_IDENTIFIER)
def check_cancellation_request(url: str, task: object, *, method: str = "PUT") -> list[Finding]:
    """`PUT [notification-base]/Task?identifier=<system>|<value>`, naming the Task's own identifier."""
    findings: list[Finding] = []
    if method.upper() != "PUT":
        findings.append(CANCEL_REQUEST.finding(f"saw method {show(method)}; a cancellation is a conditional update "
                                               "(PUT)", "request.method"))
    try:
        parts = urlsplit(url)
    except ValueError:
        return findings + [CANCEL_REQUEST.finding(f"URL {show(url, 120)} cannot be parsed", "request.url")]
    path = parts.path.rstrip("/")
    if not (path == "Task" or path.endswith("/Task")):
        by_id = re.search(r"(^|/)Task/[^/]+$", path)
        hint = " (an update by id; expected the conditional form Task?identifier=...)" if by_id else ""
        findings.append(CANCEL_REQUEST.finding(f"path {show(parts.path, 120)} does not end in /Task{hint}",
                                               "request.url"))
        return findings
    values = [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if name == "identifier"]
    if len(values) != 1:
        findings.append(CANCEL_REQUEST.finding(f"saw {len(values)} identifier parameters; expected exactly one "
                                               "identifier=<system>|<value>", "request.url.identifier"))
        return findings
    system, bar, value = values[0].partition("|")
    if not bar or not system or not value:
        findings.append(CANCEL_REQUEST.finding(f"saw identifier={show(values[0], 120)}; expected <system>|<value> "
                                               "so only the notification's own identifier matches",
                                               "request.url.identifier"))
        return findings
    expected = identifier_pairs(task) if isinstance(task, dict) else []
    if expected and (system, value) not in expected:
        findings.append(CANCEL_URL_IDENTIFIER.finding(f"URL names {show(values[0], 120)}; the Task's identifier is "
                                                      f"{_pairs_text(expected)}", "request.url.identifier"))
    return findings
