"""Error answers for people and programs: FHIR OperationOutcome, RFC 6749 §5.2, RFC 6750 §3."""
from __future__ import annotations

import json
from typing import Iterable

from flask import Response

from simulator.fhir.format import UnsupportedFormat, content_type, to_xml, wanted_format
from speeltuin import error_bodies
from validators.findings import Finding


def fhir_response(resource: dict, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The resource in the format the request asks for (JSON unless it asks for XML)."""
    try:
        fmt = wanted_format()
    except UnsupportedFormat:
        fmt = "json"  # the 406 itself must still be readable
    body = to_xml(resource) if fmt == "xml" else json.dumps(resource, ensure_ascii=False).encode()
    return Response(body, status=status, content_type=content_type(fmt), headers=headers or {})


def operation_outcome(status: int, message: str, findings: Iterable[Finding] = (),
                      headers: dict[str, str] | None = None) -> Response:
    return fhir_response(error_bodies.operation_outcome(status, message, findings), status, headers)


class FhirError(Exception):
    """Raised anywhere in a FHIR handler; the app answers it with an OperationOutcome."""

    def __init__(self, status: int, message: str, findings: Iterable[Finding] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.findings, self.headers = status, message, list(findings), headers

    def response(self) -> Response:
        return operation_outcome(self.status, self.message, self.findings, self.headers)


def unsupported_format(exc: UnsupportedFormat) -> Response:
    return operation_outcome(406, str(exc))


def invalid_token(message: str) -> FhirError:
    """RFC 6750 §3: a missing, bad or expired bearer token."""
    challenge = 'Bearer error="invalid_token", error_description="%s"' % message.replace('"', "'")
    return FhirError(401, message, headers={"WWW-Authenticate": challenge})


def oauth_error(error: str, description: str, status: int | None = None) -> Response:
    """RFC 6749 §5.2 error response; invalid_client is 401 per SPEC §5.2, the rest 400."""
    return Response(json.dumps(error_bodies.oauth_error(error, description)),
                    status=status or error_bodies.oauth_status(error), content_type="application/json",
                    headers=error_bodies.OAUTH_HEADERS)
