"""HTTP-level rules for FHIR and notification exchanges (SPEC §3, §5.2, §5.4)."""
from __future__ import annotations

import re
from typing import Collection, Literal, Mapping

from lxml import etree

from validators import safe_json, spec
from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.stu3 import FHIR_MEDIA_TYPES, FORMAT_FAMILIES, XML_NAMESPACE, media_type


ErrorSituation = Literal["no-token", "bad-token", "other-patient", "malformed-query", "not-found"]
# SPEC §5.4: the status each situation is answered with; other-patient is 403 or 404 [choice].
ERROR_STATUSES: dict[str, tuple[int, ...]] = {
    "no-token": (401,), "bad-token": (401,), "other-patient": (403, 404), "malformed-query": (400,),
    "not-found": (404,),
}

_BEARER_SCHEME = re.compile(r"(?:^|,)\s*bearer(?=\s|,|$)", re.IGNORECASE)
# auth-param names are case-insensitive, the error value is not (RFC 7235 §2.1, RFC 6750 §3)
_INVALID_TOKEN_PARAM = re.compile(r'(?:^|[\s,])error\s*=\s*(?:"' + spec.BEARER_INVALID_TOKEN + '"|'
                                  + spec.BEARER_INVALID_TOKEN + r")(?=\s*(?:,|$))", re.IGNORECASE)
# Safe parsing of untrusted XML: no entities, no network, no huge trees.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), "")


