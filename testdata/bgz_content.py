"""Generated BgZ content (FHIR STU3 JSON, zib 2017) and referral letters for the test patients.

`patient_resources(patient, now=...)` gives everything one patient owns: the Patient, for a "full"
patient at least one resource answering each of the 28 BgZ queries of `validators.spec.BGZ_QUERIES`
(plus the resources those queries `_include`), and for every patient its referral letters as
DocumentReference + Binary (PDF). `shared_resources(now=...)` gives what patients reference in
common: general practitioners, a hospital specialist, health insurers (UZOVI) and the hospital (URA).
The FHIR server searches a patient's resources and resolves includes in those plus the shared ones.

Choices, so nothing surprises a reader:

- `BGZ_BUILDERS` maps each BgZ query number to the builder of the resources that answer it; a
  "sparse" patient only gets `SPARSE_QUERIES` (Patient and Coverage) and the documents.
- Ids are deterministic, derived from the BSN (``<kind>-<bsn>[-<n>]``), so unique across patients;
  shared ids carry no BSN. Resource business identifiers use the Nictiz test OID `LOCAL_ID_SYSTEM`.
- Dates are relative to an anchor: `now` (truncated to the second) for the living; noon of the day
  of death for a deceased patient, so nothing happens after death (an appointment still booked two
  weeks later is what a real record would show). Event times are dateTimes with a timezone (the
  timezone of `now`, UTC when `now` is naive); naturally date-only values (birth date, coverage
  period, date of death) are dates.
- Every Reference carries a `display`; every CodeableConcept has a coding with `display` and a
  `text`; every Coding has `system` and `code`; every Identifier has `system` and `value`.
- The $lastn sections (5, 7, 19, 20, 21, 22) hold two observations of the same code at different
  times, so "most recent per code" matters; Encounter and ProcedureRequest each hold one resource
  that the query's filter must leave out (an outpatient visit, a completed request).
"""
from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable

from testdata.patients import TestPatient
from testdata.referral_letter import referral_letter_pdf
from validators import spec
from validators.spec import BSN_SYSTEM, LOINC, SNOMED

# --- systems and profiles not in validators.spec -----------------------------------------------
LOCAL_ID_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.999.7.6"  # Nictiz example/test OID
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"
ICF_NL = "http://hl7.org/fhir/sid/icf-nl"
ACT_CODE = "http://hl7.org/fhir/v3/ActCode"
GSTD_PRK = "urn:oid:2.16.840.1.113883.2.4.4.10"  # G-Standaard PRK
GSTD_GPK = "urn:oid:2.16.840.1.113883.2.4.4.1"  # G-Standaard GPK
GSTD_ROUTE = "urn:oid:2.16.840.1.113883.2.4.4.9"  # G-Standaard route of administration
MEDICATION_CATEGORY_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3"
ORGANIZATION_TYPE_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.15.1060"  # RoleCodeNL zorgaanbiedertype
NL_CORE_SD = "http://fhir.nl/fhir/StructureDefinition/"
PRACTITIONER_PROFILE = NL_CORE_SD + "nl-core-practitioner"
ORGANIZATION_PROFILE = NL_CORE_SD + "nl-core-organization"
DOCUMENT_REFERENCE_PROFILE = spec.NICTIZ_SD + "IHE.MHD.Minimal.DocumentReference"

_QUERY = {q.number: q for q in spec.BGZ_QUERIES}


def _profile(number: int, position: int = 0) -> str:
    """Profile `position` of BgZ query `number` (0: the main resource, 1: the included one)."""
    return _QUERY[number].profiles[position]


# --- shared resources ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Person:
    id: str
    given: str
    family: str
    agb: str
    role: str

    @property
    def display(self) -> str:
        return f"{self.given[0]}. {self.family} ({self.role})"


@dataclass(frozen=True)
class _Org:
    id: str
    name: str
    system: str
    value: str


GENERAL_PRACTITIONERS: tuple[_Person, ...] = (
    _Person("huisarts-1", "Anna", "Jansen", "01999001", "huisarts"),
    _Person("huisarts-2", "Bram", "Visser", "01999002", "huisarts"),
    _Person("huisarts-3", "Fatima", "El Amrani", "01999003", "huisarts"),
)
SPECIALIST = _Person("specialist-1", "Karin", "Meijer", "03999001", "internist")
INSURERS: tuple[_Org, ...] = (
    _Org("zorgverzekeraar-1", "Zorgverzekeraar Speeltuin U.A.", spec.UZOVI_SYSTEM, "9901"),
    _Org("zorgverzekeraar-2", "Test Zorgverzekeringen N.V.", spec.UZOVI_SYSTEM, "9902"),
)
HOSPITAL_URA = "90000001"
HOSPITAL = _Org("ziekenhuis-speeltuin", "Ziekenhuis De Speeltuin", spec.URA_SYSTEM, HOSPITAL_URA)


