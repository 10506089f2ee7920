"""Searchset Bundles answering the pull queries (SPEC §6.1).

The Bundle is read twice at entry level (index of fullUrls and Type/id, then the checks) and every
resource is walked once, so the cost grows linearly with the size of the Bundle.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence
from urllib.parse import urlsplit

from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.query import parse_params, search_target
from validators.spec import BSN_SYSTEM
from validators.stu3 import IGNORED_SEARCH_PARAMS

_REF = "SPEC §6.1"

_NO_PROFILE_NEEDED = frozenset({"OperationOutcome", "Binary"})
_PATIENT_KEYS = ("subject", "patient", "beneficiary")
# Keys whose value is an Identifier (besides `identifier` itself) in STU3 resources and extensions.
_IDENTIFIER_KEYS = frozenset({"identifier", "masterIdentifier", "groupIdentifier", "preAdmissionIdentifier",
                              "accessionIdentifier", "requisition", "valueIdentifier"})
_CODING_KEYS = frozenset({"coding", "valueCoding"})
_ABSOLUTE_FULL_URL = re.compile(r"https?://\S+|urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
                                r"|urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class _Index:
    full_urls: dict[str, str] = field(default_factory=dict)  # fullUrl -> Type/id
    typed_ids: set[str] = field(default_factory=set)  # Type/id of every entry


NOT_BUNDLE = rule("BUNDLE-001", "error", "not a FHIR Bundle resource", _REF)
NOT_SEARCHSET = rule("BUNDLE-002", "error", "Bundle.type is not searchset", _REF)
INCLUDE_MODE = rule("BUNDLE-014", "error", "included resource lacks search.mode include", _REF)
ENTRY = rule("BUNDLE-016", "error", "Bundle.entry is not a list of entries with a resource", _REF)


@emits(NOT_BUNDLE, NOT_SEARCHSET, INCLUDE_MODE, ENTRY)
def check_searchset(bundle: object, *, request_url: str | None = None, expected_profiles: Sequence[str] = (),
                    patient_reference: str | None = None) -> list[Finding]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        seen = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        return [NOT_BUNDLE.finding(f"saw {show(seen)}; expected a Bundle resource", "Bundle")]
    findings: list[Finding] = []
    if bundle.get("type") != "searchset":
        findings.append(NOT_SEARCHSET.finding(f"saw type {show(bundle.get('type'))}; expected 'searchset'",
                                              "Bundle.type"))
    links = bundle.get("link") if isinstance(bundle.get("link"), list) else []
    relations: dict[str, tuple[int, str | None]] = {}  # relation -> (position, url) of its first link
    for i, link in enumerate(links):
        relations.setdefault(_get_str(link, "relation") or "", (i, _get_str(link, "url")))
    if request_url is not None:
        _check_self_link(relations.get("self"), request_url, findings)

    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        findings.append(ENTRY.finding(f"entry is JSON {type(entries).__name__}; expected an array", "Bundle.entry"))
        entries = []
    index = _build_index(entries)
    searched = _searched_types(request_url, entries)
    patient = _normalize_reference(patient_reference, index) if patient_reference else None
    walker = _Walker(index, findings)
    matches = 0
    for i, entry in enumerate(entries):
        location = f"Bundle.entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            findings.append(ENTRY.finding(f"entry has no resource object (saw {show(resource)})", location))
            continue
        mode = _get_str(entry.get("search"), "mode")
        rtype = _get_str(resource, "resourceType")
        is_match = mode == "match" or (mode is None and rtype != "OperationOutcome")
        if searched and rtype not in searched and rtype != "OperationOutcome" and mode != "include":
            findings.append(INCLUDE_MODE.finding(f"{rtype} in a search for {'/'.join(sorted(searched))} has "
                                                 f"search.mode {show(mode)}; expected 'include'",
                                                 f"{location}.search.mode"))
            is_match = False  # reported here; counting it or checking its profile would repeat the finding
        matches += is_match
        _check_full_url(entry.get("fullUrl"), resource, location, findings)
        _check_profile(resource, expected_profiles if is_match else (), location, findings)
        if patient is not None:
            _check_patient(resource, is_match, patient, index, location, findings)
        walker.walk_resource(resource, f"{location}.resource")
    _check_total(bundle.get("total"), matches, _one_page_of_several(relations), findings)
    return findings


def _one_page_of_several(relations: dict[str, tuple[int, str | None]]) -> bool:
    """A page with others before or after it (paging links, or a self link that skips matches): its total counts
    every page, so it may exceed this page's matches."""
    self_url = relations.get("self", (0, None))[1]
    skips = self_url is not None and any(name == "_offset" and value.strip("0") for name, value
                                         in parse_params(urlsplit(self_url).query, strict=False))
    return skips or any(relation in relations for relation in ("next", "previous", "prev"))


