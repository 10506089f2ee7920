"""The sending side's clinical data and its FHIR STU3 search engine (SPEC §6, §6.1, §6.2, §5.4).

Every test patient of SPEC §7 (and any other BSN it is asked to notify about) gets a small BgZ: the
Patient, one Problem, one AllergyIntolerance, two body weights (so `$lastn` has something to choose),
one blood pressure and one referral letter (DocumentReference + Binary PDF). Other sections are empty.
"""
from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

from .task import BROKEN_ESCAPE, LOINC, SCT, STU3_TYPES, SYS_BSN, bsn_ok

NICTIZ = "http://nictiz.nl/fhir/StructureDefinition/"
UCUM = "http://unitsofmeasure.org"

# SPEC §7
TEST_PATIENTS: dict[str, dict[str, Any]] = {
    "999993653": {"given": ["Suzanne"], "family": "Moulin", "birthDate": "1985-12-01", "gender": "female"},
    "999990639": {"given": ["Mattheus"], "family": "du Burck", "birthDate": "1922-09-25", "gender": "male"},
    "999993872": {"given": ["Peter-Jan"], "family": "van der Meijden", "birthDate": "1959-04-17", "gender": "male"},
    "999991723": {"given": ["Lukas"], "family": "Klamer", "birthDate": "1995-05-15", "gender": "male"},
    "999992740": {"given": ["Jael"], "family": "de Jager", "birthDate": "2000-01-01", "gender": "female"},
    "999901370": {"given": ["H."], "family": "de Herder", "birthDate": "1985-12-16", "gender": "male"},
    "999901497": {"given": ["Ghaniya"], "family": "Çelik-Noermohamed", "birthDate": "1985-12-27",
                  "gender": "female", "deceased": "2018-07-01"},
    "999909587": {"given": ["Jan"], "family": "van Houten", "birthDate": "1954-07-25", "gender": "male"},
    "999911259": {"given": ["Michelle"], "family": "Bergzoon-Verheul", "birthDate": "1964-08-01", "gender": "female"},
}