def _practitioner(person: _Person) -> dict:
    return {
        "resourceType": "Practitioner", "id": person.id, "meta": {"profile": [PRACTITIONER_PROFILE]},
        "identifier": [{"system": spec.AGB_SYSTEM, "value": person.agb}],
        "name": [{"use": "official", "text": f"{person.given} {person.family}",
                  "family": person.family, "given": [person.given]}],
    }


def _organization(org: _Org, type_: dict | None = None) -> dict:
    resource = {"resourceType": "Organization", "id": org.id, "meta": {"profile": [ORGANIZATION_PROFILE]},
                "identifier": [{"system": org.system, "value": org.value}], "active": True, "name": org.name}
    if type_ is not None:
        resource["type"] = [type_]
    return resource


def shared_resources(*, now: datetime) -> list[dict]:
    """Resources the patients reference in common (`now` is accepted for symmetry; nothing here is dated)."""
    del now
    return ([_practitioner(p) for p in GENERAL_PRACTITIONERS] + [_practitioner(SPECIALIST)]
            + [_organization(o) for o in INSURERS]
            + [_organization(HOSPITAL, _cc(ORGANIZATION_TYPE_SYSTEM, "V4", "Ziekenhuis"))])


# --- element helpers ---------------------------------------------------------------------------
def _coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


def _cc(system: str, code: str, display: str, text: str | None = None) -> dict:
    return {"coding": [_coding(system, code, display)], "text": text or display}


def _qty(value: float | int, unit: str, code: str | None = None) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": code or unit}


def _ref(resource_type: str, resource_id: str, display: str) -> dict:
    return {"reference": f"{resource_type}/{resource_id}", "display": display}


def _ref_to(resource: dict, display: str) -> dict:
    return _ref(resource["resourceType"], resource["id"], display)


def _person_ref(person: _Person) -> dict:
    return _ref("Practitioner", person.id, person.display)


def _org_ref(org: _Org) -> dict:
    return _ref("Organization", org.id, org.name)


# --- per-patient context -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Theme:
    problem: tuple[str, str, str]  # system, code, display
    problem_text: str
    department: str


THEMES: tuple[_Theme, ...] = (
    _Theme((SNOMED, "84114007", "Heart failure"), "Hartfalen", "cardiologie"),
    _Theme((SNOMED, "44054006", "Diabetes mellitus type 2"), "Diabetes mellitus type 2", "interne geneeskunde"),
    _Theme((SNOMED, "13645005", "Chronic obstructive lung disease"), "COPD", "longziekten"),
)


@dataclass(frozen=True)
class _Ctx:
    patient: TestPatient
    anchor: datetime  # aware; the "now" of this patient's record

    @property
    def bsn(self) -> str:
        return self.patient.bsn

    @property
    def seed(self) -> int:
        return int(self.bsn)

    def id(self, kind: str, n: int | None = None) -> str:
        return f"{kind}-{self.bsn}" if n is None else f"{kind}-{self.bsn}-{n}"

    @property
    def subject(self) -> dict:
        return _ref("Patient", patient_id(self.patient), self.patient.display_name)

    @property
    def gp(self) -> _Person:
        return GENERAL_PRACTITIONERS[self.seed % len(GENERAL_PRACTITIONERS)]

    @property
    def insurer(self) -> _Org:
        return INSURERS[self.seed % len(INSURERS)]

    @property
    def theme(self) -> _Theme:
        return THEMES[self.seed % len(THEMES)]

    def at(self, days: int, hour: int = 9, minute: int = 0) -> str:
        """dateTime with timezone, `days` from the anchor (negative: in the past)."""
        day = self.anchor.date() + timedelta(days=days)
        return datetime.combine(day, time(hour, minute), tzinfo=self.anchor.tzinfo).isoformat()

    def day(self, days: int) -> str:
        return (self.anchor.date() + timedelta(days=days)).isoformat()

    def resource(self, resource_type: str, kind: str, profile: str, n: int | None = None, *,
                 identifier: bool = True, **elements: object) -> dict:
        rid = self.id(kind, n)
        resource: dict = {"resourceType": resource_type, "id": rid, "meta": {"profile": [profile]}}
        if identifier:
            value = {"system": LOCAL_ID_SYSTEM, "value": rid}
            # STU3 gives a few types a single identifier (0..1) instead of a list
            resource["identifier"] = value if resource_type in _SINGLE_IDENTIFIER else [value]
        resource.update(elements)
        return resource


_SINGLE_IDENTIFIER = {"Consent", "DocumentManifest", "QuestionnaireResponse", "Composition"}


