"""HTTP-level rules for FHIR and notification exchanges (SPEC §3, §5.2, §5.4)."""
from __future__ import annotations

import json
from typing import Mapping

from validators.findings import Finding, rule

FHIR_CONTENT_TYPE = rule("HTTP-001", "error", "FHIR responses use a FHIR content type", "SPEC §3 step 5")
CREATED_WITH_LOCATION = rule("HTTP-002", "error", "A Task create is answered 201 Created with a Location header",
                             "SPEC §3 step 3")
ERROR_IS_OPERATION_OUTCOME = rule("HTTP-003", "error", "Every FHIR error body is an OperationOutcome", "SPEC §5.4")
BEARER_CHALLENGE = rule("HTTP-004", "error", "A 401 carries WWW-Authenticate: Bearer error=\"invalid_token\"",
                        "SPEC §5.2 (RFC 6750 §3)")

_FHIR_TYPES = ("application/fhir+json", "application/json+fhir", "application/fhir+xml", "application/xml+fhir")


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), "")


def check_fhir_response(status: int, headers: Mapping[str, str], body: bytes) -> list[Finding]:
    """Content type on every FHIR answer; OperationOutcome and the bearer challenge on errors."""
    found: list[Finding] = []
    content_type = _header(headers, "Content-Type").split(";")[0].strip().lower()
    if body and content_type not in _FHIR_TYPES:
        found.append(FHIR_CONTENT_TYPE.finding(f"Content-Type is {content_type or 'missing'}, expected "
                                               "application/fhir+json or application/fhir+xml", "Content-Type"))
    if status >= 400:
        try:
            resource_type = json.loads(body).get("resourceType")
        except (ValueError, AttributeError):
            resource_type = None
        if resource_type != "OperationOutcome":
            found.append(ERROR_IS_OPERATION_OUTCOME.finding(
                f"status {status} answered with {resource_type or 'no FHIR resource'}", "body"))
    if status == 401 and 'error="invalid_token"' not in _header(headers, "WWW-Authenticate").replace(" ", ""):
        found.append(BEARER_CHALLENGE.finding("401 without WWW-Authenticate: Bearer error=\"invalid_token\"",
                                              "WWW-Authenticate"))
    return found


def check_created(status: int, headers: Mapping[str, str]) -> list[Finding]:
    if status == 201 and _header(headers, "Location"):
        return []
    return [CREATED_WITH_LOCATION.finding(
        f"status {status}, Location {_header(headers, 'Location') or 'missing'}", "status")]