def _get_str(node: object, key: str) -> str | None:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, str) else None


def _query_pairs(url: str) -> Counter[tuple[str, str]]:
    """Decoded name/value pairs, so `%7C` and `|`, and parameter order, compare equal."""
    return Counter(pair for pair in parse_params(urlsplit(url).query, strict=False)
                   if pair[0] not in IGNORED_SEARCH_PARAMS)


SELF_LINK = rule("BUNDLE-003", "error", "self link missing", _REF)
SELF_PARAMS = rule("BUNDLE-004", "error", "self link lacks a parameter of the request", _REF)


@emits(SELF_LINK, SELF_PARAMS)
def _check_self_link(self_link: tuple[int, str | None] | None, request_url: str, findings: list[Finding]) -> None:
    if self_link is None or not self_link[1]:
        findings.append(SELF_LINK.finding(f"no link with relation 'self' and a url; expected the URL of "
                                          f"{show(request_url, 120)}", "Bundle.link"))
        return
    position, url = self_link
    missing = _query_pairs(request_url) - _query_pairs(url)
    if missing:
        listed = ", ".join(f"{n}={v}" for n, v in sorted(missing))
        findings.append(SELF_PARAMS.finding(f"self link {show(url, 200)} lacks request parameter(s) "
                                            f"{show(listed, 200)}", f"Bundle.link[{position}].url"))


def _build_index(entries: list) -> _Index:
    index = _Index()
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        typed_id = f"{resource.get('resourceType')}/{resource.get('id')}"
        if resource.get("id"):
            index.typed_ids.add(typed_id)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            index.full_urls[full_url] = typed_id
    return index


def _searched_types(request_url: str | None, entries: list) -> set[str]:
    """The resource type the request searched, or else the types of the match entries."""
    target = search_target(urlsplit(request_url).path) if request_url else None
    if target is not None:
        return {target[0]}
    types = {_get_str(e["resource"], "resourceType") for e in entries
             if isinstance(e, dict) and isinstance(e.get("resource"), dict)
             and _get_str(e.get("search"), "mode") == "match"}
    return {t for t in types if t}


FULL_URL = rule("BUNDLE-007", "error", "fullUrl missing or not absolute (http(s), urn:uuid, urn:oid)", _REF)
FULL_URL_ID = rule("BUNDLE-008", "error", "fullUrl does not end in the resource id", _REF)


@emits(FULL_URL, FULL_URL_ID)
def _check_full_url(full_url: object, resource: dict, location: str, findings: list[Finding]) -> None:
    if not isinstance(full_url, str) or not _ABSOLUTE_FULL_URL.fullmatch(full_url):
        findings.append(FULL_URL.finding(f"saw fullUrl {show(full_url, 120)}; expected an absolute http(s) URL, "
                                         "urn:uuid or urn:oid", f"{location}.fullUrl"))
        return
    if full_url.startswith(("http://", "https://")):
        rid = resource.get("id")
        if not isinstance(rid, str) or not full_url.endswith("/" + rid):
            findings.append(FULL_URL_ID.finding(f"fullUrl {show(full_url, 120)} does not end in '/<id>' of the "
                                                f"resource (id {show(rid)})", f"{location}.fullUrl"))


PROFILE_MISSING = rule("BUNDLE-005", "error", "resource has no meta.profile", _REF)
PROFILE_EXPECTED = rule("BUNDLE-006", "error", "match resource does not claim the expected profile", _REF)
# SPEC §6.1: DocumentReference has no BgZ profile, so a missing one there is at most a warning.
DOCUMENT_PROFILE_MISSING = rule("BUNDLE-017", "warning", "DocumentReference has no meta.profile", _REF)


@emits(PROFILE_MISSING, PROFILE_EXPECTED, DOCUMENT_PROFILE_MISSING)
def _check_profile(resource: dict, expected_profiles: Sequence[str], location: str, findings: list[Finding]) -> None:
    rtype = _get_str(resource, "resourceType")
    if rtype in _NO_PROFILE_NEEDED:
        return
    profiles = resource.get("meta", {}).get("profile") if isinstance(resource.get("meta"), dict) else None
    if not isinstance(profiles, list) or not profiles:
        missing = DOCUMENT_PROFILE_MISSING if rtype == "DocumentReference" else PROFILE_MISSING
        findings.append(missing.finding(f"{rtype} claims no profile (meta.profile {show(profiles)})",
                                        f"{location}.resource.meta.profile"))
        return
    if expected_profiles and expected_profiles[0] not in profiles:
        findings.append(PROFILE_EXPECTED.finding(f"{rtype} claims {show(profiles, 200)}; expected "
                                                 f"{expected_profiles[0]!r}", f"{location}.resource.meta.profile"))