def patient_id(patient: TestPatient) -> str:
    """The FHIR id of the patient's Patient resource."""
    return f"patient-{patient.bsn}"


def _anchor(patient: TestPatient, now: datetime) -> datetime:
    now = now.replace(microsecond=0)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if patient.deceased:
        death = datetime.combine(date.fromisoformat(patient.deceased), time(12, 0), tzinfo=now.tzinfo)
        return min(now, death)
    return now


# --- builders, one per BgZ query ---------------------------------------------------------------
_NAME_PREFIXES = ("van der", "van den", "van de", "van", "de", "du", "den", "der", "ter", "ten", "te", "in 't")


def _human_name(patient: TestPatient) -> dict:
    family: dict = {"family": patient.family}
    extensions = []
    for prefix in sorted(_NAME_PREFIXES, key=len, reverse=True):
        if patient.family.lower().startswith(prefix + " "):
            extensions.append({"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
                               "valueString": patient.family[:len(prefix)]})
            own = patient.family[len(prefix) + 1:]
            break
    else:
        own = patient.family
    extensions.append({"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-name", "valueString": own})
    family["_family"] = {"extension": extensions}
    return {"use": "official", "text": patient.display_name, **family, "given": [patient.given]}


def _patient(ctx: _Ctx) -> list[dict]:
    p = ctx.patient
    resource = {
        "resourceType": "Patient", "id": patient_id(p), "meta": {"profile": [_profile(1)]},
        "identifier": [{"use": "official", "system": BSN_SYSTEM, "value": p.bsn}],
        "active": True,
        "name": [_human_name(p)],
        "gender": "female" if p.sex == "F" else "male",
        "birthDate": p.birth_date,
    }
    if p.address:
        resource["address"] = [{"use": "home", "line": [p.address.line], "postalCode": p.address.postal_code,
                                "city": p.address.city, "country": "NL"}]
    if p.deceased:
        resource["deceasedDateTime"] = p.deceased
    else:
        resource["deceasedBoolean"] = False
    resource["generalPractitioner"] = [_person_ref(ctx.gp)]
    resource["managingOrganization"] = _org_ref(HOSPITAL)
    return [resource]


def _coverage(ctx: _Ctx) -> list[dict]:
    year = ctx.anchor.year
    end = ctx.day(0) if ctx.patient.deceased else f"{year}-12-31"
    return [ctx.resource(
        "Coverage", "coverage", _profile(2),
        status="active",
        type=_cc("urn:oid:2.16.840.1.113883.2.4.3.11.60.101.5.1", "B", "Basis verzekerd"),
        subscriber=ctx.subject, beneficiary=ctx.subject,
        period={"start": f"{year}-01-01", "end": end},
        payor=[_org_ref(ctx.insurer)],
    )]


def _treatment_directive(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Consent", "behandelaanwijzing", _profile(3),
        extension=[{"url": spec.NICTIZ_SD + "zib-TreatmentDirective-Treatment",
                    "valueCodeableConcept": _cc(SNOMED, "89666000", "Cardiopulmonary resuscitation",
                                                "Reanimatie")}],
        modifierExtension=[{"url": spec.NICTIZ_SD + "zib-TreatmentDirective-TreatmentPermitted",
                            "valueCodeableConcept": _cc("urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4", "NEE",
                                                        "Nee")}],
        status="active",
        category=[_cc(SNOMED, "11291000146105", "Treatment instructions", "Behandelaanwijzing")],
        patient=ctx.subject,
        dateTime=ctx.at(-120, 11, 30),
        period={"start": ctx.at(-120, 11, 30)},
        policy=[{"uri": "https://wetten.overheid.nl/"}],
    )]


def _advance_directive(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Consent", "wilsverklaring", _profile(4),
        status="active",
        category=[_cc(SNOMED, "11341000146107", "Living will and advance directive record", "Wilsverklaring"),
                  _cc("urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.14.1", "NR", "Niet reanimeren verklaring")],
        patient=ctx.subject,
        dateTime=ctx.at(-400, 14, 0),
        policy=[{"uri": "https://wetten.overheid.nl/"}],
    )]


def _functional_status(ctx: _Ctx) -> list[dict]:
    functional = _cc(SNOMED, "118228005", "Functional finding", "Functionele bevinding")
    mental = _cc(SNOMED, "384821006", "Mental state, behavior and/or psychosocial function finding",
                 "Mentaal functioneren")

    def obs(n: int, category: dict, code: dict, value: dict, days: int) -> dict:
        return ctx.resource("Observation", "functioneren", _profile(5), n, status="final", category=[category],
                            code=code, subject=ctx.subject, effectiveDateTime=ctx.at(days, 10, 0),
                            valueCodeableConcept=value)

    walking = _cc(ICF_NL, "d450", "Lopen")
    return [
        obs(1, functional, walking, _cc(ICF_NL, "d450.1", "LICHTE beperking"), -180),
        obs(2, functional, walking, _cc(ICF_NL, "d450.2", "MATIGE beperking"), -20),
        obs(3, mental, _cc(ICF_NL, "b144", "Functies van het geheugen"),
            _cc(ICF_NL, "b144.1", "LICHTE stoornis"), -20),
    ]