class FhirError(Exception):
    """A refusal of the FHIR server: HTTP status, OperationOutcome issue code, diagnostics."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics


# ------------------------------------------------------------------------------------------------ the PDF

def _pdf_text(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(lines: list[str]) -> bytes:
    """A small but complete PDF 1.4: one page of Helvetica text, exact cross-reference table, %%EOF."""
    stream_lines = ["BT", "/F1 12 Tf", "72 760 Td", "16 TL"]
    for line in lines:
        stream_lines.append(f"({_pdf_text(line)}) Tj T*")
    stream_lines.append("ET")
    stream = "\n".join(stream_lines).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# ------------------------------------------------------------------------------------------------ the data

def _cc(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": text or display}


def patient_resources(bsn: str, organisation: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The BgZ resources and the letters (Binary id -> PDF) of one patient."""
    person = TEST_PATIENTS.get(bsn) or {"given": ["Testpersoon"], "family": f"Nummer {bsn[-4:]}",
                                        "birthDate": "1970-01-01", "gender": "unknown"}
    name = f"{' '.join(person['given'])} {person['family']}"
    pid = f"pat-{bsn}"
    subject = {"reference": f"Patient/{pid}", "display": name}
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": pid,
        "meta": {"profile": ["http://fhir.nl/fhir/StructureDefinition/nl-core-patient"]},
        "identifier": [{"system": SYS_BSN, "value": bsn}],
        "name": [{"text": name, "family": person["family"], "given": person["given"]}],
        "gender": person["gender"], "birthDate": person["birthDate"],
    }
    if person.get("deceased"):
        patient["deceasedDateTime"] = person["deceased"]
    condition = {
        "resourceType": "Condition", "id": f"cond-{bsn}-1", "meta": {"profile": [NICTIZ + "zib-Problem"]},
        "clinicalStatus": "active", "verificationStatus": "confirmed",
        "code": _cc(SCT, "38341003", "Hypertensive disorder, systemic arterial (disorder)", "Hypertensie"),
        "subject": subject, "onsetDateTime": "2019-03-14",
    }
    allergy = {
        "resourceType": "AllergyIntolerance", "id": f"allergy-{bsn}-1",
        "meta": {"profile": [NICTIZ + "zib-AllergyIntolerance"]},
        "clinicalStatus": "active", "verificationStatus": "confirmed", "category": ["medication"],
        "code": _cc(SCT, "91936005", "Allergy to penicillin (finding)", "Penicilline-allergie"),
        "patient": subject, "assertedDate": "2015-06-02",
    }
    vital = [_cc("http://hl7.org/fhir/observation-category", "vital-signs", "Vital Signs")]
    weights = [{
        "resourceType": "Observation", "id": f"weight-{bsn}-{n}", "meta": {"profile": [NICTIZ + "zib-BodyWeight"]},
        "status": "final", "category": vital, "code": _cc(LOINC, "29463-7", "Body weight", "Lichaamsgewicht"),
        "subject": subject, "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "kg", "system": UCUM, "code": "kg"},
    } for n, when, value in ((1, "2024-01-10T09:30:00+01:00", 71.5), (2, "2025-03-02T10:15:00+01:00", 70.2))]
    pressure = {
        "resourceType": "Observation", "id": f"bp-{bsn}-1", "meta": {"profile": [NICTIZ + "zib-BloodPressure"]},
        "status": "final", "category": vital,
        "code": _cc(LOINC, "85354-9", "Blood pressure panel with all children optional", "Bloeddruk"),
        "subject": subject, "effectiveDateTime": "2025-03-02T10:20:00+01:00",
        "component": [
            {"code": _cc(LOINC, "8480-6", "Systolic blood pressure", "Systolische bloeddruk"),
             "valueQuantity": {"value": 138, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
            {"code": _cc(LOINC, "8462-4", "Diastolic blood pressure", "Diastolische bloeddruk"),
             "valueQuantity": {"value": 86, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
        ],
    }
    binary_id = f"letter-{bsn}-1-pdf"
    pdf = make_pdf([f"Verwijsbrief - {organisation}", f"Patient: {name}", f"BSN: {bsn}",
                    f"Geboren: {person['birthDate']}", "Reden van verwijzing: hypertensie, beoordeling cardioloog."])
    letter = {
        "resourceType": "DocumentReference", "id": f"letter-{bsn}-1", "status": "current",
        "type": _cc(LOINC, "57133-1", "Referral note", "Verwijsbrief"),
        "subject": subject, "indexed": "2025-03-02T11:00:00+01:00", "description": "Verwijsbrief",
        "content": [{"attachment": {"contentType": "application/pdf", "url": f"Binary/{binary_id}",
                                    "size": len(pdf), "title": "Verwijsbrief"}}],
    }
    return [patient, condition, allergy, *weights, pressure, letter], {binary_id: pdf}


# ------------------------------------------------------------------------------------------------ search

# token parameters: name -> element holding the codes
TOKEN_PATHS = {"code": "code", "category": "category", "class": "class", "type": "type",
               "clinical-status": "clinicalStatus", "status": "status", "intent": "intent"}
PATIENT_REF = {"patient", "subject", "beneficiary", "actor"}
PATIENT_ID = {"patient.identifier", "subject.identifier", "beneficiary.identifier", "actor.identifier"}
COMMON = {"_id", "_count", "_format", "_include", "_revinclude", "_summary"}

TYPE_PARAMS: dict[str, set[str]] = {
    "Patient": {"identifier"},
    "Coverage": {"beneficiary", "beneficiary.identifier", "status"},
    "Consent": {"category", "status"},
    "Observation": {"code", "category", "status"},
    "Condition": {"category", "clinical-status", "code"},
    "NutritionOrder": {"status"},
    "Flag": {"status"},
    "AllergyIntolerance": {"clinical-status", "category"},
    "MedicationStatement": {"category", "status"},
    "MedicationRequest": {"category", "status", "intent"},
    "MedicationDispense": {"category", "status"},
    "DeviceUseStatement": set(),
    "Immunization": {"status"},
    "Procedure": {"category", "status"},
    "Encounter": {"class", "status", "type"},
    "ProcedureRequest": {"status"},
    "ImmunizationRecommendation": set(),
    "DeviceRequest": {"status"},
    "Appointment": {"status", "actor", "actor.identifier"},
    "DocumentReference": {"status", "type", "class"},
}
# _include values -> the element whose references are followed
INCLUDES: dict[str, str] = {
    "Patient:general-practitioner": "generalPractitioner",
    "Coverage:payor": "payor", "Coverage:payor:Patient": "payor", "Coverage:payor:Organization": "payor",
    "Coverage:payor:RelatedPerson": "payor",
    "Observation:related-target": "related.target", "Observation:specimen": "specimen",
    "MedicationStatement:medication": "medicationReference", "MedicationRequest:medication": "medicationReference",
    "MedicationDispense:medication": "medicationReference", "DeviceUseStatement:device": "device",
    "DeviceRequest:device": "codeReference",
}
REVINCLUDES = {"Provenance:target"}
JSON_FORMATS = {"json", "application/json", "application/fhir+json"}
XML_FORMATS = {"xml", "text/xml", "application/xml", "application/fhir+xml"}


def parse_query_string(raw: str) -> list[tuple[str, str]]:
    """Parameters in order, percent-decoded ('+' kept: FHIR is not form-encoded); 400 on a broken escape."""
    if BROKEN_ESCAPE.search(raw):
        raise FhirError(400, "invalid", f"the query string has a broken percent-escape: {raw!r}")
    params = []
    for part in raw.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if not sep or not value:
            raise FhirError(400, "invalid", f"search parameter {name!r} has no value")
        params.append((name, value))
    return params


def _codings(element: Any) -> list[tuple[str | None, str]]:
    if element is None:
        return []
    if isinstance(element, list):
        return [c for item in element for c in _codings(item)]
    if isinstance(element, str):
        return [(None, element)]
    if isinstance(element, dict):
        if "coding" in element:
            return _codings(element["coding"])
        if "code" in element:
            return [(element.get("system"), element["code"])]
    return []


def _token_matches(codes: list[tuple[str | None, str]], wanted: str) -> bool:
    for alternative in wanted.split(","):
        if "|" in alternative:
            system, code = alternative.split("|", 1)
            for have_system, have_code in codes:
                if (not system and have_system is None and have_code == code) or \
                        (system and have_system == system and (not code or have_code == code)):
                    return True
        elif any(have_code == alternative for _, have_code in codes):
            return True
    return False


def _references(resource: dict[str, Any], path: str) -> list[str]:
    values: list[Any] = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for value in values:
            item = value.get(step) if isinstance(value, dict) else None
            if isinstance(item, list):
                nxt.extend(item)
            elif item is not None:
                nxt.append(item)
        values = nxt
    return [v["reference"] for v in values if isinstance(v, dict) and isinstance(v.get("reference"), str)]


@dataclass
class SearchResult:
    matches: list[dict[str, Any]]
    includes: list[dict[str, Any]]


class ClinicalStore:
    """All patients' resources; every search and read is narrowed to the one patient of the token."""

    def __init__(self, organisation: str) -> None:
        self.organisation = organisation
        self.resources: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.binaries: dict[str, tuple[str, bytes]] = {}
        for bsn in TEST_PATIENTS:
            self.ensure_patient(bsn)

    def ensure_patient(self, bsn: str) -> None:
        if not bsn_ok(bsn) or ("Patient", f"pat-{bsn}") in self.resources:
            return
        resources, binaries = patient_resources(bsn, self.organisation)
        for resource in resources:
            self.resources[(resource["resourceType"], resource["id"])] = (bsn, resource)
        for binary_id, pdf in binaries.items():
            self.binaries[binary_id] = (bsn, pdf)

    def patient_id(self, bsn: str) -> str:
        return f"pat-{bsn}"

    def _owner_of_patient_id(self, pid: str) -> str | None:
        found = self.resources.get(("Patient", pid))
        return found[0] if found else None

    # -- reads
    def read(self, resource_type: str, resource_id: str, bsn: str) -> dict[str, Any]:
        check_type(resource_type)
        if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", resource_id):
            raise FhirError(400, "invalid", f"{resource_id!r} is not a valid resource id")
        found = self.resources.get((resource_type, resource_id))
        if found is None:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
        if found[0] != bsn:
            raise FhirError(403, "forbidden", f"{resource_type}/{resource_id} belongs to another patient than the "
                                              "one this access token was issued for")
        return found[1]

    def binary(self, binary_id: str, bsn: str) -> bytes:
        found = self.binaries.get(binary_id)
        if found is None:
            raise FhirError(404, "not-found", f"Binary/{binary_id} is not known")
        if found[0] != bsn:
            raise FhirError(403, "forbidden", f"Binary/{binary_id} belongs to another patient")
        return found[1]

    # -- searches
    def search(self, resource_type: str, params: list[tuple[str, str]], bsn: str, lastn: bool = False) -> SearchResult:
        check_type(resource_type)
        allowed = COMMON | TYPE_PARAMS.get(resource_type, set())
        if resource_type != "Patient":
            allowed |= PATIENT_REF | PATIENT_ID
        if lastn:
            allowed = allowed | {"max"}
        own_pid = self.patient_id(bsn)
        filters: list[Callable[[dict[str, Any]], bool]] = []
        includes: list[str] = []
        maximum = 1
        for name, value in params:
            if name not in allowed:
                if ":" in name and name.split(":", 1)[0] in allowed:
                    raise FhirError(400, "not-supported", f"the modifier of {name!r} is not supported")
                raise FhirError(400, "not-supported",
                                f"{resource_type} has no search parameter {name!r} on this server")
            if name == "_count":
                if not value.isdigit():
                    raise FhirError(400, "invalid", f"_count must be a non-negative integer, not {value!r}")
            elif name == "max":
                if not value.isdigit() or int(value) < 1:
                    raise FhirError(400, "invalid", f"max must be a positive integer, not {value!r}")
                maximum = int(value)
            elif name == "_format":
                if value in XML_FORMATS:
                    raise FhirError(406, "not-supported", "this server answers FHIR JSON only")
                if value not in JSON_FORMATS:
                    raise FhirError(400, "invalid", f"unknown _format {value!r}")
            elif name == "_summary":
                if value != "false":
                    raise FhirError(400, "not-supported", "_summary is not supported (only _summary=false)")
            elif name == "_include":
                if value not in INCLUDES or not value.startswith(resource_type + ":"):
                    raise FhirError(400, "not-supported", f"_include={value} is not supported on {resource_type}")
                includes.append(value)
            elif name == "_revinclude":
                if value not in REVINCLUDES:
                    raise FhirError(400, "not-supported", f"_revinclude={value} is not supported")
            elif name == "_id":
                ids = value.split(",")
                if resource_type == "Patient":
                    for pid in ids:
                        if pid != own_pid and self._owner_of_patient_id(pid):
                            raise FhirError(403, "forbidden", "the access token is for another patient")
                filters.append(lambda r, ids=ids: r["id"] in ids)
            elif name in PATIENT_REF:
                self._check_patient_reference(value, own_pid)
            elif name in PATIENT_ID or (resource_type == "Patient" and name == "identifier"):
                self._check_patient_identifier(name, value, bsn)
            elif name in TOKEN_PATHS:
                if any(not alt or alt == "|" for alt in value.split(",")):
                    raise FhirError(400, "invalid", f"{name}={value!r} is not a valid token")
                path = TOKEN_PATHS[name]
                filters.append(lambda r, path=path, value=value: _token_matches(_codings(r.get(path)), value))
        matches = [r for (rtype, _), (owner, r) in self.resources.items()
                   if rtype == resource_type and owner == bsn and all(f(r) for f in filters)]
        if lastn:
            matches = _lastn(matches, maximum)
        included = self._includes(matches, includes, bsn)
        return SearchResult(matches, included)

    def _check_patient_reference(self, value: str, own_pid: str) -> None:
        match = re.fullmatch(r"(?:.*/)?(?:Patient/)?([A-Za-z0-9\-.]{1,64})", value)
        if not match:
            raise FhirError(400, "invalid", f"{value!r} is not a reference to a Patient")
        if match.group(1) != own_pid:
            raise FhirError(403, "forbidden", "the access token is for another patient")

    def _check_patient_identifier(self, name: str, value: str, bsn: str) -> None:
        system, sep, ident = value.rpartition("|")
        if not sep or not ident:
            raise FhirError(400, "invalid", f"{name} must be {SYS_BSN}|<BSN>, not {value!r}")
        if system and system != SYS_BSN:
            raise FhirError(400, "not-supported", f"{name}: only the BSN system {SYS_BSN} is supported")
        if ident != bsn:
            raise FhirError(403, "forbidden", "the access token is for another patient")

    def _includes(self, matches: list[dict[str, Any]], includes: list[str], bsn: str) -> list[dict[str, Any]]:
        seen = {(r["resourceType"], r["id"]) for r in matches}
        out = []
        for include in includes:
            target_type = include.split(":")[2] if include.count(":") == 2 else None
            for resource in matches:
                for ref in _references(resource, INCLUDES[include]):
                    key = tuple(ref.split("/")[-2:])
                    if len(key) != 2 or (target_type and key[0] != target_type) or key in seen:
                        continue
                    found = self.resources.get(key)  # type: ignore[arg-type]
                    if found and found[0] == bsn:
                        seen.add(key)  # type: ignore[arg-type]
                        out.append(found[1])
        return out


def _lastn(observations: list[dict[str, Any]], maximum: int) -> list[dict[str, Any]]:
    """Most recent `maximum` per code, newest first (on effective[x])."""
    def effective(obs: dict[str, Any]) -> str:
        return obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or ""

    groups: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for obs in observations:
        codes = _codings(obs.get("code"))
        groups.setdefault(codes[0] if codes else (None, ""), []).append(obs)
    out = []
    for members in groups.values():
        out.extend(sorted(members, key=effective, reverse=True)[:maximum])
    return sorted(out, key=effective, reverse=True)


def check_type(resource_type: str) -> None:
    if resource_type not in STU3_TYPES:
        raise FhirError(404, "not-supported", f"{resource_type!r} is not a FHIR STU3 resource type")


def binary_resource(binary_id: str, pdf: bytes) -> dict[str, Any]:
    return {"resourceType": "Binary", "id": binary_id, "contentType": "application/pdf",
            "content": base64.b64encode(pdf).decode()}
