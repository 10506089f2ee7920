"""The facts of SPEC.md in one place: naming systems, Task codes, the BgZ query table.

Simulator, validators, test data and documentation all read these; nothing else restates them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from validators.query import SearchQuery, read_relative_query
from validators.stu3 import include_targets

# --- naming systems (SPEC §6.3) ---------------------------------------------------------------
NS = "http://fhir.nl/fhir/NamingSystem/"
BSN_SYSTEM = NS + "bsn"
URA_SYSTEM = NS + "ura"
UZI_PERSON_SYSTEM = NS + "uzi-nr-pers"
UZI_SYSTEM_SYSTEM = NS + "uzi-nr-sys"
AGB_SYSTEM = NS + "agb-z"
UZOVI_SYSTEM = NS + "uzovi"
BIG_SYSTEM = NS + "big"
DUTCH_NAMING_SYSTEMS = (BSN_SYSTEM, URA_SYSTEM, UZI_PERSON_SYSTEM, UZI_SYSTEM_SYSTEM, AGB_SYSTEM, UZOVI_SYSTEM,
                        BIG_SYSTEM)

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RFC3986 = "urn:ietf:rfc:3986"

# --- Notification Task (SPEC §4) ---------------------------------------------------------------
TASK_CODE_SYSTEM = NS + "TaskCode"
TASK_CODE_PULL_NOTIFICATION = "pull-notification"
TASK_PARAMETER_SYSTEM = NS + "TaskParameter"
INPUT_AUTHORIZATION_BASE = "authorization-base"
INPUT_GET_WORKFLOW_TASK = "get-workflow-task"
INPUT_READ_RESOURCE = "read-resource"
INPUT_SEARCH_RESOURCE = "search-resource"
# Twiin 1.4 slice names, accepted as codes with a warning [choice]
INPUT_READ_RESOURCE_14 = "read-available-resource"
INPUT_SEARCH_RESOURCE_14 = "query-available-resources"
TASK_STATUS_REQUESTED = "requested"
TASK_STATUS_CANCELLED = "cancelled"
TASK_INTENT = "proposal"
WORKFLOW_TASK_PROFILE = "http://nictiz.nl/fhir/StructureDefinition/BgZ-verwijzing-Task"
WORKFLOW_TASK_CODE = {"system": SNOMED, "code": "3457005"}  # SPEC §3 step 1: the BgZ referral Workflow Task
# FHIR STU3 value sets Task.status (task-status) and Task.intent (request-intent)
TASK_STATUSES = ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
                 "on-hold", "failed", "completed", "entered-in-error")
TASK_INTENTS = ("proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order",
                "option")

# --- OAuth (SPEC §5.2) -------------------------------------------------------------------------
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALLOWED_JWT_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MAX_ASSERTION_LIFETIME_S = 300  # [choice] reject a lifetime over 5 minutes
CLOCK_SKEW_S = 60  # [choice]
FORM_AUTHORIZATION_BASE = "authorization_base"  # form parameter of the client_credentials variant (SPEC §5.3)

# RFC 6749 §5.2 error codes, and the HTTP status SPEC §5.2 answers each with
OAUTH_INVALID_REQUEST = "invalid_request"
OAUTH_INVALID_CLIENT = "invalid_client"
OAUTH_INVALID_GRANT = "invalid_grant"
OAUTH_UNAUTHORIZED_CLIENT = "unauthorized_client"
OAUTH_UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
OAUTH_INVALID_SCOPE = "invalid_scope"
OAUTH_ERRORS = (OAUTH_INVALID_REQUEST, OAUTH_INVALID_CLIENT, OAUTH_INVALID_GRANT, OAUTH_UNAUTHORIZED_CLIENT,
                OAUTH_UNSUPPORTED_GRANT_TYPE, OAUTH_INVALID_SCOPE)
OAUTH_ERROR_STATUS = {code: 401 if code == OAUTH_INVALID_CLIENT else 400 for code in OAUTH_ERRORS}
# RFC 6750 §3.1 error codes of a resource server's Bearer challenge
BEARER_INVALID_REQUEST = "invalid_request"
BEARER_INVALID_TOKEN = "invalid_token"
BEARER_INSUFFICIENT_SCOPE = "insufficient_scope"

# --- Certificates (SPEC §5.1) --------------------------------------------------------------------
# subjectAltName otherName of an UZI server certificate:
# 2.16.528.1.1003.1.3.5.5.2-1-<UZI nr>-S-<URA>-00.000-<AGB>
UZI_OTHER_NAME_OID = "2.5.5.5"
UZI_SERVER_CA_OID = "2.16.528.1.1003.1.3.5.5.2"
UZI_SERVER_CARD_TYPE = "S"

# --- BgZ queries (SPEC §6) ---------------------------------------------------------------------
NICTIZ_SD = "http://nictiz.nl/fhir/StructureDefinition/"


@dataclass(frozen=True)
class BgzQuery:
    """One row of the SPEC §6 table."""

    number: int
    type_system: str
    type_code: str
    query: str  # relative query, as written in the Task (reserved characters not yet encoded)
    profiles: tuple[str, ...]  # main profile first, then profiles of included resources

    @cached_property
    def search(self) -> SearchQuery:
        return read_relative_query(self.query)

    @property
    def resource_type(self) -> str:
        return self.search.resource_type

    @property
    def profile(self) -> str:
        return self.profiles[0]


def _q(n: int, system: str, code: str, query: str, *profiles: str) -> BgzQuery:
    full = tuple(p if p.startswith("http") else NICTIZ_SD + p for p in profiles)
    return BgzQuery(n, system, code, query, full)


BGZ_QUERIES: tuple[BgzQuery, ...] = (
    _q(1, LOINC, "79191-3", "Patient?_include=Patient:general-practitioner",
       "http://fhir.nl/fhir/StructureDefinition/nl-core-patient"),
    _q(2, LOINC, "48768-6", "Coverage?_include=Coverage:payor:Patient&_include=Coverage:payor:Organization",
       "zib-Payer"),
    _q(3, SNOMED, "11291000146105", "Consent?category=http://snomed.info/sct|11291000146105",
       "zib-TreatmentDirective"),
    _q(4, SNOMED, "11341000146107", "Consent?category=http://snomed.info/sct|11341000146107",
       "zib-AdvanceDirective"),
    _q(5, LOINC, "47420-5",
       "Observation/$lastn?category=http://snomed.info/sct|118228005,http://snomed.info/sct|384821006",
       "zib-FunctionalOrMentalStatus"),
    _q(6, LOINC, "11450-4", "Condition", "zib-Problem"),
    _q(7, SNOMED, "365508006", "Observation/$lastn?code=http://snomed.info/sct|365508006", "zib-LivingSituation"),
    _q(8, SNOMED, "228366006", "Observation?code=http://snomed.info/sct|228366006", "zib-DrugUse"),
    _q(9, SNOMED, "228273003", "Observation?code=http://snomed.info/sct|228273003", "zib-AlcoholUse"),
    _q(10, SNOMED, "365980008", "Observation?code=http://snomed.info/sct|365980008", "zib-TobaccoUse"),
    _q(11, SNOMED, "11816003", "NutritionOrder", "zib-NutritionAdvice"),
    _q(12, LOINC, "75310-3", "Flag", "zib-Alert"),
    _q(13, LOINC, "48765-2", "AllergyIntolerance", "zib-AllergyIntolerance"),
    _q(14, SNOMED, "422979000",
       "MedicationStatement?category=urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6"
       "&_include=MedicationStatement:medication",
       "zib-MedicationUse", "zib-Product"),
    _q(15, SNOMED, "16076005",
       "MedicationRequest?category=http://snomed.info/sct|16076005&_include=MedicationRequest:medication",
       "zib-MedicationAgreement", "zib-Product"),
    _q(16, SNOMED, "422037009",
       "MedicationDispense?category=http://snomed.info/sct|422037009&_include=MedicationDispense:medication",
       "zib-AdministrationAgreement", "zib-Product"),
    _q(17, LOINC, "46264-8", "DeviceUseStatement?_include=DeviceUseStatement:device",
       "zib-MedicalDevice", "zib-MedicalDeviceProduct"),
    _q(18, LOINC, "11369-6", "Immunization?status=completed", "zib-Vaccination"),
    _q(19, LOINC, "85354-9", "Observation/$lastn?code=http://loinc.org|85354-9", "zib-BloodPressure"),
    _q(20, LOINC, "29463-7", "Observation/$lastn?code=http://loinc.org|29463-7", "zib-BodyWeight"),
    _q(21, LOINC, "8302-2",
       "Observation/$lastn?code=http://loinc.org|8302-2,http://loinc.org|8306-3,http://loinc.org|8308-9",
       "zib-BodyHeight"),
    _q(22, SNOMED, "15220000",
       "Observation/$lastn?category=http://snomed.info/sct|275711006"
       "&_include=Observation:related-target&_include=Observation:specimen",
       "zib-LaboratoryTestResult-Observation", "zib-LaboratoryTestResult-Specimen"),
    _q(23, LOINC, "47519-4", "Procedure?category=http://snomed.info/sct|387713003", "zib-Procedure"),
    _q(24, LOINC, "46240-8",
       "Encounter?class=http://hl7.org/fhir/v3/ActCode|IMP,http://hl7.org/fhir/v3/ActCode|ACUTE,"
       "http://hl7.org/fhir/v3/ActCode|NONAC",
       "zib-Encounter"),
    _q(25, LOINC, "18776-5", "ProcedureRequest?status=active", "zib-ProcedureRequest"),
    _q(26, LOINC, "18776-5", "ImmunizationRecommendation", "zib-VaccinationRecommendation"),
    _q(27, LOINC, "18776-5", "DeviceRequest?status=active&_include=DeviceRequest:device",
       "zib-MedicalDeviceRequest", "zib-MedicalDeviceProduct"),
    _q(28, LOINC, "18776-5", "Appointment?status=booked,pending,proposed",
       "http://nictiz.nl/fhir/StructureDefinition/eAfspraak-Appointment"),
)

DOCUMENTS_QUERY = BgzQuery(29, LOINC, "77599-9", "DocumentReference?status=current", ())

# Referral letter (verwijsbrief) document type
REFERRAL_LETTER_TYPE = {"system": LOINC, "code": "57133-1", "display": "Referral note"}


def profile_for(resource_type: str, query: BgzQuery | None = None) -> str | None:
    """The profile a resource of this type is expected to claim in the answer to `query`."""
    candidates = BGZ_QUERIES if query is None else (query,)
    for q in candidates:
        if q.resource_type == resource_type:
            return q.profile
    return None


def encode_query(query: str) -> str:
    """Percent-encode reserved characters inside parameter values, as a Task's valueString must."""
    from urllib.parse import quote

    path, _, params = query.partition("?")
    if not params:
        return path
    parts = []
    for pair in params.split("&"):
        name, _, value = pair.partition("=")
        parts.append(f"{name}={quote(value, safe=',$')}")
    return path + "?" + "&".join(parts)