def _problems(ctx: _Ctx) -> list[dict]:
    system, code, display = ctx.theme.problem
    diagnosis = _cc(SNOMED, "282291009", "Diagnosis", "Diagnose")
    return [
        ctx.resource("Condition", "probleem", _profile(6), 1, clinicalStatus="active",
                     verificationStatus="confirmed", category=[diagnosis],
                     code=_cc(system, code, display, ctx.theme.problem_text), subject=ctx.subject,
                     onsetDateTime=ctx.at(-900), assertedDate=ctx.day(-900)),
        ctx.resource("Condition", "probleem", _profile(6), 2, clinicalStatus="inactive",
                     verificationStatus="confirmed", category=[diagnosis],
                     code=_cc(SNOMED, "239873007", "Osteoarthritis of knee", "Gonartrose links"),
                     subject=ctx.subject, onsetDateTime=ctx.at(-2000), abatementDateTime=ctx.at(-1500)),
    ]


def _living_situation(ctx: _Ctx) -> list[dict]:
    code = _cc(SNOMED, "365508006", "Residence and accommodation circumstances", "Woonsituatie")
    house = _cc("urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.13.1", "EENGEZW", "Eengezinswoning")
    return [
        ctx.resource("Observation", "woonsituatie", _profile(7), 1, status="final", code=code,
                     subject=ctx.subject, effectiveDateTime=ctx.at(-700, 11), valueCodeableConcept=house,
                     comment="Woont samen met partner."),
        ctx.resource("Observation", "woonsituatie", _profile(7), 2, status="final", code=code,
                     subject=ctx.subject, effectiveDateTime=ctx.at(-30, 11), valueCodeableConcept=house,
                     comment="Woont sinds kort alleen; trap naar de slaapkamer."),
    ]


def _drug_use(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Observation", "drugsgebruik", _profile(8), status="final",
        code=_cc(SNOMED, "228366006", "Finding relating to drug misuse behavior", "Drugsgebruik"),
        subject=ctx.subject, effectivePeriod={"start": ctx.day(-6000), "end": ctx.day(-5000)},
        valueCodeableConcept=_cc(SNOMED, "44870007", "Misused drugs in past", "Gebruikte in het verleden drugs"),
    )]


def _alcohol_use(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Observation", "alcoholgebruik", _profile(9), status="final",
        code=_cc(SNOMED, "228273003", "Finding relating to alcohol drinking behavior", "Alcoholgebruik"),
        subject=ctx.subject, effectivePeriod={"start": ctx.day(-4000)},
        valueCodeableConcept=_cc(SNOMED, "219006", "Current drinker of alcohol", "Drinkt alcohol"),
        component=[{"code": _cc(SNOMED, "160573003", "Alcohol intake", "Alcoholconsumptie"),
                    "valueQuantity": _qty(4, "glasses per week", "{glasses}/wk")}],
    )]


def _tobacco_use(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Observation", "tabakgebruik", _profile(10), status="final",
        code=_cc(SNOMED, "365980008", "Finding of tobacco use and exposure", "Tabakgebruik"),
        subject=ctx.subject, effectivePeriod={"start": ctx.day(-9000), "end": ctx.day(-3000)},
        valueCodeableConcept=_cc(SNOMED, "8517006", "Ex-smoker", "Voormalig roker"),
    )]


def _nutrition_advice(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "NutritionOrder", "voedingsadvies", _profile(11), status="active", patient=ctx.subject,
        dateTime=ctx.at(-60, 13), orderer=_person_ref(SPECIALIST),
        oralDiet={"type": [{"text": "Natriumbeperkt dieet (2 gram natrium per dag)"}],
                  "fluidConsistencyType": [{"text": "Normaal"}]},
    )]


def _alert(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Flag", "alert", _profile(12), status="active",
        category=_cc(LOINC, "75323-6", "Condition", "Aandoening"),  # 0..1 in STU3
        code=_cc(SNOMED, "129839007", "At risk for falls", "Verhoogd valrisico"),
        subject=ctx.subject, period={"start": ctx.at(-90)},
    )]


