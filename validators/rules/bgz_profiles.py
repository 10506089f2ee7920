"""Profile facts of the BgZ resources (SPEC §6.2) and the answers to the BgZ queries (SPEC §6).

Each fact is a row of `PROFILE_FACTS`: the rule it enforces, a kind ("present", "coded", "fixed",
"extension", "component", "component-unit", "bsn") and its data (element path, accepted codes, a
value). A handful of small checkers interpret the kinds, so a new fact is a new row, not new code.
The facts' rules sit right above the table; `_check_profiles`, which applies it, declares them with
`@emits(*rules_in(PROFILE_FACTS))`.

Severity follows the source: facts SPEC §6.2 states are errors; facts taken from the query table of
SPEC §6 or seen consistently in the Nictiz zib2017 examples (SPEC §8) are warnings. Every resource
is also walked once for the coding-system rules of SPEC §6.2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal

from validators import spec
from validators.evidence import show
from validators.findings import Finding, Rule, emits, rule, rules_in
from validators.rules.identifiers import check_identifier

_REF = "SPEC §6.2"
_QUERY_REF = "SPEC §6"
_EXAMPLES_REF = "SPEC §6, §8"

# --- the facts ---------------------------------------------------------------------------------
Kind = Literal["present", "coded", "fixed", "extension", "component", "component-unit", "bsn"]


@dataclass(frozen=True)
class Fact:
    rule: Rule
    kind: Kind
    path: str  # dotted element path from the resource; lists along the way are searched
    codes: tuple[str, ...] = ()  # "system|code": one must occur (coded, component)
    value: str = ""  # fixed value, extension url, or UCUM unit code
    applies: Callable[[dict], bool] | None = None  # the fact holds only for resources this accepts


def _query_codes(number: int, param: str) -> tuple[str, ...]:
    """The `system|code` values query `number` filters `param` on: the codes the profile fixes."""
    query = next(q for q in spec.BGZ_QUERIES if q.number == number)
    return tuple(code for name, value in query.search.params if name == param for code in value.split(","))


def _is_insurance(coverage: dict) -> bool:
    """A Coverage paid by an insurer; self-paying (payor the patient or a relative) has no insurance period.

    The Nictiz example zib-Payer-02 (the patient pays) has no period at all, so SPEC's period.end
    applies to insurance only. A payor whose type cannot be told (urn:uuid, display only) counts as an insurer.
    """
    payors = coverage.get("payor")
    payors = payors if isinstance(payors, list) and payors else [None]
    return not all(_reference_type(p) in ("Patient", "RelatedPerson") for p in payors)


def _reference_type(reference: object) -> str | None:
    """The resource type of a relative or absolute literal reference (`Type/id[/_history/v]`)."""
    target = reference.get("reference") if isinstance(reference, dict) else None
    segments = target.split("/_history/")[0].split("/") if isinstance(target, str) else []
    return segments[-2] if len(segments) >= 2 else None


def _profile(name: str) -> str:
    return name if name.startswith("http") else spec.NICTIZ_SD + name


# --- the facts' rules and the facts ------------------------------------------------------------
PATIENT_BSN = rule("PROF-PATIENT-001", "warning", "nl-core-patient has no identifier in the BSN slice", _REF)
PROBLEM_STATUS = rule("PROF-PROBLEM-001", "error", "zib-Problem without clinicalStatus", _REF)
PROBLEM_CODE = rule("PROF-PROBLEM-002", "error", "zib-Problem without code", _REF)
PAYER_PAYOR = rule("PROF-PAYER-001", "error", "zib-Payer without payor", _REF)
PAYER_END = rule("PROF-PAYER-002", "error", "zib-Payer insurance without period.end", _REF)
TREATMENT_CATEGORY = rule("PROF-TREATMENT-001", "error", "zib-TreatmentDirective category is not SNOMED "
                          "11291000146105", _REF)
TREATMENT_PERMITTED = rule("PROF-TREATMENT-002", "error", "zib-TreatmentDirective without the modifierExtension "
                           "TreatmentPermitted", _REF)
ADVANCE_CATEGORY = rule("PROF-ADVANCE-001", "error", "zib-AdvanceDirective category is not SNOMED 11341000146107",
                        _REF)
ADVANCE_DATE = rule("PROF-ADVANCE-002", "error", "zib-AdvanceDirective without dateTime", _REF)
MEDUSE_CATEGORY = rule("PROF-MEDUSE-001", "error", "zib-MedicationUse category is not "
                       "2.16.840.1.113883.2.4.3.11.60.20.77.5.3|6", _REF)
MEDUSE_ASSERTED = rule("PROF-MEDUSE-002", "error", "zib-MedicationUse without dateAsserted", _REF)
AGREEMENT_INTENT = rule("PROF-MEDAGREE-001", "error", "zib-MedicationAgreement intent is not 'order'", _REF)
AGREEMENT_CATEGORY = rule("PROF-MEDAGREE-002", "error", "zib-MedicationAgreement category is not SNOMED 16076005",
                          _REF)
AGREEMENT_AUTHORED = rule("PROF-MEDAGREE-003", "error", "zib-MedicationAgreement without authoredOn", _REF)
ADMINISTRATION_CATEGORY = rule("PROF-ADMIN-001", "error", "zib-AdministrationAgreement category is not SNOMED "
                               "422037009", _REF)
BP_CODE = rule("PROF-BP-001", "error", "zib-BloodPressure code is not LOINC 85354-9", _REF)
BP_COMPONENTS = rule("PROF-BP-002", "error", "zib-BloodPressure lacks the systolic (8480-6) or diastolic (8462-4) "
                     "component", _REF)
BP_UNIT = rule("PROF-BP-003", "error", "zib-BloodPressure component value is not a quantity in mm[Hg]", _REF)
WEIGHT_VALUE = rule("PROF-WEIGHT-001", "error", "zib-BodyWeight without valueQuantity", _REF)
WEIGHT_CODE = rule("PROF-WEIGHT-002", "warning", "zib-BodyWeight code is not LOINC 29463-7", _QUERY_REF)
HEIGHT_CODE = rule("PROF-HEIGHT-001", "error", "zib-BodyHeight code is not LOINC 8302-2, 8306-3 or 8308-9", _REF)
HEIGHT_VALUE = rule("PROF-HEIGHT-002", "warning", "zib-BodyHeight without valueQuantity", _EXAMPLES_REF)
LAB_CATEGORY = rule("PROF-LAB-001", "error", "zib-LaboratoryTestResult-Observation category is not SNOMED "
                    "49581000146104 or 275711006", _REF)
ENCOUNTER_CLASS = rule("PROF-ENCOUNTER-001", "error", "zib-Encounter without class", _REF)
ENCOUNTER_SUBJECT = rule("PROF-ENCOUNTER-002", "error", "zib-Encounter without subject", _REF)
ENCOUNTER_START = rule("PROF-ENCOUNTER-003", "error", "zib-Encounter without period.start", _REF)
VACCINATION_DATE = rule("PROF-VACCINATION-001", "error", "zib-Vaccination without date", _REF)
# From the query table (the code a query asks for is the code the profile fixes) and the examples.
FUNCTIONAL_CATEGORY = rule("PROF-FUNCTIONAL-001", "warning", "zib-FunctionalOrMentalStatus category is not SNOMED "
                           "118228005 or 384821006", _QUERY_REF)
LIVING_CODE = rule("PROF-LIVING-001", "warning", "zib-LivingSituation code is not SNOMED 365508006", _QUERY_REF)
DRUG_CODE = rule("PROF-DRUG-001", "warning", "zib-DrugUse code is not SNOMED 228366006", _QUERY_REF)
ALCOHOL_CODE = rule("PROF-ALCOHOL-001", "warning", "zib-AlcoholUse code is not SNOMED 228273003", _QUERY_REF)
TOBACCO_CODE = rule("PROF-TOBACCO-001", "warning", "zib-TobaccoUse code is not SNOMED 365980008", _QUERY_REF)
ALLERGY_CODE = rule("PROF-ALLERGY-001", "warning", "zib-AllergyIntolerance without code (the causative agent)",
                    _EXAMPLES_REF)
PROCEDURE_CODE = rule("PROF-PROCEDURE-001", "warning", "zib-Procedure without code", _EXAMPLES_REF)
PRODUCT_CODE = rule("PROF-PRODUCT-001", "warning", "zib-Product without code", _EXAMPLES_REF)
DEVICE_TYPE = rule("PROF-DEVICE-001", "warning", "zib-MedicalDeviceProduct without type", _EXAMPLES_REF)
SPECIMEN_TYPE = rule("PROF-SPECIMEN-001", "warning", "zib-LaboratoryTestResult-Specimen without type", _EXAMPLES_REF)

PROFILE_FACTS: dict[str, tuple[Fact, ...]] = {
    spec.NL_CORE_PATIENT_PROFILE: (Fact(PATIENT_BSN, "bsn", "identifier"),),
    _profile("zib-Problem"): (Fact(PROBLEM_STATUS, "present", "clinicalStatus"), Fact(PROBLEM_CODE, "present", "code")),
    _profile("zib-Payer"): (Fact(PAYER_PAYOR, "present", "payor"),
                            Fact(PAYER_END, "present", "period.end", applies=_is_insurance)),
    _profile("zib-TreatmentDirective"): (
        Fact(TREATMENT_CATEGORY, "coded", "category", _query_codes(3, "category")),
        Fact(TREATMENT_PERMITTED, "extension", "modifierExtension", value=spec.TREATMENT_PERMITTED_URL)),
    _profile("zib-AdvanceDirective"): (Fact(ADVANCE_CATEGORY, "coded", "category", _query_codes(4, "category")),
                                       Fact(ADVANCE_DATE, "present", "dateTime")),
    _profile("zib-FunctionalOrMentalStatus"): (
        Fact(FUNCTIONAL_CATEGORY, "coded", "category", _query_codes(5, "category")),),
    _profile("zib-LivingSituation"): (Fact(LIVING_CODE, "coded", "code", _query_codes(7, "code")),),
    _profile("zib-DrugUse"): (Fact(DRUG_CODE, "coded", "code", _query_codes(8, "code")),),
    _profile("zib-AlcoholUse"): (Fact(ALCOHOL_CODE, "coded", "code", _query_codes(9, "code")),),
    _profile("zib-TobaccoUse"): (Fact(TOBACCO_CODE, "coded", "code", _query_codes(10, "code")),),
    _profile("zib-AllergyIntolerance"): (Fact(ALLERGY_CODE, "present", "code"),),
    _profile("zib-MedicationUse"): (Fact(MEDUSE_CATEGORY, "coded", "category", _query_codes(14, "category")),
                                    Fact(MEDUSE_ASSERTED, "present", "dateAsserted")),
    _profile("zib-MedicationAgreement"): (
        Fact(AGREEMENT_INTENT, "fixed", "intent", value="order"),
        Fact(AGREEMENT_CATEGORY, "coded", "category", _query_codes(15, "category")),
        Fact(AGREEMENT_AUTHORED, "present", "authoredOn")),
    _profile("zib-AdministrationAgreement"): (
        Fact(ADMINISTRATION_CATEGORY, "coded", "category", _query_codes(16, "category")),),
    _profile("zib-Product"): (Fact(PRODUCT_CODE, "present", "code"),),
    _profile("zib-MedicalDeviceProduct"): (Fact(DEVICE_TYPE, "present", "type"),),
    _profile("zib-Vaccination"): (Fact(VACCINATION_DATE, "present", "date"),),
    _profile("zib-BloodPressure"): (
        Fact(BP_CODE, "coded", "code", _query_codes(19, "code")),
        Fact(BP_COMPONENTS, "component", "component", (spec.BLOOD_PRESSURE_SYSTOLIC,)),
        Fact(BP_COMPONENTS, "component", "component", (spec.BLOOD_PRESSURE_DIASTOLIC,)),
        Fact(BP_UNIT, "component-unit", "component", (spec.BLOOD_PRESSURE_SYSTOLIC, spec.BLOOD_PRESSURE_DIASTOLIC),
             value=spec.BLOOD_PRESSURE_UNIT)),
    _profile("zib-BodyWeight"): (Fact(WEIGHT_VALUE, "present", "valueQuantity"),
                                 Fact(WEIGHT_CODE, "coded", "code", _query_codes(20, "code"))),
    _profile("zib-BodyHeight"): (Fact(HEIGHT_CODE, "coded", "code", _query_codes(21, "code")),
                                 Fact(HEIGHT_VALUE, "present", "valueQuantity")),
    _profile("zib-LaboratoryTestResult-Observation"): (Fact(LAB_CATEGORY, "coded", "category",
                                                            spec.LAB_CATEGORIES),),
    _profile("zib-LaboratoryTestResult-Specimen"): (Fact(SPECIMEN_TYPE, "present", "type"),),
    _profile("zib-Procedure"): (Fact(PROCEDURE_CODE, "present", "code"),),
    _profile("zib-Encounter"): (Fact(ENCOUNTER_CLASS, "present", "class"),
                                Fact(ENCOUNTER_SUBJECT, "present", "subject"),
                                Fact(ENCOUNTER_START, "present", "period.start")),
}
# Profiles with no fact beyond their resource type (base STU3 already requires their key elements).
for _url in spec.PROFILE_TYPES:
    PROFILE_FACTS.setdefault(_url, ())


# --- element access ----------------------------------------------------------------------------
def _values(node: object, path: str) -> list:
    """Every value at a dotted path, flattening lists on the way."""
    current = [node]
    for key in path.split("."):
        found: list = []
        for item in current:
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, list):
                found.extend(value)
            elif value is not None:
                found.append(value)
        current = found
    return current


def _has_content(value: object) -> bool:
    return value not in (None, "", {}, []) and not (isinstance(value, str) and not value.strip())


def _present(resource: dict, path: str) -> bool:
    """Present with a value, or as a primitive carrying only extensions (e.g. data-absent-reason)."""
    if any(_has_content(v) for v in _values(resource, path)):
        return True
    parent, _, last = path.rpartition(".")
    return any(_has_content(v) for v in _values(resource, f"{parent}._{last}" if parent else f"_{last}"))


def _codings(node: object) -> Iterator[str]:
    """`system|code` of a CodeableConcept's codings, or of a Coding itself."""
    if not isinstance(node, dict):
        return
    codings = node.get("coding") if isinstance(node.get("coding"), list) else [node]
    for coding in codings:
        if isinstance(coding, dict):
            yield f"{coding.get('system')}|{coding.get('code')}"


