"""The Notification Task (SPEC §4): what we send as sender, and the checks we apply as receiver."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

SYS_RFC3986 = "urn:ietf:rfc:3986"
SYS_BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
SYS_URA = "http://fhir.nl/fhir/NamingSystem/ura"
SYS_TASKCODE = "http://fhir.nl/fhir/NamingSystem/TaskCode"
SYS_TASKPARAM = "http://fhir.nl/fhir/NamingSystem/TaskParameter"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"

# SPEC §6: (section code system, code, text, relative query) for the 28 BgZ queries, then the letters.
BGZ_QUERIES: list[tuple[str, str, str, str]] = [
    (LOINC, "79191-3", "Patient", "Patient?_include=Patient:general-practitioner"),
    (LOINC, "48768-6", "Payer", "Coverage?_include=Coverage:payor:Patient&_include=Coverage:payor:Organization"),
    (SCT, "11291000146105", "Treatment directive", "Consent?category=http://snomed.info/sct|11291000146105"),
    (SCT, "11341000146107", "Advance directive", "Consent?category=http://snomed.info/sct|11341000146107"),
    (LOINC, "47420-5", "Functional or mental status",
     "Observation/$lastn?category=http://snomed.info/sct|118228005,http://snomed.info/sct|384821006"),
    (LOINC, "11450-4", "Problems", "Condition"),
    (SCT, "365508006", "Living situation", "Observation/$lastn?code=http://snomed.info/sct|365508006"),
    (SCT, "228366006", "Drug use", "Observation?code=http://snomed.info/sct|228366006"),
    (SCT, "228273003", "Alcohol use", "Observation?code=http://snomed.info/sct|228273003"),
    (SCT, "365980008", "Tobacco use", "Observation?code=http://snomed.info/sct|365980008"),
    (SCT, "11816003", "Nutrition advice", "NutritionOrder"),
    (LOINC, "75310-3", "Alerts", "Flag"),
    (LOINC, "48765-2", "Allergies", "AllergyIntolerance"),
    (SCT, "422979000", "Medication use",
     "MedicationStatement?category=urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6"
     "&_include=MedicationStatement:medication"),
    (SCT, "16076005", "Medication agreements",
     "MedicationRequest?category=http://snomed.info/sct|16076005&_include=MedicationRequest:medication"),
    (SCT, "422037009", "Administration agreements",
     "MedicationDispense?category=http://snomed.info/sct|422037009&_include=MedicationDispense:medication"),
    (LOINC, "46264-8", "Medical devices", "DeviceUseStatement?_include=DeviceUseStatement:device"),
    (LOINC, "11369-6", "Vaccinations", "Immunization?status=completed"),
    (LOINC, "85354-9", "Blood pressure", "Observation/$lastn?code=http://loinc.org|85354-9"),
    (LOINC, "29463-7", "Body weight", "Observation/$lastn?code=http://loinc.org|29463-7"),
    (LOINC, "8302-2", "Body height",
     "Observation/$lastn?code=http://loinc.org|8302-2,http://loinc.org|8306-3,http://loinc.org|8308-9"),
    (SCT, "15220000", "Laboratory results",
     "Observation/$lastn?category=http://snomed.info/sct|275711006&_include=Observation:related-target"
     "&_include=Observation:specimen"),
    (LOINC, "47519-4", "Procedures", "Procedure?category=http://snomed.info/sct|387713003"),
    (LOINC, "46240-8", "Encounters",
     "Encounter?class=http://hl7.org/fhir/v3/ActCode|IMP,http://hl7.org/fhir/v3/ActCode|ACUTE,"
     "http://hl7.org/fhir/v3/ActCode|NONAC"),
    (LOINC, "18776-5", "Planned procedures", "ProcedureRequest?status=active"),
    (LOINC, "18776-5", "Planned vaccinations", "ImmunizationRecommendation"),
    (LOINC, "18776-5", "Planned medical devices", "DeviceRequest?status=active&_include=DeviceRequest:device"),
    (LOINC, "18776-5", "Planned appointments", "Appointment?status=booked,pending,proposed"),
]
LETTER_QUERY = (LOINC, "77599-9", "Documents (referral letter)", "DocumentReference?status=current")
SECTION_CODES = {(s, c) for s, c, _, _ in BGZ_QUERIES} | {(LETTER_QUERY[0], LETTER_QUERY[1])}

STU3_TYPES = frozenset("""
Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent Basic Binary
BodySite Bundle CapabilityStatement CarePlan CareTeam ChargeItem Claim ClaimResponse ClinicalImpression CodeSystem
Communication CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage
DataElement DetectedIssue Device DeviceComponent DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport
DocumentManifest DocumentReference EligibilityRequest EligibilityResponse Encounter Endpoint EnrollmentRequest
EnrollmentResponse EpisodeOfCare ExpansionProfile ExplanationOfBenefit FamilyMemberHistory Flag Goal
GraphDefinition Group GuidanceResponse HealthcareService ImagingManifest ImagingStudy Immunization
ImmunizationRecommendation ImplementationGuide Library Linkage List Location Measure MeasureReport Media Medication
MedicationAdministration MedicationDispense MedicationRequest MedicationStatement MessageDefinition MessageHeader
NamingSystem NutritionOrder Observation OperationDefinition OperationOutcome Organization Parameters Patient
PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner PractitionerRole Procedure ProcedureRequest
ProcessRequest ProcessResponse Provenance Questionnaire QuestionnaireResponse ReferralRequest RelatedPerson
RequestGroup ResearchStudy ResearchSubject RiskAssessment Schedule SearchParameter Sequence ServiceDefinition Slot
Specimen StructureDefinition StructureMap Subscription Substance SupplyDelivery SupplyRequest Task TestReport
TestScript ValueSet VisionPrescription
""".split())

UUID_URN = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DATETIME_TZ = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
URA = re.compile(r"^\d{8}$")


def bsn_ok(value: object) -> bool:
    """SPEC §6.3: 9 digits, weights 9..2 and -1, sum divisible by 11."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{9}", value):
        return False
    digits = [int(c) for c in value]
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1))) - digits[8]
    return total % 11 == 0