def _allergy(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "AllergyIntolerance", "allergie", _profile(13), clinicalStatus="active",
        verificationStatus="confirmed", category=["medication"], criticality="high",
        code=_cc(SNOMED, "764146007", "Penicillin", "Penicilline"),
        patient=ctx.subject, onsetDateTime=ctx.at(-3000), assertedDate=ctx.at(-3000, 10),
        reaction=[{"manifestation": [_cc(SNOMED, "271807003", "Eruption of skin", "Huiduitslag")],
                   "severity": "moderate"}],
    )]


_PRODUCTS = {
    "paracetamol": ("67903", "2194", "PARACETAMOL TABLET 500MG"),
    "metoclopramide": ("6939", "63630", "METOCLOPRAMIDE ZETPIL 20MG"),
}


def _medication(ctx: _Ctx, product: str, profile: str) -> dict:
    prk, gpk, name = _PRODUCTS[product]
    return ctx.resource("Medication", f"geneesmiddel-{product}", profile, identifier=False,
                        code={"coding": [_coding(GSTD_PRK, prk, name), _coding(GSTD_GPK, gpk, name)],
                              "text": name})


def _dosage(text: str, route: tuple[str, str]) -> dict:
    return {"sequence": 1, "text": text, "route": _cc(GSTD_ROUTE, route[0], route[1])}


def _medication_use(ctx: _Ctx) -> list[dict]:
    medication = _medication(ctx, "paracetamol", _profile(14, 1))
    statement = ctx.resource(
        "MedicationStatement", "medicatiegebruik", _profile(14), status="active",
        category=_cc(MEDICATION_CATEGORY_SYSTEM, "6", "Medicatiegebruik"),
        medicationReference=_ref_to(medication, _PRODUCTS["paracetamol"][2]),
        effectivePeriod={"start": ctx.at(-45)}, dateAsserted=ctx.at(-10, 14), subject=ctx.subject,
        taken="y", dosage=[_dosage("Zo nodig 3 maal per dag 1 stuk, oraal", ("9", "ORAAL"))],
    )
    return [statement, medication]


def _medication_agreement(ctx: _Ctx) -> list[dict]:
    medication = _medication(ctx, "metoclopramide", _profile(15, 1))
    request = ctx.resource(
        "MedicationRequest", "medicatieafspraak", _profile(15),
        extension=[{"url": spec.NICTIZ_SD + "zib-Medication-PeriodOfUse",
                    "valuePeriod": {"start": ctx.at(-14), "end": ctx.at(16)}}],
        status="active", intent="order",
        category=_cc(SNOMED, "16076005", "Prescription", "Medicatieafspraak"),
        medicationReference=_ref_to(medication, _PRODUCTS["metoclopramide"][2]),
        subject=ctx.subject, authoredOn=ctx.at(-14, 10, 30),
        requester={"agent": _person_ref(SPECIALIST)},
        dosageInstruction=[_dosage("Zo nodig 1 maal per dag 1 zetpil, rectaal", ("12", "RECTAAL"))],
    )
    return [request, medication]


def _administration_agreement(ctx: _Ctx) -> list[dict]:
    medication = _medication(ctx, "metoclopramide", _profile(16, 1))
    dispense = ctx.resource(
        "MedicationDispense", "toedieningsafspraak", _profile(16),
        extension=[{"url": spec.NICTIZ_SD + "zib-AdministrationAgreement-AuthoredOn",
                    "valueDateTime": ctx.at(-13, 16)}],
        category=_cc(SNOMED, "422037009", "Provider medication administration instructions",
                     "Toedieningsafspraak"),
        medicationReference=_ref_to(medication, _PRODUCTS["metoclopramide"][2]),
        subject=ctx.subject,
        performer=[{"actor": _org_ref(HOSPITAL)}],
        dosageInstruction=[_dosage("1 maal per dag 1 zetpil, rectaal", ("12", "RECTAAL"))],
    )
    return [dispense, medication]


def _device(ctx: _Ctx, kind: str, profile: str, type_: dict) -> dict:
    return ctx.resource("Device", kind, profile, status="active", type=type_, patient=ctx.subject)


def _medical_device(ctx: _Ctx) -> list[dict]:
    device = _device(ctx, "hulpmiddel-knieprothese", _profile(17, 1),
                     _cc(SNOMED, "109228008", "Knee joint prosthesis", "Knieprothese"))
    use = ctx.resource(
        "DeviceUseStatement", "hulpmiddelgebruik", _profile(17), status="active", subject=ctx.subject,
        whenUsed={"start": ctx.at(-1500)}, device=_ref_to(device, "Knieprothese"),
        bodySite=_cc(SNOMED, "72696002", "Knee region structure", "Knie links"),
    )
    return [use, device]