def _normalize_reference(reference: str, index: _Index) -> str:
    """`Type/id` for a relative, absolute or in-Bundle (urn:uuid) reference."""
    if reference in index.full_urls:
        return index.full_urls[reference]
    segments = [s for s in reference.split("/") if s]
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    return "/".join(segments[-2:])


OTHER_PATIENT = rule("BUNDLE-015", "error", "resource belongs to another patient than the token's", "SPEC §5.4, §6.1")


@emits(OTHER_PATIENT)
def _check_patient(resource: dict, is_match: bool, patient: str, index: _Index, location: str,
                   findings: list[Finding]) -> None:
    rtype = resource.get("resourceType")
    if rtype == "Patient" and is_match and f"Patient/{resource.get('id')}" != patient:
        findings.append(OTHER_PATIENT.finding(f"Patient/{resource.get('id')} returned as a match; the token is for "
                                              f"{patient}", f"{location}.resource.id"))
    for key in _PATIENT_KEYS:
        reference = _get_str(resource.get(key), "reference")
        if reference is not None and _normalize_reference(reference, index) != patient:
            findings.append(OTHER_PATIENT.finding(f"{rtype}.{key} points to {show(reference, 120)}; the token is "
                                                  f"for {patient}", f"{location}.resource.{key}.reference"))


MAX_NAMED_PATIENTS = 3  # patients a BUNDLE-020 message names
PATIENTS = rule("BUNDLE-020", "error", "a pull answer holds the data of more than one patient", "SPEC §5.4, §6.1")


@emits(PATIENTS)
def check_patient_data(answer: object, bsn: str) -> list[Finding]:
    """What a sender answered to a pull for the patient with `bsn` (a searchset, or the one resource of a read):
    no Patient of another BSN among the matches, and matches of one patient only (by their subject, patient or
    beneficiary, and the matched Patients). An included Patient may be someone else (Coverage's payor)."""
    if not isinstance(answer, dict):
        return []
    index, matched = _matches(answer)
    findings: list[Finding] = []
    patients: dict[str, str] = {}  # Type/id of each patient the matches belong to -> where it is first named
    for location, resource in matched:
        if resource.get("resourceType") == "Patient":
            _check_bsn(resource, bsn, location, findings)
            if isinstance(resource.get("id"), str):
                patients.setdefault(f"Patient/{resource['id']}", f"{location}.id")
        for key in _PATIENT_KEYS:
            reference = _get_str(resource.get(key), "reference")
            if reference is not None:
                patients.setdefault(_normalize_reference(reference, index), f"{location}.{key}.reference")
    if len(patients) > 1:
        named = ", ".join(list(patients)[:MAX_NAMED_PATIENTS])
        named += ", ..." if len(patients) > MAX_NAMED_PATIENTS else ""
        findings.append(PATIENTS.finding(f"the matches belong to {len(patients)} patients ({named}); a pull token "
                                         f"is for one patient, BSN {bsn}", list(patients.values())[1]))
    return findings


def patient_reference(answer: object, bsn: str) -> str | None:
    """`Patient/<id>` of the matched Patient with this BSN in a pull's answer (a searchset or a read), if any."""
    if not isinstance(answer, dict):
        return None
    return next((f"Patient/{resource['id']}" for _location, resource in _matches(answer)[1]
                 if resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str)
                 and bsn in patient_bsns(resource)), None)


def _matches(answer: dict) -> tuple[_Index, list[tuple[str, dict]]]:
    """The index and the (location, resource) matches of a pull's answer: a searchset's match entries (or entries
    without a mode), or the one resource of a read."""
    if answer.get("resourceType") != "Bundle":
        return _Index(), [(str(answer.get("resourceType") or "resource"), answer)]
    entries = answer.get("entry") if isinstance(answer.get("entry"), list) else []
    return _build_index(entries), [(f"Bundle.entry[{i}].resource", entry["resource"]) for i, entry in enumerate(entries)
                                   if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
                                   and _get_str(entry.get("search"), "mode") in (None, "match")]


def patient_bsns(patient: dict) -> list[object]:
    """The values of a Patient's BSN identifiers."""
    identifiers = patient.get("identifier") if isinstance(patient.get("identifier"), list) else []
    return [i.get("value") for i in identifiers if isinstance(i, dict) and i.get("system") == BSN_SYSTEM]


FOREIGN_BSN = rule("BUNDLE-019", "error", "a pull answer holds a Patient with another BSN than the token's",
                   "SPEC §5.4, §6.1")


