"""Facts of FHIR STU3 itself (not of SPEC.md): search parameters, include targets, media types.

The simulator's FHIR server, the validators, the proxy and the scenarios read these; nothing else restates them.
The search parameter table holds STU3's search parameters (names, types, element paths, reference targets) for the
resource types of the BgZ (SPEC §6) and of the hospital BgZ data sets.
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


# --- search parameters ------------------------------------------------------------------------
# The search parameters of the STU3 definitions (search-parameters.json of FHIR 3.0) for the resource types of the
# BgZ (SPEC §6) and of the hospital BgZ data sets. One line per parameter:
#
#     name  type  path[,path…]  [> Target …]
#
# type: token, reference, date, string, quantity, number or uri. A path is a dotted element path from the
# resource; `x[x]` is a choice element (any `xDateTime`, `xPeriod`, …); `telecom(system=email)` keeps only the
# elements whose child has that value. A reference parameter lists the resource types it may point at (`*`: any);
# a line that starts with `>` continues the list of the parameter above.
# Composite parameters and the special ones (`near`, `phonetic`, `deceased`) are left out: the server refuses them.
# Lines marked `# extra` are not in STU3's list but in the element set of the type; the BgZ queries
# (SPEC §6) use them.

ParamType = Literal["token", "reference", "date", "string", "quantity", "number", "uri"]
PARAM_TYPES: tuple[str, ...] = ("token", "reference", "date", "string", "quantity", "number", "uri")
ANY = ("*",)  # any resource type


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of a resource type: its type, element path(s) and, for references, the targets."""

    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # reference parameters only; ANY for any type


RefParam = SearchParam  # the older name: a reference parameter (paths and targets)

# Every resource type: Resource's own parameters (`_text`, `_content`, `_list`, `_has`, `_query` are not supported)
_COMMON = """
    _id           token      id
    _lastUpdated  date       meta.lastUpdated
    _profile      uri        meta.profile
    _tag          token      meta.tag
    _security     token      meta.security
"""
_ADDRESS = """
    address             string  address
    address-city        string  address.city
    address-country     string  address.country
    address-postalcode  string  address.postalCode
    address-state       string  address.state
    address-use         token   address.use
"""
_TELECOM = """
    email    token  telecom(system=email)
    phone    token  telecom(system=phone)
    telecom  token  telecom
"""
_CONTEXT = """
    context    reference  context  > Encounter EpisodeOfCare
    encounter  reference  context  > Encounter
"""
_REQUEST_AGENTS = "Device Organization Patient Practitioner RelatedPerson"