def _vaccination(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Immunization", "vaccinatie", _profile(18), status="completed", notGiven=False,
        vaccineCode=_cc(ATC, "J07BB02", "influenza, inactivated, split virus or surface antigen", "Griepvaccin"),
        patient=ctx.subject, date=ctx.at(-150, 15), primarySource=True,
        practitioner=[{"actor": _person_ref(ctx.gp)}],
    )]


def _vital_sign(ctx: _Ctx, kind: str, number: int, n: int, code: dict, days: int, **value: object) -> dict:
    return ctx.resource(
        "Observation", kind, _profile(number), n, status="final",
        category=[_cc("http://hl7.org/fhir/observation-category", "vital-signs", "Vital Signs")],
        code=code, subject=ctx.subject, effectiveDateTime=ctx.at(days, 9, 15), **value)


def _blood_pressure(ctx: _Ctx) -> list[dict]:
    code = _cc(LOINC, "85354-9", "Blood pressure panel with all children optional", "Bloeddruk")

    def components(systolic: int, diastolic: int) -> list[dict]:
        return [{"code": _cc(LOINC, "8480-6", "Systolic blood pressure", "Systolische bloeddruk"),
                 "valueQuantity": _qty(systolic, "mmHg", "mm[Hg]")},
                {"code": _cc(LOINC, "8462-4", "Diastolic blood pressure", "Diastolische bloeddruk"),
                 "valueQuantity": _qty(diastolic, "mmHg", "mm[Hg]")}]

    base = 120 + ctx.seed % 25
    return [_vital_sign(ctx, "bloeddruk", 19, 1, code, -90, component=components(base + 12, 88)),
            _vital_sign(ctx, "bloeddruk", 19, 2, code, -7, component=components(base, 80))]


def _body_weight(ctx: _Ctx) -> list[dict]:
    code = _cc(LOINC, "29463-7", "Body weight", "Lichaamsgewicht")
    kg = 60 + ctx.seed % 30
    return [_vital_sign(ctx, "lichaamsgewicht", 20, 1, code, -90, valueQuantity=_qty(kg + 2, "kg")),
            _vital_sign(ctx, "lichaamsgewicht", 20, 2, code, -7, valueQuantity=_qty(kg, "kg"))]


def _body_height(ctx: _Ctx) -> list[dict]:
    code = {"coding": [_coding(LOINC, "8302-2", "Body height"), _coding(LOINC, "8308-9", "Body height --standing")],
            "text": "Lichaamslengte"}
    cm = (165 if ctx.patient.sex == "F" else 178) + ctx.seed % 10
    return [_vital_sign(ctx, "lichaamslengte", 21, 1, code, -800, valueQuantity=_qty(cm + 1, "cm")),
            _vital_sign(ctx, "lichaamslengte", 21, 2, code, -7, valueQuantity=_qty(cm, "cm"))]


def _laboratory(ctx: _Ctx) -> list[dict]:
    categories = [_cc(SNOMED, "49581000146104", "Laboratory test finding", "Laboratoriumuitslag"),
                  _cc(SNOMED, "275711006", "Serum chemistry test", "Klinische chemie")]
    specimens = {
        draw: ctx.resource("Specimen", "monster", _profile(22, 1), draw,
                           type=_cc(SNOMED, "119297000", "Blood specimen", "Bloed"), subject=ctx.subject,
                           collection={"collectedDateTime": ctx.at(days, 8, 5)})
        for draw, days in ((1, -200), (2, -10))
    }
    draw_days = {1: -200, 2: -10}

    def result(n: int, draw: int, code: dict, value: dict, low: float, high: float, **more: object) -> dict:
        return ctx.resource(
            "Observation", "labuitslag", _profile(22), n, status="final", category=categories, code=code,
            subject=ctx.subject, effectiveDateTime=ctx.at(draw_days[draw], 8, 5),
            issued=ctx.at(draw_days[draw], 11, 40), valueQuantity=value,
            specimen=_ref_to(specimens[draw], "Bloed"),
            referenceRange=[{"low": dict(value, value=low), "high": dict(value, value=high)}], **more)

    hb = _cc(LOINC, "59260-0", "Hemoglobin [Moles/volume] in Blood", "Hemoglobine")
    creatinine = _cc(LOINC, "14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "Kreatinine")
    egfr = _cc(LOINC, "62238-1", "Glomerular filtration rate/1.73 sq M.predicted by Creatinine-based "
                                 "formula (CKD-EPI)", "eGFR (CKD-EPI)")
    observations = [
        result(1, 1, hb, _qty(8.1, "mmol/L"), 7.5, 10.0),
        result(2, 1, creatinine, _qty(88, "umol/L"), 60, 110),
        result(3, 2, hb, _qty(7.2, "mmol/L"), 7.5, 10.0,
               interpretation=_cc("http://hl7.org/fhir/v2/0078", "L", "Low", "Laag")),
        result(4, 2, creatinine, _qty(131, "umol/L"), 60, 110,
               interpretation=_cc("http://hl7.org/fhir/v2/0078", "H", "High", "Hoog")),
    ]
    observations.append(result(5, 2, egfr, _qty(48, "mL/min/{1.73_m2}"), 60, 120,
                               related=[{"type": "derived-from",
                                         "target": _ref_to(observations[3], "Kreatinine")}]))
    return observations + list(specimens.values())


def _procedure(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Procedure", "verrichting", _profile(23), status="completed",
        category=_cc(SNOMED, "387713003", "Surgical procedure", "Chirurgische verrichting"),
        code=_cc(SNOMED, "609588000", "Total knee replacement", "Totale knieprothese links"),
        subject=ctx.subject, performedPeriod={"start": ctx.at(-1500, 8), "end": ctx.at(-1500, 10)},
        performer=[{"actor": _org_ref(HOSPITAL)}],
        bodySite=[_cc(SNOMED, "72696002", "Knee region structure", "Knie links")],
    )]