def _profile_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


# --- the checkers, one per kind ------------------------------------------------------------------
def _check_fact(fact: Fact, resource: dict, name: str, base: str) -> list[Finding]:
    where = f"{base}.{fact.path}"
    if fact.kind == "present":
        if _present(resource, fact.path):
            return []
        return [fact.rule.finding(f"{name} requires {fact.path}; it is absent (elements present: "
                                  f"{show(sorted(k for k in resource if not k.startswith('_')), 160)})", where)]
    if fact.kind == "coded":
        seen = [c for v in _values(resource, fact.path) for c in _codings(v)]
        if any(c in fact.codes for c in seen):
            return []
        return [fact.rule.finding(f"{name} {fact.path} codings {show(seen, 160)}; expected one of "
                                  f"{', '.join(fact.codes)}", where)]
    if fact.kind == "fixed":
        seen = _values(resource, fact.path)
        if seen and all(v == fact.value for v in seen):
            return []
        saw = "absent" if not seen else f"{show(seen[0] if len(seen) == 1 else seen)}"
        return [fact.rule.finding(f"{name} {fact.path} is {saw}; expected {fact.value!r}", where)]
    if fact.kind == "extension":
        urls = [e.get("url") for e in _values(resource, fact.path) if isinstance(e, dict)]
        if any(isinstance(e, dict) and e.get("url") == fact.value
               and any(k.startswith("value") and _has_content(v) for k, v in e.items())
               for e in _values(resource, fact.path)):
            return []
        return [fact.rule.finding(f"{name} needs {fact.path} {fact.value!r} with a value; saw urls {show(urls, 160)}",
                                  where)]
    if fact.kind == "component":
        return _check_component(fact, resource, name, where)
    if fact.kind == "component-unit":
        return _check_component_units(fact, resource, name, base)
    if fact.kind == "bsn":
        return _check_bsn_slice(fact, resource, name, base)
    raise ValueError(f"unknown fact kind {fact.kind!r}")  # a programming error in the table