def encode_query(query: str) -> str:
    """Percent-encode the reserved characters inside parameter values (SPEC §4): `|` `:` `/`."""
    if "?" not in query:
        return query
    path, params = query.split("?", 1)
    parts = []
    for param in params.split("&"):
        name, _, value = param.partition("=")
        parts.append(f"{name}={quote(value, safe=',')}")
    return f"{path}?{'&'.join(parts)}"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def fhir_datetime(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def build_notification(*, bsn: str, sender_ura: str, sender_client_id: str, receiver_ura: str,
                       authorization_base: str, group_identifier: str | None = None,
                       period_days: int = 365, organisation_name: str = "") -> dict[str, Any]:
    """A Notification Task per SPEC §4 offering the 28 BgZ queries and the referral letter query."""
    authored = now_utc()
    inputs: list[dict[str, Any]] = [{
        "type": {"coding": [{"system": SYS_TASKPARAM, "code": "authorization-base"}], "text": "Authorization base"},
        "valueString": authorization_base,
    }]
    for system, code, text, query in [*BGZ_QUERIES, LETTER_QUERY]:
        inputs.append({"type": {"coding": [{"system": system, "code": code}], "text": text},
                       "valueString": encode_query(query)})
    return {
        "resourceType": "Task",
        "identifier": [{"system": SYS_RFC3986, "value": f"urn:uuid:{uuid.uuid4()}"}],
        "groupIdentifier": {"system": SYS_RFC3986, "value": group_identifier or f"urn:uuid:{uuid.uuid4()}"},
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [{"system": SYS_TASKCODE, "code": "pull-notification"}], "text": "Pull notification"},
        "for": {"identifier": {"system": SYS_BSN, "value": bsn}},
        "authoredOn": fhir_datetime(authored),
        "restriction": {"period": {"end": fhir_datetime(authored + timedelta(days=period_days))}},
        "requester": {
            "agent": {"identifier": {"system": SYS_URA, "value": sender_ura},
                      "display": f"{organisation_name or 'GtK'} ({sender_client_id})"},
            "onBehalfOf": {"identifier": {"system": SYS_URA, "value": sender_ura},
                           "display": organisation_name or f"URA {sender_ura}"},
        },
        "owner": {"identifier": {"system": SYS_URA, "value": receiver_ura}},
        "input": inputs,
    }


# --------------------------------------------------------------------------------------------------- checks