def _encounters(ctx: _Ctx) -> list[dict]:
    def encounter(n: int, class_code: str, class_display: str, start: str, end: str) -> dict:
        return ctx.resource(
            "Encounter", "contact", _profile(24), n, status="finished",
            **{"class": _coding(ACT_CODE, class_code, class_display)},
            subject=ctx.subject, participant=[{"individual": _person_ref(SPECIALIST)}],
            period={"start": start, "end": end},
            reason=[_cc(*ctx.theme.problem, ctx.theme.problem_text)],
            serviceProvider=_org_ref(HOSPITAL))

    return [encounter(1, "IMP", "inpatient encounter", ctx.at(-40, 14), ctx.at(-35, 11)),
            # outpatient visit: the class filter of query 24 must leave this one out
            encounter(2, "AMB", "ambulatory", ctx.at(-20, 10), ctx.at(-20, 10, 20))]


def _procedure_requests(ctx: _Ctx) -> list[dict]:
    def request(n: int, status: str, code: dict, days: int) -> dict:
        return ctx.resource("ProcedureRequest", "geplande-verrichting", _profile(25), n, status=status,
                            intent="order", code=code, subject=ctx.subject, occurrenceDateTime=ctx.at(days, 11),
                            requester={"agent": _person_ref(SPECIALIST)}, performer=_org_ref(HOSPITAL))

    return [request(1, "active", _cc(SNOMED, "40701008", "Echocardiography", "Echo van het hart"), 21),
            # completed: status=active must leave this one out
            request(2, "completed", _cc(SNOMED, "29303009", "Electrocardiographic procedure", "ECG"), -40)]


def _vaccination_recommendation(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "ImmunizationRecommendation", "vaccinatieadvies", _profile(26), patient=ctx.subject,
        recommendation=[{
            "date": ctx.at(-5),
            "vaccineCode": _cc(ATC, "J07BB02", "influenza, inactivated, split virus or surface antigen",
                               "Griepvaccin"),
            "forecastStatus": _cc("http://hl7.org/fhir/immunization-recommendation-status", "due", "Due",
                                  "Gepland"),
            "dateCriterion": [{"code": _cc("http://hl7.org/fhir/immunization-recommendation-date-criterion",
                                           "recommended", "Recommended", "Geadviseerd"),
                               "value": ctx.at(60)}],
        }],
    )]


def _device_request(ctx: _Ctx) -> list[dict]:
    device = _device(ctx, "hulpmiddel-hoortoestel", _profile(27, 1),
                     _cc(SNOMED, "6012004", "Hearing aid", "Hoortoestel"))
    request = ctx.resource(
        "DeviceRequest", "hulpmiddelafspraak", _profile(27), status="active",
        intent=_cc("http://hl7.org/fhir/request-intent", "order", "Order", "Opdracht"),
        codeReference=_ref_to(device, "Hoortoestel"), subject=ctx.subject,
        occurrenceDateTime=ctx.at(30, 10), authoredOn=ctx.at(-3, 16),
        requester={"agent": _person_ref(SPECIALIST)},
    )
    return [request, device]


def _appointment(ctx: _Ctx) -> list[dict]:
    return [ctx.resource(
        "Appointment", "afspraak", _profile(28), status="booked",
        description=f"Controle polikliniek {ctx.theme.department}",
        start=ctx.at(14, 10, 30), end=ctx.at(14, 10, 50), created=ctx.day(-20),
        participant=[{"actor": ctx.subject, "required": "required", "status": "accepted"},
                     {"actor": _person_ref(SPECIALIST), "required": "required", "status": "accepted"}],
    )]


Builder = Callable[[_Ctx], list[dict]]