def _check_component(fact: Fact, resource: dict, name: str, where: str) -> list[Finding]:
    codes = [c for comp in _values(resource, fact.path) if isinstance(comp, dict) for c in _codings(comp.get("code"))]
    if any(c in fact.codes for c in codes):
        return []
    return [fact.rule.finding(f"{name} has no component with code {' or '.join(fact.codes)} (component codes "
                              f"{show(codes, 160)})", where)]


def _check_component_units(fact: Fact, resource: dict, name: str, base: str) -> list[Finding]:
    findings: list[Finding] = []
    components = resource.get(fact.path)
    for i, comp in enumerate(components if isinstance(components, list) else []):
        if not isinstance(comp, dict) or not any(c in fact.codes for c in _codings(comp.get("code"))):
            continue
        quantity = comp.get("valueQuantity")
        where = f"{base}.{fact.path}[{i}]"
        if isinstance(quantity, dict):
            if quantity.get("system") != spec.UCUM or quantity.get("code") != fact.value:
                findings.append(fact.rule.finding(
                    f"{name} component value in {show(quantity.get('system'))}|{show(quantity.get('code'))}; "
                    f"expected {spec.UCUM}|{fact.value}", f"{where}.valueQuantity"))
        elif not _has_content(comp.get("dataAbsentReason")):
            kinds = sorted(k for k in comp if k.startswith("value"))
            findings.append(fact.rule.finding(f"{name} component has no valueQuantity (saw {show(kinds)}) and no "
                                              "dataAbsentReason", where))
    return findings