def _resource_type(body: bytes) -> str | None:
    """The resourceType of a FHIR JSON or XML body; None when the body is neither."""
    try:
        document = safe_json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict):
        value = document.get("resourceType")
        return value if isinstance(value, str) else None
    if not body.lstrip().startswith(b"<"):
        return None
    try:
        root = etree.fromstring(body, _XML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    qname = etree.QName(root)
    return qname.localname if qname.namespace == XML_NAMESPACE else None


FHIR_CONTENT_TYPE = rule("HTTP-001", "error", "FHIR responses use a FHIR content type", "SPEC §3 step 5")
ERROR_IS_OPERATION_OUTCOME = rule("HTTP-003", "error", "Every FHIR error body is an OperationOutcome", "SPEC §5.4")


@emits(FHIR_CONTENT_TYPE, ERROR_IS_OPERATION_OUTCOME)
def check_fhir_response(status: int, headers: Mapping[str, str], body: bytes) -> list[Finding]:
    """Content type on every FHIR answer; OperationOutcome and the bearer challenge on errors."""
    found: list[Finding] = []
    content_type = media_type(_header(headers, "Content-Type"))
    if body and content_type not in FHIR_MEDIA_TYPES:
        found.append(FHIR_CONTENT_TYPE.finding(f"Content-Type is {content_type or 'missing'}, expected "
                                               "application/fhir+json or application/fhir+xml", "Content-Type"))
    if status >= 400:
        resource_type = _resource_type(body)
        if resource_type != "OperationOutcome":
            found.append(ERROR_IS_OPERATION_OUTCOME.finding(
                f"status {status} answered with {resource_type or 'no FHIR resource'}", "body"))
    found.extend(check_bearer_challenge(status, headers))
    return found


BEARER_CHALLENGE = rule("HTTP-004", "error", "A 401 carries WWW-Authenticate: Bearer error=\"invalid_token\"",
                        "SPEC §5.2 (RFC 6750 §3)")


@emits(BEARER_CHALLENGE)
def check_bearer_challenge(status: int, headers: Mapping[str, str]) -> list[Finding]:
    """A 401 names the Bearer scheme and error="invalid_token" in WWW-Authenticate (SPEC §5.2, RFC 6750 §3)."""
    if status != 401:
        return []
    challenge = _header(headers, "WWW-Authenticate")
    scheme = _BEARER_SCHEME.search(challenge)
    if scheme and _INVALID_TOKEN_PARAM.search(challenge[scheme.end():]):
        return []
    seen = f"WWW-Authenticate {show(challenge, 100)}" if challenge else "no WWW-Authenticate"
    return [BEARER_CHALLENGE.finding(f"401 with {seen}; expected Bearer error=\"invalid_token\"",
                                     "WWW-Authenticate")]


CREATED_WITH_LOCATION = rule("HTTP-002", "error", "A Task create is answered 201 Created with a Location header",
                             "SPEC §3 step 3")


@emits(CREATED_WITH_LOCATION)
def check_created(status: int, headers: Mapping[str, str]) -> list[Finding]:
    if status == 201 and _header(headers, "Location"):
        return []
    return [CREATED_WITH_LOCATION.finding(
        f"status {status}, Location {_header(headers, 'Location') or 'missing'}", "status")]


def _accepted_ranges(accept: str) -> list[str]:
    """Media ranges of an Accept header that the client accepts (q > 0), lower case."""
    ranges = []
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0  # a malformed weight does not make the range unacceptable
        if quality > 0:
            ranges.append(media.lower())
    return ranges


def accepts(accept: str | None, media: str) -> bool:
    """Whether an Accept header admits `media` (a FHIR media type stands for its family: application/json admits
    application/fhir+json); a header that names nothing acceptable (absent, empty, all q=0) leaves it open."""
    ranges = _accepted_ranges(accept or "")
    return not ranges or any(_matches(r, media) for r in ranges if media)


def _matches(media_range: str, media: str) -> bool:
    if media_range in ("*/*", "*"):
        return True
    if media_range.endswith("/*"):
        return media.startswith(media_range[:-1])
    family = FORMAT_FAMILIES.get(media_range)
    return media == media_range or (family is not None and FORMAT_FAMILIES.get(media) == family)


FORMAT_NOT_HONOURED = rule("HTTP-005", "error", "response format does not honour _format or Accept",
                           "SPEC §3 steps 5-6")


@emits(FORMAT_NOT_HONOURED)
def check_accept_honoured(request_accept: str | None, request_format_param: str | None,
                          response_content_type: str | None) -> list[Finding]:
    """The response comes in the format asked: `_format` (json/xml or a media type) wins over `Accept`.

    Nothing is judged when the request leaves the format open (no Accept, `*/*`) or names a `_format` the check
    does not know (its refusal is another rule's business).
    """
    served = media_type(response_content_type)
    location = "response.headers.Content-Type"
    if request_format_param is not None:
        wanted = FORMAT_FAMILIES.get(request_format_param.strip().lower())
        if wanted is None or FORMAT_FAMILIES.get(served) == wanted:
            return []
        return [FORMAT_NOT_HONOURED.finding(f"_format={show(request_format_param)} asks {wanted.upper()} but the "
                                            f"response is {served or 'without Content-Type'}", location)]
    if accepts(request_accept, served):
        return []
    return [FORMAT_NOT_HONOURED.finding(f"Accept {show(request_accept, 120)} but the response is "
                                        f"{served or 'without Content-Type'}", location)]


NO_TOKEN_STATUS = rule("HTTP-006", "error", "request without a bearer token not answered 401", "SPEC §5.4")
BAD_TOKEN_STATUS = rule("HTTP-007", "error", "request with an invalid bearer token not answered 401", "SPEC §5.4")
OTHER_PATIENT_STATUS = rule("HTTP-008", "error", "request for another patient's data not answered 403 (or 404)",
                            "SPEC §5.4")
MALFORMED_QUERY_STATUS = rule("HTTP-009", "error", "malformed query not answered 400", "SPEC §5.4")
NOT_FOUND_STATUS = rule("HTTP-010", "error", "read of an unknown resource not answered 404", "SPEC §5.4")


@emits(NO_TOKEN_STATUS, BAD_TOKEN_STATUS, OTHER_PATIENT_STATUS, MALFORMED_QUERY_STATUS, NOT_FOUND_STATUS)
def check_error_status(situation: ErrorSituation, status: int, *, allowed: Collection[int] | None = None) -> \
        list[Finding]:
    """The status a FHIR resource server answers a refused request with (SPEC §5.4).

    `allowed` narrows a [choice] (e.g. `(403,)` for other-patient); by default SPEC's accepted statuses.
    """
    situation_rules = {"no-token": NO_TOKEN_STATUS, "bad-token": BAD_TOKEN_STATUS,
                       "other-patient": OTHER_PATIENT_STATUS, "malformed-query": MALFORMED_QUERY_STATUS,
                       "not-found": NOT_FOUND_STATUS}
    if situation not in situation_rules:
        raise ValueError(f"unknown situation {situation!r}; expected one of {', '.join(situation_rules)}")
    expected = tuple(allowed) if allowed is not None else ERROR_STATUSES[situation]
    if status in expected:
        return []
    wanted = " or ".join(str(s) for s in expected)
    return [situation_rules[situation].finding(f"{situation}: answered {status}; expected {wanted}",
                                               "response.status")]
OTHER_PATIENT_OTHER_REFUSAL = rule("HTTP-011", "warning", "request for another patient's data refused with another "
                                  "4xx than 403 or 404 (noted)", "SPEC §5.4")


@emits(OTHER_PATIENT_OTHER_REFUSAL)
def check_other_patient_answer(status: int, *, leaked: bool) -> list[Finding]:
    """A request for another patient's data (SPEC §5.4): 403 (or 404); a 200 narrowed to nothing of theirs is
    fine too; another 4xx without their data is noted, not failed; anything else is HTTP-008."""
    if status in (403, 404) or (status == 200 and not leaked):
        return []
    if 400 <= status < 500:
        return [OTHER_PATIENT_OTHER_REFUSAL.finding(f"answered {status}, without the other patient's data; SPEC "
                                                    "§5.4 wants 403 (or 404)", "response.status")]
    return check_error_status("other-patient", status)