BGZ_BUILDERS: dict[int, Builder] = {
    1: _patient, 2: _coverage, 3: _treatment_directive, 4: _advance_directive, 5: _functional_status,
    6: _problems, 7: _living_situation, 8: _drug_use, 9: _alcohol_use, 10: _tobacco_use,
    11: _nutrition_advice, 12: _alert, 13: _allergy, 14: _medication_use, 15: _medication_agreement,
    16: _administration_agreement, 17: _medical_device, 18: _vaccination, 19: _blood_pressure,
    20: _body_weight, 21: _body_height, 22: _laboratory, 23: _procedure, 24: _encounters,
    25: _procedure_requests, 26: _vaccination_recommendation, 27: _device_request, 28: _appointment,
}
SPARSE_QUERIES: tuple[int, ...] = (1, 2)  # a "sparse" patient: Patient (+ GP) and Coverage only


# --- documents ---------------------------------------------------------------------------------
def _nl_date(iso: str) -> str:
    year, month, day = iso[:10].split("-")
    return f"{day}-{month}-{year}"


def letter_text(patient: TestPatient, n: int, *, now: datetime) -> tuple[str, list[str]]:
    """(title, lines) of the patient's n-th referral letter (1-based)."""
    ctx = _Ctx(patient, _anchor(patient, now))
    written = ctx.day(-(patient.letters - n) * 7 - 1)
    reason = (ctx.theme.problem_text if patient.content == "full"
              else "analyse van aanhoudende vermoeidheid en gewichtsverlies")
    title = "Verwijsbrief" if n == 1 else f"Verwijsbrief (aanvulling {n - 1})"
    lines = [f"Datum: {_nl_date(written)}",
             f"Aan: polikliniek {ctx.theme.department}, {HOSPITAL.name}",
             "",
             "Geachte collega,",
             ""]
    if n == 1:
        lines += [f"Hierbij verwijs ik bovengenoemde patiënt(e) naar uw polikliniek voor {reason}.",
                  "De Basisgegevensset Zorg (BgZ) is via Twiin beschikbaar gesteld; medicatie, allergieën "
                  "en voorgeschiedenis vindt u daar."]
    else:
        lines += [f"In aanvulling op mijn eerdere verwijsbrief: de klachten (bij {reason}) zijn "
                  "toegenomen; graag een spoedige beoordeling.",
                  "Recente laboratoriumuitslagen zijn bijgevoegd in de BgZ."]
    lines += ["", "Met vriendelijke groet,", "",
              f"{SPECIALIST.given[0]}. {SPECIALIST.family}, {SPECIALIST.role}", HOSPITAL.name]
    return title, lines


def _documents(ctx: _Ctx, now: datetime) -> list[dict]:
    resources: list[dict] = []
    p = ctx.patient
    for n in range(1, p.letters + 1):
        title, lines = letter_text(p, n, now=now)
        pdf = referral_letter_pdf(p, title=title, lines=lines)
        binary_id = ctx.id("verwijsbrief-pdf", n)
        document_id = ctx.id("verwijsbrief", n)
        indexed = ctx.at(-(p.letters - n) * 7 - 1, 16, 45)
        resources.append(ctx.resource(
            "DocumentReference", "verwijsbrief", DOCUMENT_REFERENCE_PROFILE, n,
            masterIdentifier={"system": spec.RFC3986,
                              "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'speeltuin:' + document_id)}"},
            status="current",
            type={"coding": [dict(spec.REFERRAL_LETTER_TYPE)], "text": "Verwijsbrief"},
            subject=ctx.subject,
            created=indexed,
            indexed=indexed,
            author=[_person_ref(SPECIALIST)],
            custodian=_org_ref(HOSPITAL),
            description=title,
            content=[{"attachment": {
                "contentType": "application/pdf", "language": "nl", "url": f"Binary/{binary_id}",
                "size": len(pdf), "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),
                "title": f"{title} {p.display_name}",
            }}],
        ))
        resources.append({"resourceType": "Binary", "id": binary_id, "contentType": "application/pdf",
                          "content": base64.b64encode(pdf).decode("ascii")})
    return resources


# --- entry points -------------------------------------------------------------------------------
def patient_resources(patient: TestPatient, *, now: datetime) -> list[dict]:
    """All resources of one patient: BgZ content (per `patient.content`) and referral letters."""
    ctx = _Ctx(patient, _anchor(patient, now))
    numbers = sorted(BGZ_BUILDERS) if patient.content == "full" else SPARSE_QUERIES
    resources: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for number in numbers:
        for resource in BGZ_BUILDERS[number](ctx):
            key = (resource["resourceType"], resource["id"])
            if key not in seen:  # a Medication may serve several queries
                seen.add(key)
                resources.append(resource)
    resources.extend(_documents(ctx, now))
    return resources