def _check_bsn_slice(fact: Fact, resource: dict, name: str, base: str) -> list[Finding]:
    """Every identifier meant as a Dutch one is checked (BSN 11-check, system spelling); a BSN should be there."""
    findings: list[Finding] = []
    identifiers = resource.get(fact.path)
    identifiers = identifiers if isinstance(identifiers, list) else []
    for i, identifier in enumerate(identifiers):
        findings.extend(check_identifier(identifier, f"{base}.{fact.path}[{i}]"))
    if not any(isinstance(i, dict) and i.get("system") == spec.BSN_SYSTEM for i in identifiers):
        systems = [i.get("system") for i in identifiers if isinstance(i, dict)]
        findings.append(fact.rule.finding(f"{name} has no identifier with system {spec.BSN_SYSTEM!r} (systems "
                                          f"{show(systems, 160)})", f"{base}.{fact.path}"))
    return findings


def _check_systems(resource: dict, base: str, findings: list[Finding]) -> None:
    """One pass over the resource (contained ones included) for the coding-system rules."""
    stack: list[tuple[object, str]] = [(resource, base)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            system = node.get("system")
            if isinstance(system, str) and "code" in node:  # a Coding (or Quantity), not an Identifier
                _check_system(system, f"{path}.system", findings)
            stack.extend((value, f"{path}.{key}") for key, value in reversed(node.items())
                         if isinstance(value, (dict, list)))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in reversed(list(enumerate(node)))
                         if isinstance(value, (dict, list)))