@dataclass
class TaskReading:
    """What a receiver takes from a Notification Task, with the SPEC §4 errors and warnings found."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    identifier: tuple[str, str] | None = None
    group_identifier: str | None = None
    bsn: str | None = None
    authorization_base: str | None = None
    sender_ura: str | None = None
    period_end: str | None = None
    based_on: str | None = None
    get_workflow_task: bool = False
    reads: list[str] = field(default_factory=list)      # relative Type/id
    searches: list[str] = field(default_factory=list)   # relative Type?params (as given, still encoded)


def _parse_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_query(query: object) -> str | None:
    """A relative query of a Task input; returns the problem or None."""
    if not isinstance(query, str) or not query:
        return "the query is not a non-empty string"
    if query.startswith("/") or "://" in query.split("?", 1)[0]:
        return f"query {query!r} must be relative (Type?params, no leading slash)"
    if BROKEN_ESCAPE.search(query):
        return f"query {query!r} has a broken percent-escape"
    resource_type = query.split("?", 1)[0].split("/", 1)[0]
    if resource_type not in STU3_TYPES:
        return f"query {query!r} does not name an existing STU3 resource type"
    if " " in query:
        return f"query {query!r} contains a space"
    return None


def _identifier(obj: object, where: str, reading: TaskReading) -> tuple[str, str] | None:
    if not isinstance(obj, dict):
        reading.errors.append(f"{where} must be an Identifier object")
        return None
    system, value = obj.get("system"), obj.get("value")
    if not isinstance(system, str) or not isinstance(value, str) or not system or not value:
        reading.errors.append(f"{where} needs system and value")
        return None
    return system, value


def _ura_of(element: object, where: str, reading: TaskReading) -> str | None:
    if not isinstance(element, dict) or "identifier" not in element:
        reading.errors.append(f"{where}.identifier is required")
        return None
    found = _identifier(element["identifier"], f"{where}.identifier", reading)
    if found is None:
        return None
    system, value = found
    if system != SYS_URA:
        reading.errors.append(f"{where}.identifier.system must be {SYS_URA}, not {system!r}")
        return None
    if not URA.match(value):
        reading.errors.append(f"{where}.identifier.value {value!r} is not a URA (8 digits)")
        return None
    return value


def read_task(task: object, *, our_ura: str, status: str = "requested", when: datetime | None = None) -> TaskReading:
    """Check a Notification Task against SPEC §4; `status` is the one this request must carry."""
    reading = TaskReading()
    errors = reading.errors
    if not isinstance(task, dict) or task.get("resourceType") != "Task":
        errors.append("the body is not a FHIR Task resource")
        return reading
    now = when or now_utc()

    ident = task.get("identifier")
    if isinstance(ident, dict):
        errors.append("Task.identifier must be an array of Identifier (found an object)")
    elif not isinstance(ident, list) or len(ident) != 1:
        errors.append("Task.identifier must be an array with exactly one Identifier")
    else:
        found = _identifier(ident[0], "Task.identifier[0]", reading)
        if found:
            if found[0] != SYS_RFC3986 or not UUID_URN.match(found[1]):
                errors.append(f"Task.identifier must be {SYS_RFC3986} | urn:uuid:<uuid>, not {found[0]}|{found[1]}")
            reading.identifier = found

    group = task.get("groupIdentifier")
    if not isinstance(group, dict) or not isinstance(group.get("value"), str):
        errors.append("Task.groupIdentifier (an Identifier with a value) is required")
    elif not UUID_URN.match(group["value"]):
        errors.append(f"Task.groupIdentifier.value {group['value']!r} must be urn:uuid:<uuid>")
    else:
        reading.group_identifier = group["value"]

    if task.get("status") != status:
        errors.append(f"Task.status must be {status!r}, not {task.get('status')!r}")
    if task.get("intent") != "proposal":
        errors.append(f"Task.intent must be 'proposal', not {task.get('intent')!r}")
    codings = (task.get("code") or {}).get("coding") if isinstance(task.get("code"), dict) else None
    if not isinstance(codings, list) or not any(
            isinstance(c, dict) and c.get("system") == SYS_TASKCODE and c.get("code") == "pull-notification"
            for c in codings):
        errors.append(f"Task.code must carry {SYS_TASKCODE}|pull-notification")

    subject = task.get("for")
    if not isinstance(subject, dict) or "identifier" not in subject:
        errors.append("Task.for.identifier (the patient's BSN) is required")
    else:
        found = _identifier(subject["identifier"], "Task.for.identifier", reading)
        if found:
            if found[0] != SYS_BSN:
                errors.append(f"Task.for.identifier.system must be {SYS_BSN}, not {found[0]!r}")
            elif not bsn_ok(found[1]):
                errors.append(f"Task.for.identifier.value {found[1]!r} is not a valid BSN (11-check)")
            else:
                reading.bsn = found[1]

    authored = None
    if not isinstance(task.get("authoredOn"), str) or not DATETIME_TZ.match(task["authoredOn"]):
        errors.append("Task.authoredOn must be a dateTime with a timezone")
    else:
        try:
            authored = _parse_dt(task["authoredOn"])
        except ValueError:
            errors.append(f"Task.authoredOn {task['authoredOn']!r} is not a valid dateTime")
    restriction = task.get("restriction")
    end_text = (((restriction or {}).get("period") or {}).get("end")
                if isinstance(restriction, dict) and isinstance(restriction.get("period"), dict) else None)
    if end_text is None:
        reading.warnings.append("Task.restriction.period.end is missing: no end of availability given")
    elif not isinstance(end_text, str) or not (DATETIME_TZ.match(end_text) or DATE_ONLY.match(end_text)):
        errors.append("Task.restriction.period.end must be a date or a dateTime with a timezone")
    else:
        try:
            end = (_parse_dt(end_text) if "T" in end_text
                   else datetime.fromisoformat(end_text).replace(tzinfo=timezone.utc) + timedelta(days=1))
        except ValueError:
            errors.append(f"Task.restriction.period.end {end_text!r} is not a valid date")
        else:
            reading.period_end = end_text
            if status == "requested" and end <= now:
                errors.append(f"Task.restriction.period.end {end_text} has passed: the data is no longer available")
            if authored is not None and end <= authored:
                errors.append("Task.restriction.period.end must be after authoredOn")

    requester = task.get("requester")
    if not isinstance(requester, dict):
        errors.append("Task.requester is required")
    else:
        if not isinstance(requester.get("agent"), dict) or not requester["agent"].get("identifier"):
            reading.warnings.append("Task.requester.agent.identifier does not identify the sending system")
        reading.sender_ura = _ura_of(requester.get("onBehalfOf"), "Task.requester.onBehalfOf", reading)
    owner = _ura_of(task.get("owner"), "Task.owner", reading)
    if owner is not None and owner != our_ura:
        errors.append(f"Task.owner is URA {owner}, not this organisation ({our_ura})")

    based_on = task.get("basedOn")
    if based_on is not None:
        refs = based_on if isinstance(based_on, list) else [based_on]
        for ref in refs:
            value = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(value, str) or not re.fullmatch(r"Task/[A-Za-z0-9\-.]{1,64}", value):
                errors.append(f"Task.basedOn must be a reference 'Task/<id>' (no leading slash), not {value!r}")
            else:
                reading.based_on = value

    _read_inputs(task.get("input"), reading, status)
    return reading


def _read_inputs(inputs: object, reading: TaskReading, status: str) -> None:
    errors = reading.errors
    if not isinstance(inputs, list) or not inputs:
        errors.append("Task.input is required (at least the authorization base)")
        return
    bases = 0
    for i, item in enumerate(inputs):
        where = f"Task.input[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where} is not an object")
            continue
        codings = (item.get("type") or {}).get("coding") if isinstance(item.get("type"), dict) else None
        coding = codings[0] if isinstance(codings, list) and codings and isinstance(codings[0], dict) else {}
        system, code = coding.get("system"), coding.get("code")
        if "value" in item:
            errors.append(f"{where} has 'value': the element is value[x] (valueString, valueReference, ...)")
            continue
        if system == SYS_TASKPARAM:
            if code in ("read-available-resource", "query-available-resources"):
                reading.warnings.append(f"{where}: input name {code!r} used as a code (accepted)")
                code = "read-resource" if code == "read-available-resource" else "search-resource"
            if code == "authorization-base":
                bases += 1
                value = item.get("valueString")
                if not isinstance(value, str) or not value:
                    errors.append(f"{where}: the authorization base must be a non-empty valueString")
                else:
                    reading.authorization_base = value
            elif code == "get-workflow-task":
                if "valueBoolean" in item and not isinstance(item["valueBoolean"], bool):
                    errors.append(f"{where}: get-workflow-task needs a valueBoolean")
                elif "valueBoolean" not in item and "_valueBoolean" not in item:
                    errors.append(f"{where}: get-workflow-task needs a valueBoolean")
                reading.get_workflow_task = item.get("valueBoolean") is True
            elif code == "read-resource":
                _read_reference(item, where, reading)
            elif code == "search-resource":
                _read_search(item, where, reading)
            else:
                errors.append(f"{where}: unknown TaskParameter code {code!r}")
        elif system in (LOINC, SCT) and isinstance(code, str):
            if (system, code) not in SECTION_CODES:
                reading.warnings.append(f"{where}: {system}|{code} is not a BgZ section code of the table")
            if "valueReference" in item:
                _read_reference(item, where, reading)
            else:
                _read_search(item, where, reading)
        else:
            errors.append(f"{where}: input.type must be a TaskParameter or a LOINC/SNOMED section code")
    if bases != 1 and status == "requested":
        errors.append(f"Task.input must hold exactly one authorization-base (found {bases})")
    if reading.get_workflow_task and not reading.based_on:
        errors.append("get-workflow-task is true but Task.basedOn is missing")


def _read_reference(item: dict[str, Any], where: str, reading: TaskReading) -> None:
    ref = item.get("valueReference")
    value = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}", value):
        reading.errors.append(f"{where}: read-resource needs a valueReference 'Type/id' (relative), not {value!r}")
    elif value.split("/", 1)[0] not in STU3_TYPES:
        reading.errors.append(f"{where}: {value!r} does not name an existing STU3 resource type")
    else:
        reading.reads.append(value)


def _read_search(item: dict[str, Any], where: str, reading: TaskReading) -> None:
    value = item.get("valueString")
    problem = check_query(value)
    if problem:
        reading.errors.append(f"{where}: {problem}")
    else:
        reading.searches.append(value)  # type: ignore[arg-type]
