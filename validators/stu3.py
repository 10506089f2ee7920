"""Facts of FHIR STU3 itself (not of SPEC.md): search parameters, include targets, media types.

The simulator's FHIR server, the validators, the proxy and the scenarios read these; nothing else restates them.
The search parameter tables cover the resource types of the BgZ queries (SPEC §6) and what they reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --- media types -----------------------------------------------------------------------------------------
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
FHIR_MEDIA_TYPES = (FHIR_JSON, "application/json+fhir", FHIR_XML, "application/xml+fhir")  # incl. the DSTU2 names
FORM_URLENCODED = "application/x-www-form-urlencoded"
FormatFamily = Literal["json", "xml"]
# `_format` values and media types that name JSON or XML (a FHIR server answers either; SPEC §3 step 5)
FORMAT_FAMILIES: dict[str, FormatFamily] = {
    "json": "json", "application/json": "json", FHIR_JSON: "json", "application/json+fhir": "json",
    "text/json": "json",
    "xml": "xml", "text/xml": "xml", "application/xml": "xml", FHIR_XML: "xml", "application/xml+fhir": "xml",
}
XML_NAMESPACE = "http://hl7.org/fhir"


def media_type(content_type: str | None) -> str:
    """`type/subtype` in lower case, without parameters such as `; charset=utf-8`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


# --- search parameter tables ------------------------------------------------------------------


@dataclass(frozen=True)
class RefParam:
    """A reference search parameter: element path(s) and the resource types it may point at."""

    paths: tuple[str, ...]
    targets: tuple[str, ...]


def _ref(paths: str, *targets: str) -> RefParam:
    return RefParam(tuple(paths.split()), targets)


ANY = ("*",)  # any resource type
_PATIENT = ("Patient",)
_SUBJECT = ("Patient", "Group")

# token parameters: name -> element path(s); the element may be a code, Coding, CodeableConcept or
# Identifier (recognised by shape). `_id` and `identifier` are added for every type below.
TOKEN_PARAMS: dict[str, dict[str, tuple[str, ...]]] = {
    "Patient": {"gender": ("gender",), "active": ("active",)},
    "Practitioner": {},
    "Organization": {"type": ("type",)},
    "Coverage": {"type": ("type",), "status": ("status",)},
    "Consent": {"category": ("category",), "status": ("status",)},
    "Observation": {"category": ("category",), "code": ("code",), "status": ("status",),
                    "component-code": ("component.code",)},
    "Condition": {"category": ("category",), "code": ("code",), "clinical-status": ("clinicalStatus",),
                  "verification-status": ("verificationStatus",)},
    "NutritionOrder": {"status": ("status",)},
    "Flag": {"status": ("status",), "category": ("category",), "code": ("code",)},
    "AllergyIntolerance": {"category": ("category",), "code": ("code",), "clinical-status": ("clinicalStatus",),
                           "verification-status": ("verificationStatus",), "criticality": ("criticality",)},
    "MedicationStatement": {"category": ("category",), "code": ("medicationCodeableConcept",),
                            "status": ("status",)},
    "MedicationRequest": {"category": ("category",), "code": ("medicationCodeableConcept",),
                          "status": ("status",), "intent": ("intent",)},
    "MedicationDispense": {"category": ("category",), "code": ("medicationCodeableConcept",),
                           "status": ("status",)},
    "Medication": {"code": ("code",)},
    "DeviceUseStatement": {"status": ("status",)},
    "Device": {"type": ("type",), "status": ("status",)},
    "Immunization": {"status": ("status",), "vaccine-code": ("vaccineCode",)},
    "ImmunizationRecommendation": {"vaccine-type": ("recommendation.vaccineCode",),
                                   "status": ("recommendation.forecastStatus",)},
    "Specimen": {"type": ("type",)},
    "Procedure": {"category": ("category",), "code": ("code",), "status": ("status",)},
    "Encounter": {"class": ("class",), "status": ("status",), "type": ("type",)},
    "ProcedureRequest": {"status": ("status",), "intent": ("intent",), "code": ("code",),
                         "category": ("category",)},
    "DeviceRequest": {"status": ("status",), "intent": ("intent",), "code": ("codeCodeableConcept",)},
    "Appointment": {"status": ("status",), "service-type": ("serviceType",)},
    "DocumentReference": {"status": ("status",), "type": ("type",), "class": ("class",)},
    "Provenance": {},
}