_CANONICAL_SYSTEMS = (spec.SNOMED, spec.LOINC, spec.ATC, spec.UCUM)
_NORMALISED = {s.lower(): s for s in _CANONICAL_SYSTEMS}


VALUE_SET_SYSTEM = rule("PROF-002", "error", "zib value-set OID (2.16.840.1.113883.2.4.3.11.60.40.2…) used as a "
                        "Coding system", _REF)
SYSTEM_SPELLING = rule("PROF-003", "warning", "SNOMED, LOINC, ATC or UCUM named by an OID or a variant of its URI",
                       _REF)


@emits(VALUE_SET_SYSTEM, SYSTEM_SPELLING)
def _check_system(system: str, location: str, findings: list[Finding]) -> None:
    prefix = spec.ZIB_VALUE_SET_OID_PREFIX
    if system == prefix or system.startswith(prefix + "."):
        findings.append(VALUE_SET_SYSTEM.finding(f"system {show(system, 100)} is a zib value-set OID; a Coding names "
                                                 "the code system the code comes from", location))
        return
    if system in _CANONICAL_SYSTEMS:
        return
    canonical = spec.CODE_SYSTEM_OIDS.get(system)
    if canonical is None:
        lowered = system.strip().lower().rstrip("/")
        canonical = _NORMALISED.get("http://" + lowered[8:] if lowered.startswith("https://") else lowered)
    if canonical is not None:
        findings.append(SYSTEM_SPELLING.finding(f"system {show(system, 100)}; FHIR names this code system "
                                                f"{canonical!r}", location))