_SEARCH_TABLE: dict[str, str] = {
    "Patient": _ADDRESS + _TELECOM + """
        active                token      active
        animal-breed          token      animal.breed
        animal-species        token      animal.species
        birthdate             date       birthDate
        death-date            date       deceasedDateTime
        family                string     name.family
        gender                token      gender
        general-practitioner  reference  generalPractitioner   > Organization Practitioner
        given                 string     name.given
        identifier            token      identifier
        language              token      communication.language
        link                  reference  link.other            > Patient
        name                  string     name
        organization          reference  managingOrganization  > Organization
    """,
    "Practitioner": _ADDRESS + _TELECOM + """
        active         token   active
        communication  token   communication
        family         string  name.family
        gender         token   gender
        given          string  name.given
        identifier     token   identifier
        name           string  name
    """,
    "PractitionerRole": _TELECOM + """
        active        token      active
        date          date       period
        endpoint      reference  endpoint           > Endpoint
        identifier    token      identifier
        location      reference  location           > Location
        organization  reference  organization       > Organization
        practitioner  reference  practitioner       > Practitioner
        role          token      code
        service       reference  healthcareService  > HealthcareService
        specialty     token      specialty
    """,
    "Organization": _ADDRESS + """
        active      token      active
        endpoint    reference  endpoint    > Endpoint
        identifier  token      identifier
        name        string     name,alias
        partof      reference  partOf      > Organization
        type        token      type
    """,
    "RelatedPerson": _ADDRESS + _TELECOM + """
        active      token      active
        birthdate   date       birthDate
        gender      token      gender
        identifier  token      identifier
        name        string     name
        patient     reference  patient     > Patient
    """,
    "Location": _ADDRESS + """
        endpoint            reference  endpoint              > Endpoint
        identifier          token      identifier
        name                string     name,alias
        operational-status  token      operationalStatus
        organization        reference  managingOrganization  > Organization
        partof              reference  partOf                > Location
        status              token      status
        type                token      type
    """,
    "Coverage": """
        beneficiary    reference  beneficiary     > Patient
        class          string     grouping.class
        dependent      string     dependent
        group          string     grouping.group
        identifier     token      identifier
        payor          reference  payor           > Organization Patient RelatedPerson
        plan           string     grouping.plan
        policy-holder  reference  policyHolder    > Organization Patient RelatedPerson
        sequence       string     sequence
        status         token      status          # extra
        subclass       string     grouping.subClass
        subgroup       string     grouping.subGroup
        subplan        string     grouping.subPlan
        subscriber     reference  subscriber      > Patient RelatedPerson
        type           token      type
    """,
    "Consent": """
        action         token      except.action
        actor          reference  except.actor.reference  > CareTeam Device Group Organization Patient Practitioner
                                                          > RelatedPerson
        category       token      category
        consentor      reference  consentingParty         > Organization Patient Practitioner RelatedPerson
        data           reference  except.data.reference   > *
        date           date       dateTime
        identifier     token      identifier
        organization   reference  organization            > Organization
        patient        reference  patient                 > Patient
        period         date       period
        purpose        token      purpose
        securitylabel  token      securityLabel
        source         reference  sourceReference         > Consent Contract DocumentReference QuestionnaireResponse
        status         token      status
    """,
    "Observation": _CONTEXT + """
        based-on                      reference  basedOn        > CarePlan DeviceRequest ImmunizationRecommendation
                                                                > MedicationRequest NutritionOrder ProcedureRequest
                                                                > ReferralRequest
        category                      token      category
        code                          token      code
        combo-code                    token      code,component.code
        combo-data-absent-reason      token      dataAbsentReason,component.dataAbsentReason
        combo-value-concept           token      valueCodeableConcept,component.valueCodeableConcept
        combo-value-quantity          quantity   valueQuantity,component.valueQuantity
        component-code                token      component.code
        component-data-absent-reason  token      component.dataAbsentReason
        component-value-concept       token      component.valueCodeableConcept
        component-value-quantity      quantity   component.valueQuantity
        data-absent-reason            token      dataAbsentReason
        date                          date       effective[x]
        device                        reference  device         > Device DeviceMetric
        identifier                    token      identifier
        method                        token      method
        patient                       reference  subject        > Patient
        performer                     reference  performer      > Organization Patient Practitioner RelatedPerson
        related-target                reference  related.target > Observation QuestionnaireResponse Sequence
        related-type                  token      related.type
        specimen                      reference  specimen       > Specimen
        status                        token      status
        subject                       reference  subject        > Device Group Location Patient
        value-concept                 token      valueCodeableConcept
        value-date                    date       valueDateTime,valuePeriod
        value-quantity                quantity   valueQuantity
        value-string                  string     valueString
    """,
    "Condition": _CONTEXT + """
        abatement-age        quantity   abatementAge
        abatement-boolean    token      abatementBoolean
        abatement-date       date       abatementDateTime,abatementPeriod
        abatement-string     string     abatementString
        asserted-date        date       assertedDate
        asserter             reference  asserter          > Patient Practitioner RelatedPerson
        body-site            token      bodySite
        category             token      category
        clinical-status      token      clinicalStatus
        code                 token      code
        evidence             token      evidence.code
        evidence-detail      reference  evidence.detail   > *
        identifier           token      identifier
        onset-age            quantity   onsetAge
        onset-date           date       onsetDateTime,onsetPeriod
        onset-info           string     onsetString
        patient              reference  subject           > Patient
        severity             token      severity
        stage                token      stage.summary
        subject              reference  subject           > Group Patient
        verification-status  token      verificationStatus
    """,
    "NutritionOrder": """
        additive    token      enteralFormula.additiveType
        datetime    date       dateTime
        encounter   reference  encounter                        > Encounter
        formula     token      enteralFormula.baseFormulaType
        identifier  token      identifier
        oraldiet    token      oralDiet.type
        patient     reference  patient                          > Patient
        provider    reference  orderer                          > Practitioner
        status      token      status
        supplement  token      supplement.type
    """,
    "Flag": """
        author      reference  author     > Device Organization Patient Practitioner
        category    token      category   # extra
        code        token      code       # extra
        date        date       period
        encounter   reference  encounter  > Encounter
        identifier  token      identifier
        patient     reference  subject    > Patient
        status      token      status     # extra
        subject     reference  subject    > Group Location Medication Organization Patient PlanDefinition Practitioner
                                          > Procedure
    """,
    "AllergyIntolerance": """
        asserter             reference  asserter                  > Patient Practitioner RelatedPerson
        category             token      category
        clinical-status      token      clinicalStatus
        code                 token      code,reaction.substance
        criticality          token      criticality
        date                 date       assertedDate
        identifier           token      identifier
        last-date            date       lastOccurrence
        manifestation        token      reaction.manifestation
        onset                date       reaction.onset
        patient              reference  patient                   > Patient
        recorder             reference  recorder                  > Patient Practitioner
        route                token      reaction.exposureRoute
        severity             token      reaction.severity
        type                 token      type
        verification-status  token      verificationStatus
    """,
    "MedicationStatement": """
        category    token      category
        code        token      medicationCodeableConcept
        context     reference  context              > Encounter EpisodeOfCare
        effective   date       effective[x]
        identifier  token      identifier
        medication  reference  medicationReference  > Medication
        part-of     reference  partOf               > MedicationAdministration MedicationDispense MedicationStatement
                                                    > Observation Procedure
        patient     reference  subject              > Patient
        source      reference  informationSource    > Organization Patient Practitioner RelatedPerson
        status      token      status
        subject     reference  subject              > Group Patient
    """,
    "MedicationRequest": """
        authoredon          date       authoredOn
        category            token      category
        code                token      medicationCodeableConcept
        context             reference  context                       > Encounter EpisodeOfCare
        date                date       dosageInstruction.timing.event
        identifier          token      identifier
        intended-dispenser  reference  dispenseRequest.performer     > Organization
        intent              token      intent
        medication          reference  medicationReference           > Medication
        patient             reference  subject                       > Patient
        priority            token      priority
        requester           reference  requester.agent               > """ + _REQUEST_AGENTS + """
        status              token      status
        subject             reference  subject                       > Group Patient
    """,
    "MedicationDispense": """
        category          token      category                          # extra
        code              token      medicationCodeableConcept
        context           reference  context                           > Encounter EpisodeOfCare
        destination       reference  destination                       > Location
        identifier        token      identifier
        medication        reference  medicationReference               > Medication
        patient           reference  subject                           > Patient
        performer         reference  performer.actor                   > Device Organization Patient Practitioner
                                                                       > RelatedPerson
        prescription      reference  authorizingPrescription           > MedicationRequest
        receiver          reference  receiver                          > Patient Practitioner
        responsibleparty  reference  substitution.responsibleParty     > Practitioner
        status            token      status
        subject           reference  subject                           > Group Patient
        type              token      type
        whenhandedover    date       whenHandedOver
        whenprepared      date       whenPrepared
    """,
    "MedicationAdministration": """
        code              token      medicationCodeableConcept
        context           reference  context                 > Encounter EpisodeOfCare
        device            reference  device                  > Device
        effective-time    date       effective[x]
        identifier        token      identifier
        medication        reference  medicationReference     > Medication
        not-given         token      notGiven
        patient           reference  subject                 > Patient
        performer         reference  performer.actor         > Device Patient Practitioner RelatedPerson
        prescription      reference  prescription            > MedicationRequest
        reason-given      token      reasonCode
        reason-not-given  token      reasonNotGiven
        status            token      status
        subject           reference  subject                 > Group Patient
    """,
    "Medication": """
        code               token      code
        container          token      package.container
        form               token      form
        ingredient         reference  ingredient.itemReference             > Medication Substance
        ingredient-code    token      ingredient.itemCodeableConcept
        manufacturer       reference  manufacturer                         > Organization
        over-the-counter   token      isOverTheCounter
        package-item       reference  package.content.itemReference        > Medication
        package-item-code  token      package.content.itemCodeableConcept
        status             token      status
    """,
    "DeviceUseStatement": """
        device      reference  device      > Device
        identifier  token      identifier
        patient     reference  subject     > Patient
        subject     reference  subject     > Group Patient
    """,
    "Device": """
        device-name   string     udi.name,type.text,type.coding.display
        identifier    token      identifier
        location      reference  location                                > Location
        manufacturer  string     manufacturer
        model         string     model
        organization  reference  owner                                   > Organization
        patient       reference  patient                                 > Patient
        status        token      status
        type          token      type
        udi-carrier   string     udi.carrierHRF
        udi-di        string     udi.deviceIdentifier
        url           uri        url
    """,
    "Immunization": """
        date              date       date
        dose-sequence     number     vaccinationProtocol.doseSequence
        identifier        token      identifier
        location          reference  location                          > Location
        lot-number        string     lotNumber
        manufacturer      reference  manufacturer                      > Organization
        notgiven          token      notGiven
        patient           reference  patient                           > Patient
        practitioner      reference  practitioner.actor                > Practitioner
        reaction          reference  reaction.detail                   > Observation
        reaction-date     date       reaction.date
        reason            token      explanation.reason
        reason-not-given  token      explanation.reasonNotGiven
        status            token      status
        vaccine-code      token      vaccineCode
    """,
    "ImmunizationRecommendation": """
        date            date       recommendation.date
        dose-number     number     recommendation.doseNumber
        dose-sequence   number     recommendation.protocol.doseSequence
        identifier      token      identifier
        information     reference  recommendation.supportingPatientInformation  > AllergyIntolerance Observation
        patient         reference  patient                                      > Patient
        status          token      recommendation.forecastStatus
        support         reference  recommendation.supportingImmunization        > Immunization
        target-disease  token      recommendation.targetDisease
        vaccine-type    token      recommendation.vaccineCode
    """,
    "Specimen": """
        accession     token      accessionIdentifier
        bodysite      token      collection.bodySite
        collected     date       collection.collected[x]
        collector     reference  collection.collector     > Practitioner
        container     token      container.type
        container-id  token      container.identifier
        identifier    token      identifier
        parent        reference  parent                   > Specimen
        patient       reference  subject                  > Patient
        status        token      status
        subject       reference  subject                  > Device Group Patient Substance
        type          token      type
    """,
    "Substance": """
        category              token      category
        code                  token      code,ingredient.substanceCodeableConcept
        container-identifier  token      instance.identifier
        expiry                date       instance.expiry
        identifier            token      identifier
        quantity              quantity   instance.quantity
        status                token      status
        substance-reference   reference  ingredient.substanceReference            > Substance
    """,
    "Procedure": _CONTEXT + """
        based-on    reference  basedOn          > CarePlan ProcedureRequest ReferralRequest
        category    token      category
        code        token      code
        date        date       performed[x]
        definition  reference  definition       > ActivityDefinition HealthcareService PlanDefinition
        identifier  token      identifier
        location    reference  location         > Location
        part-of     reference  partOf           > MedicationAdministration Observation Procedure
        patient     reference  subject          > Patient
        performer   reference  performer.actor  > Device Organization Patient Practitioner RelatedPerson
        status      token      status
        subject     reference  subject          > Group Patient
    """,
    "Encounter": """
        appointment          reference  appointment                         > Appointment
        class                token      class
        date                 date       period
        diagnosis            reference  diagnosis.condition                 > Condition Procedure
        episodeofcare        reference  episodeOfCare                       > EpisodeOfCare
        identifier           token      identifier
        incomingreferral     reference  incomingReferral                    > ReferralRequest
        location             reference  location.location                   > Location
        location-period      date       location.period
        part-of              reference  partOf                              > Encounter
        participant          reference  participant.individual              > Practitioner RelatedPerson
        participant-type     token      participant.type
        patient              reference  subject                             > Patient
        practitioner         reference  participant.individual              > Practitioner
        reason               token      reason
        service-provider     reference  serviceProvider                     > Organization
        special-arrangement  token      hospitalization.specialArrangement
        status               token      status
        subject              reference  subject                             > Group Patient
        type                 token      type
    """,
    "EpisodeOfCare": """
        care-manager      reference  careManager           > Practitioner
        condition         reference  diagnosis.condition   > Condition
        date              date       period
        identifier        token      identifier
        incomingreferral  reference  referralRequest       > ReferralRequest
        organization      reference  managingOrganization  > Organization
        patient           reference  patient               > Patient
        status            token      status
        type              token      type
    """,
    "ProcedureRequest": _CONTEXT + """
        authored        date       authoredOn
        based-on        reference  basedOn          > *
        body-site       token      bodySite
        category        token      category         # extra
        code            token      code
        definition      reference  definition       > ActivityDefinition PlanDefinition
        identifier      token      identifier
        intent          token      intent
        occurrence      date       occurrence[x]
        patient         reference  subject          > Patient
        performer       reference  performer        > Device HealthcareService Organization Patient Practitioner
                                                    > RelatedPerson
        performer-type  token      performerType
        priority        token      priority
        replaces        reference  replaces         > ProcedureRequest
        requester       reference  requester.agent  > Device Organization Practitioner
        requisition     token      requisition
        specimen        reference  specimen         > Specimen
        status          token      status
        subject         reference  subject          > Device Group Location Patient
    """,
    "DeviceRequest": """
        authored-on       date       authoredOn
        based-on          reference  basedOn              > *
        code              token      codeCodeableConcept
        definition        reference  definition           > ActivityDefinition PlanDefinition
        device            reference  codeReference        > Device
        encounter         reference  context              > Encounter
        event-date        date       occurrence[x]
        group-identifier  token      groupIdentifier
        identifier        token      identifier
        intent            token      intent
        patient           reference  subject              > Patient
        performer         reference  performer            > Device HealthcareService Organization Patient Practitioner
                                                          > RelatedPerson
        priorrequest      reference  priorRequest         > *
        requester         reference  requester.agent      > Device Organization Practitioner
        status            token      status
        subject           reference  subject              > Device Group Location Patient
    """,
    "Appointment": """
        actor             reference  participant.actor   > Device HealthcareService Location Patient Practitioner
                                                         > RelatedPerson
        appointment-type  token      appointmentType
        date              date       start
        identifier        token      identifier
        incomingreferral  reference  incomingReferral    > ReferralRequest
        location          reference  participant.actor   > Location
        part-status       token      participant.status
        patient           reference  participant.actor   > Patient
        practitioner      reference  participant.actor   > Practitioner
        service-type      token      serviceType
        status            token      status
    """,
    "DocumentReference": """
        authenticator  reference  authenticator               > Organization Practitioner
        author         reference  author                      > Device Organization Patient Practitioner RelatedPerson
        class          token      class
        created        date       created
        custodian      reference  custodian                   > Organization
        description    string     description
        encounter      reference  context.encounter           > Encounter
        event          token      context.event
        facility       token      context.facilityType
        format         token      content.format
        identifier     token      masterIdentifier,identifier
        indexed        date       indexed
        language       token      content.attachment.language
        location       uri        content.attachment.url
        patient        reference  subject                     > Patient
        period         date       context.period
        related-id     token      context.related.identifier
        related-ref    reference  context.related.ref         > *
        relatesto      reference  relatesTo.target            > DocumentReference
        relation       token      relatesTo.code
        securitylabel  token      securityLabel
        setting        token      context.practiceSetting
        status         token      status
        subject        reference  subject                     > *
        type           token      type
    """,
    "DocumentManifest": """
        author       reference  author                       > Device Organization Patient Practitioner RelatedPerson
        content-ref  reference  content.pReference           > *
        created      date       created
        description  string     description
        identifier   token      masterIdentifier,identifier
        patient      reference  subject                      > Patient
        recipient    reference  recipient                    > Organization Patient Practitioner RelatedPerson
        related-id   token      related.identifier
        related-ref  reference  related.ref                  > *
        source       uri        source
        status       token      status
        subject      reference  subject                      > Device Group Patient Practitioner
        type         token      type
    """,
    "Provenance": """
        agent           reference  agent.whoReference   > Device Organization Patient Practitioner RelatedPerson
        agent-role      token      agent.role
        end             date       period.end
        entity-id       token      entity.whatIdentifier
        entity-ref      reference  entity.whatReference > *
        location        reference  location             > Location
        patient         reference  target               > Patient
        recorded        date       recorded
        signature-type  token      signature.type
        start           date       period.start
        target          reference  target               > *
    """,
    "CareTeam": _CONTEXT + """
        category     token      category
        date         date       period
        identifier   token      identifier
        participant  reference  participant.member  > CareTeam Organization Patient Practitioner RelatedPerson
        patient      reference  subject             > Patient
        status       token      status
        subject      reference  subject             > Group Patient
    """,
    "CarePlan": _CONTEXT + """
        activity-code       token      activity.detail.code
        activity-date       date       activity.detail.scheduledTiming,activity.detail.scheduledPeriod
        activity-reference  reference  activity.reference           > Appointment CommunicationRequest DeviceRequest
                                                                    > MedicationRequest NutritionOrder ProcedureRequest
                                                                    > ReferralRequest RequestGroup Task
                                                                    > VisionPrescription
        based-on            reference  basedOn                      > CarePlan
        care-team           reference  careTeam                     > CareTeam
        category            token      category
        condition           reference  addresses                    > Condition
        date                date       period
        definition          reference  definition                   > PlanDefinition Questionnaire
        goal                reference  goal                         > Goal
        identifier          token      identifier
        intent              token      intent
        part-of             reference  partOf                       > CarePlan
        patient             reference  subject                      > Patient
        performer           reference  activity.detail.performer    > CareTeam Organization Patient Practitioner
                                                                    > RelatedPerson
        replaces            reference  replaces                     > CarePlan
        status              token      status
        subject             reference  subject                      > Group Patient
    """,
    "Goal": """
        category     token      category
        identifier   token      identifier
        patient      reference  subject      > Patient
        start-date   date       startDate
        status       token      status
        subject      reference  subject      > Group Organization Patient
        target-date  date       target.dueDate
    """,
    "DiagnosticReport": _CONTEXT + """
        based-on    reference  basedOn          > CarePlan ImmunizationRecommendation MedicationRequest NutritionOrder
                                                > ProcedureRequest ReferralRequest
        category    token      category
        code        token      code
        date        date       effective[x]
        diagnosis   token      codedDiagnosis
        identifier  token      identifier
        image       reference  image.link       > Media
        issued      date       issued
        patient     reference  subject          > Patient
        performer   reference  performer.actor  > Organization Practitioner
        result      reference  result           > Observation
        specimen    reference  specimen         > Specimen
        status      token      status
        subject     reference  subject          > Device Group Location Patient
    """,
    "HealthcareService": """
        active          token      active
        category        token      category
        characteristic  token      characteristic
        endpoint        reference  endpoint        > Endpoint
        identifier      token      identifier
        location        reference  location        > Location
        name            string     name
        organization    reference  providedBy      > Organization
        programname     string     programName
        type            token      type
    """,
    # read only (SPEC §3 step 6): `GET [base]/Binary/<id>`; searching Binary is refused
    "Binary": "",
}