# reference parameters: name -> RefParam; they serve chaining (`patient.identifier=`) and _include
REF_PARAMS: dict[str, dict[str, RefParam]] = {
    "Patient": {"general-practitioner": _ref("generalPractitioner", "Practitioner", "Organization"),
                "organization": _ref("managingOrganization", "Organization")},
    "Practitioner": {},
    "Organization": {"partof": _ref("partOf", "Organization")},
    "Coverage": {"beneficiary": _ref("beneficiary", "Patient"),
                 "subscriber": _ref("subscriber", "Patient", "RelatedPerson"),
                 "policy-holder": _ref("policyHolder", "Patient", "RelatedPerson", "Organization"),
                 "payor": _ref("payor", "Organization", "Patient", "RelatedPerson")},
    "Consent": {"patient": _ref("patient", *_PATIENT)},
    "Observation": {"subject": _ref("subject", *ANY), "patient": _ref("subject", *_PATIENT),
                    "specimen": _ref("specimen", "Specimen"),
                    "related-target": _ref("related.target", "Observation", "QuestionnaireResponse", "Sequence"),
                    "performer": _ref("performer", "Practitioner", "Organization", "Patient", "RelatedPerson"),
                    "encounter": _ref("context", "Encounter")},
    "Condition": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                  "asserter": _ref("asserter", "Practitioner", "Patient", "RelatedPerson")},
    "NutritionOrder": {"patient": _ref("patient", *_PATIENT), "provider": _ref("orderer", "Practitioner")},
    "Flag": {"subject": _ref("subject", *ANY), "patient": _ref("subject", *_PATIENT),
             "author": _ref("author", "Device", "Organization", "Patient", "Practitioner")},
    "AllergyIntolerance": {"patient": _ref("patient", *_PATIENT),
                           "asserter": _ref("asserter", "Patient", "RelatedPerson", "Practitioner")},
    "MedicationStatement": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                            "medication": _ref("medicationReference", "Medication")},
    "MedicationRequest": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                          "medication": _ref("medicationReference", "Medication"),
                          "requester": _ref("requester.agent", "Practitioner", "Organization", "Patient",
                                            "RelatedPerson", "Device")},
    "MedicationDispense": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                           "medication": _ref("medicationReference", "Medication"),
                           "performer": _ref("performer.actor", "Practitioner", "Organization", "Patient",
                                             "RelatedPerson", "Device")},
    "Medication": {"manufacturer": _ref("manufacturer", "Organization")},
    "DeviceUseStatement": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                           "device": _ref("device", "Device")},
    "Device": {"patient": _ref("patient", *_PATIENT), "organization": _ref("owner", "Organization")},
    "Immunization": {"patient": _ref("patient", *_PATIENT),
                     "practitioner": _ref("practitioner.actor", "Practitioner")},
    "ImmunizationRecommendation": {"patient": _ref("patient", *_PATIENT),
                                   "support": _ref("recommendation.supportingImmunization", "Immunization")},
    "Specimen": {"subject": _ref("subject", *ANY), "patient": _ref("subject", *_PATIENT)},
    "Procedure": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                  "performer": _ref("performer.actor", "Practitioner", "Organization", "Patient",
                                    "RelatedPerson", "Device")},
    "Encounter": {"subject": _ref("subject", *_SUBJECT), "patient": _ref("subject", *_PATIENT),
                  "service-provider": _ref("serviceProvider", "Organization"),
                  "practitioner": _ref("participant.individual", "Practitioner")},
    "ProcedureRequest": {"subject": _ref("subject", *ANY), "patient": _ref("subject", *_PATIENT),
                         "requester": _ref("requester.agent", "Device", "Practitioner", "Organization"),
                         "performer": _ref("performer", *ANY)},
    "DeviceRequest": {"subject": _ref("subject", *ANY), "patient": _ref("subject", *_PATIENT),
                      "device": _ref("codeReference", "Device"),
                      "requester": _ref("requester.agent", "Device", "Practitioner", "Organization")},
    "Appointment": {"patient": _ref("participant.actor", *_PATIENT), "actor": _ref("participant.actor", *ANY),
                    "practitioner": _ref("participant.actor", "Practitioner")},
    "DocumentReference": {"subject": _ref("subject", *ANY), "patient": _ref("subject", *_PATIENT),
                          "author": _ref("author", *ANY), "custodian": _ref("custodian", "Organization")},
    "Provenance": {"target": _ref("target", *ANY), "patient": _ref("target", *_PATIENT),
                   "agent": _ref("agent.whoReference", *ANY)},
}

SEARCHABLE_TYPES = frozenset(TOKEN_PARAMS)
# Parameters that shape the answer's format, not which resources it holds.
IGNORED_SEARCH_PARAMS = frozenset({"_format"})
# element that has no `identifier` in STU3 (so `identifier` is not a search parameter there)
_NO_IDENTIFIER = frozenset({"Medication"})


def token_params(resource_type: str) -> dict[str, tuple[str, ...]]:
    """The token search parameters of a searchable type, with `_id` and (where STU3 has it) `identifier`."""
    params = dict(TOKEN_PARAMS[resource_type])
    params["_id"] = ("id",)
    if resource_type not in _NO_IDENTIFIER:
        params["identifier"] = ("identifier",)
    return params


def target_allowed(target_type: str, ref_param: RefParam) -> bool:
    """Whether a reference parameter may point at this resource type."""
    return ref_param.targets == ANY or target_type in ref_param.targets


def include_targets(value: str) -> tuple[str, ...]:
    """The resource types an `_include=Type:param[:TargetType]` can bring in; () for an unknown parameter."""
    source_type, _, rest = value.partition(":")
    param, _, target_type = rest.partition(":")
    ref_param = REF_PARAMS.get(source_type, {}).get(param)
    if ref_param is None:
        return ()
    if target_type:
        return (target_type,) if target_allowed(target_type, ref_param) else ()
    return ref_param.targets