# Parameters that narrow to a patient or shape the answer, but do not tell which BgZ query was meant.
_NEUTRAL_PARAMS = {"patient.identifier", "beneficiary.identifier", "subject.identifier", "patient", "subject",
                   "_revinclude", "_format", "_count", "_offset", "_sort", "max"}


def find_query(asked: SearchQuery) -> BgzQuery | None:
    """The BgZ query (or the documents query) a request asks, ignoring patient-naming parameters."""
    def key(search: SearchQuery) -> tuple:
        return tuple(sorted((n, v) for n, v in search.params if n not in _NEUTRAL_PARAMS
                            and not (search.resource_type == "Patient" and n == "identifier")))

    wanted = key(asked)
    for q in BGZ_QUERIES + (DOCUMENTS_QUERY,):
        if (q.search.resource_type, q.search.lastn) == (asked.resource_type, asked.lastn) and key(q.search) == wanted:
            return q
    return None


# --- BgZ profiles and coding systems (SPEC §6, §6.2) --------------------------------------------
NL_CORE_PATIENT_PROFILE = BGZ_QUERIES[0].profile
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"
G_STANDAARD_SYSTEMS = tuple(f"urn:oid:2.16.840.1.113883.2.4.4.{n}" for n in (1, 7, 8, 10))
# A zib value set's OID names a set of codes, never the code system of a Coding (SPEC §6.2).
ZIB_VALUE_SET_OID_PREFIX = "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.2"
# The HL7 OIDs of the SPEC §6.2 code systems; FHIR names these systems by their URI instead.
CODE_SYSTEM_OIDS = {
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.73": ATC,
    "urn:oid:2.16.840.1.113883.6.8": UCUM,
}
TREATMENT_PERMITTED_URL = NICTIZ_SD + "zib-TreatmentDirective-TreatmentPermitted"  # its modifierExtension
BLOOD_PRESSURE_SYSTOLIC = f"{LOINC}|8480-6"
BLOOD_PRESSURE_DIASTOLIC = f"{LOINC}|8462-4"
BLOOD_PRESSURE_UNIT = "mm[Hg]"  # UCUM
# Laboratory results: the zib's own category, or the one query 22 asks for (SPEC §6.2)
LAB_CATEGORIES = (f"{SNOMED}|49581000146104", f"{SNOMED}|275711006")

# SPEC §6 variant: `&_revinclude=Provenance:target` may add Provenance resources to any answer.
REVINCLUDE_TYPES = ("Provenance",)

# The resource type of every BgZ profile: main profiles from the query table, included ones here.
INCLUDED_PROFILE_TYPES = {
    NICTIZ_SD + "zib-Product": "Medication",
    NICTIZ_SD + "zib-MedicalDeviceProduct": "Device",
    NICTIZ_SD + "zib-LaboratoryTestResult-Specimen": "Specimen",
}
PROFILE_TYPES: dict[str, str] = {**{q.profile: q.resource_type for q in BGZ_QUERIES}, **INCLUDED_PROFILE_TYPES}


def include_types(query: BgzQuery) -> frozenset[str]:
    """Resource types the query's `_include` parameters (and the Provenance variant) may add."""
    types = {t for name, value in query.search.params if name == "_include" for t in include_targets(value)}
    return frozenset(types | set(REVINCLUDE_TYPES))