READ_ONLY_TYPES = frozenset({"Binary"})


def _parse_table(text: str) -> dict[str, SearchParam]:
    params: dict[str, SearchParam] = {}
    last: SearchParam | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(">"):  # more targets of the parameter above
            if last is None or last.type != "reference":
                raise ValueError(f"targets {line!r} follow no reference parameter")
            targets = last.targets + tuple(line[1:].split())
            last = params[last.name] = SearchParam(last.name, last.type, last.paths, targets)
            continue
        spec, _, targets = line.partition(">")
        name, kind, paths = spec.split()
        if kind not in PARAM_TYPES:
            raise ValueError(f"search parameter {name}: unknown type {kind!r}")
        if (kind == "reference") != bool(targets.strip()):
            raise ValueError(f"search parameter {name}: targets go with reference parameters, and only there")
        last = params[name] = SearchParam(name, kind, tuple(paths.split(",")),  # type: ignore[arg-type]
                                          tuple(targets.split()))
    return params


# resource type -> parameter name -> SearchParam (Resource's own parameters included)
SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    resource_type: {**_parse_table(_COMMON), **_parse_table(text)} for resource_type, text in _SEARCH_TABLE.items()
}

SEARCHABLE_TYPES = frozenset(t for t in SEARCH_PARAMS if t not in READ_ONLY_TYPES)
# Parameters that shape the answer's format, not which resources it holds.
IGNORED_SEARCH_PARAMS = frozenset({"_format"})
# Result parameters the server understands besides the search parameters (`max` only with Observation/$lastn).
RESULT_PARAMS = frozenset({"_include", "_revinclude", "_count", "_offset", "_sort", "max"})
# Modifiers per parameter type (`:missing` for all; a reference also takes `:<Type>`).
MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"missing", "not", "text"}),
    "reference": frozenset({"missing"}),
    "date": frozenset({"missing"}),
    "string": frozenset({"missing", "exact", "contains"}),
    "quantity": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "uri": frozenset({"missing"}),
}

# Compatible views for older callers: token parameters (name -> paths) and reference parameters (name -> RefParam).
TOKEN_PARAMS: dict[str, dict[str, tuple[str, ...]]] = {
    t: {n: p.paths for n, p in params.items() if p.type == "token"} for t, params in SEARCH_PARAMS.items()
}
REF_PARAMS: dict[str, dict[str, SearchParam]] = {
    t: {n: p for n, p in params.items() if p.type == "reference"} for t, params in SEARCH_PARAMS.items()
}


def search_params(resource_type: str) -> dict[str, SearchParam]:
    """The search parameters of a resource type (with `_id`, `_lastUpdated` …); empty for an unknown type."""
    return SEARCH_PARAMS.get(resource_type, {})


def token_params(resource_type: str) -> dict[str, tuple[str, ...]]:
    """The token search parameters of a searchable type (`_id` and, where STU3 has it, `identifier` included)."""
    return dict(TOKEN_PARAMS[resource_type])


def target_allowed(target_type: str, ref_param: SearchParam) -> bool:
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