# --- entry points ------------------------------------------------------------------------------
def claimed_profiles(resource: dict) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def check_resource(resource: dict, *, location: str = "") -> list[Finding]:
    """The SPEC §6.2 facts of every BgZ profile the resource claims, and the coding-system rules."""
    if not isinstance(resource, dict):
        return []
    base = location or str(resource.get("resourceType") or "Resource")
    findings: list[Finding] = []
    _check_profiles(resource, base, findings)
    contained = resource.get("contained")
    for i, inner in enumerate(contained if isinstance(contained, list) else []):
        if isinstance(inner, dict):
            _check_profiles(inner, f"{base}.contained[{i}]", findings)
    _check_systems(resource, base, findings)
    return findings


PROFILE_TYPE = rule("PROF-001", "error", "resource type does not fit the BgZ profile it claims", "SPEC §6, §6.2")


@emits(PROFILE_TYPE, *rules_in(PROFILE_FACTS))
def _check_profiles(resource: dict, base: str, findings: list[Finding]) -> None:
    rtype = resource.get("resourceType")
    for url in claimed_profiles(resource):
        facts = PROFILE_FACTS.get(url)
        if facts is None:
            continue
        name = _profile_name(url)
        expected = spec.PROFILE_TYPES[url]
        if rtype != expected:
            findings.append(PROFILE_TYPE.finding(f"{show(rtype)} claims {name}, a profile of {expected}",
                                                 f"{base}.meta.profile"))
            continue  # its facts are about another resource type
        for fact in facts:
            if fact.applies is None or fact.applies(resource):
                findings.extend(_check_fact(fact, resource, name, base))


_FILTER_PARAMS = frozenset({"category", "code", "status", "class"})  # each names the element it searches


MATCH_TYPE = rule("BGZ-001", "error", "query returned a match of another resource type than it asks for",
                  "SPEC §6, §6.1")
INCLUDE_TYPE = rule("BGZ-002", "error", "query returned an included resource of a type its _include parameters do "
                    "not name", "SPEC §6, §6.1")


@emits(MATCH_TYPE, INCLUDE_TYPE)
def check_query_result(bundle: dict, query: spec.BgzQuery) -> list[Finding]:
    """Only resources the query asks for (and its _include brings), each checked with `check_resource`."""
    if not isinstance(bundle, dict):
        return []  # bundle.check_searchset reports what is not a Bundle
    entries = bundle.get("entry")
    included = spec.include_types(query)
    filters = [(name, value) for name, value in query.search.params if name in _FILTER_PARAMS]
    findings: list[Finding] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        rtype = resource.get("resourceType")
        location = f"Bundle.entry[{i}].resource"
        if rtype == "OperationOutcome" or mode == "outcome":
            pass
        elif mode == "include":
            if rtype not in included:
                findings.append(INCLUDE_TYPE.finding(
                    f"included {show(rtype)}; {query.query!r} can include only {', '.join(sorted(included))}",
                    f"{location}.resourceType"))
        elif rtype != query.resource_type:
            findings.append(MATCH_TYPE.finding(f"{show(rtype)} returned as a match (search.mode {show(mode)}); "
                                               f"{query.query!r} asks for {query.resource_type}",
                                               f"{location}.resourceType"))
        else:
            _check_filters(resource, filters, location, findings)
        findings.extend(check_resource(resource, location=location))
    return findings


# A warning: variants of the queries (SPEC §6) may filter on other codes than the table's form.
MATCH_FILTER = rule("BGZ-003", "warning", "match resource does not satisfy the query's search parameters",
                    _QUERY_REF)


@emits(MATCH_FILTER)
def _check_filters(resource: dict, filters: list[tuple[str, str]], location: str, findings: list[Finding]) -> None:
    for name, value in filters:
        tokens = value.split(",")
        seen: list[str] = []
        for element in _values(resource, name):
            seen.extend([element] if isinstance(element, str) else _codings(element))
        if not any(_token_matches(token, candidate) for token in tokens for candidate in seen):
            findings.append(MATCH_FILTER.finding(f"{name} is {show(seen, 160)}; the query asks {name}={value}",
                                                 f"{location}.{name}"))


def _token_matches(token: str, candidate: str) -> bool:
    """A search token (`system|code` or `code`) against a plain code or a `system|code` of a coding."""
    if "|" not in token:
        return candidate == token or candidate.rpartition("|")[2] == token
    return candidate == token