@emits(FOREIGN_BSN)
def _check_bsn(patient: dict, bsn: str, location: str, findings: list[Finding]) -> None:
    bsns = patient_bsns(patient)
    if bsns and bsn not in bsns:
        findings.append(FOREIGN_BSN.finding(f"Patient/{patient.get('id')} has BSN {show(bsns[0])}; the pull token "
                                            f"is for BSN {bsn}", f"{location}.identifier"))


TOTAL = rule("BUNDLE-013", "warning", "Bundle.total does not match the match entries", _REF)


@emits(TOTAL)
def _check_total(total: object, matches: int, paged: bool, findings: list[Finding]) -> None:
    if total is None:
        return
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        findings.append(TOTAL.finding(f"saw total {show(total)}; expected a non-negative integer", "Bundle.total"))
    elif paged and total < matches:
        findings.append(TOTAL.finding(f"total {total} is less than the {matches} match entries on this page",
                                      "Bundle.total"))
    elif not paged and total != matches:
        findings.append(TOTAL.finding(f"total {total} but {matches} match entries and no other pages",
                                      "Bundle.total"))


CODING = rule("BUNDLE-009", "error", "Coding lacks system or code", _REF)
# Display/text and reference resolution are quality demands beyond the FHIR core: warnings, so
# correct zib examples never produce errors for them (SPEC §8).
CONCEPT_TEXT = rule("BUNDLE-010", "warning", "CodeableConcept has neither text nor a coding display", _REF)
IDENTIFIER = rule("BUNDLE-011", "error", "Identifier lacks system or value", _REF)
REFERENCE = rule("BUNDLE-012", "warning", "Reference has no display and does not resolve inside the Bundle", _REF)


@emits(CODING, CONCEPT_TEXT, IDENTIFIER, REFERENCE)
def check_element(node: dict, path: str, key: str, resolves: Callable[[str], bool]) -> list[Finding]:
    """The Coding, CodeableConcept, Identifier or Reference that `node` (found under `key`) is.

    `resolves` tells whether a reference points inside the Bundle.
    """
    findings: list[Finding] = []
    # Elements holding only extensions (e.g. data-absent-reason) carry no value to check.
    if not node.keys() - {"extension", "id"}:
        return findings
    if key in _CODING_KEYS:
        if not node.get("system") or not node.get("code"):
            findings.append(CODING.finding(f"saw system {show(node.get('system'))} and code "
                                           f"{show(node.get('code'))}; expected both", path))
    coding = node.get("coding")
    if isinstance(coding, list):
        if not node.get("text") and not any(isinstance(c, dict) and c.get("display") for c in coding):
            codes = ", ".join(f"{_get_str(c, 'system')}|{_get_str(c, 'code')}" for c in coding)
            findings.append(CONCEPT_TEXT.finding(f"no text and no display (codings {show(codes, 120)})", path))
    if key in _IDENTIFIER_KEYS:
        if not node.get("system") or not node.get("value"):
            findings.append(IDENTIFIER.finding(f"saw system {show(node.get('system'))} and value "
                                               f"{show(node.get('value'))}; expected both", path))
    reference = node.get("reference")
    if isinstance(reference, str) and not node.get("display") and not resolves(reference):
        findings.append(REFERENCE.finding(f"{show(reference, 120)} has no display and is not in the Bundle",
                                          f"{path}.reference"))
    return findings


class _Walker:
    """One recursive pass over a resource checking Codings, CodeableConcepts, Identifiers and References."""

    def __init__(self, index: _Index, findings: list[Finding]) -> None:
        self.index = index
        self.findings = findings
        self.contained: set[str] = set()

    def walk_resource(self, resource: dict, path: str) -> None:
        contained = resource.get("contained")
        contained = contained if isinstance(contained, list) else []
        self.contained = {cid for cid in (_get_str(c, "id") for c in contained) if cid}
        self._walk(resource, path, "")

    def _walk(self, node: object, path: str, key: str) -> None:
        if isinstance(node, dict):
            self._check(node, path, key)
            for child_key, child in node.items():
                if isinstance(child, (dict, list)):
                    self._walk(child, f"{path}.{child_key}", child_key)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, (dict, list)):
                    self._walk(item, f"{path}[{i}]", key)

    def _check(self, node: dict, path: str, key: str) -> None:
        self.findings.extend(check_element(node, path, key, self._resolves))

    def _resolves(self, reference: str) -> bool:
        if reference.startswith("#"):
            return reference == "#" or reference[1:] in self.contained
        if reference in self.index.full_urls:
            return True
        if _SCHEME_PREFIX.match(reference):  # absolute, but not a fullUrl of this Bundle
            return False
        return _normalize_reference(reference, self.index) in self.index.typed_ids

