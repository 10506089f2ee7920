"""The bodies of error answers, for every part that answers a client: the simulator, and the proxy when it blocks an
invalid message (a FHIR OperationOutcome; an RFC 6749 §5.2 error)."""
from __future__ import annotations

from typing import Any, Iterable

from validators.findings import Finding

# FHIR issue codes by HTTP status, for errors that are not validator findings.
ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              406: "not-supported", 409: "conflict", 412: "conflict", 413: "too-costly", 415: "not-supported",
              500: "exception", 502: "transient", 503: "transient"}
OAUTH_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def operation_outcome(status: int, message: str, findings: Iterable[Finding] = ()) -> dict[str, Any]:
    """An OperationOutcome: the message as the first issue, then one issue per finding."""
    issues = [{"severity": "error", "code": ISSUE_CODE.get(status, "processing"), "diagnostics": message}]
    for f in findings:
        issues.append({"severity": f.severity, "code": "invariant", "diagnostics": f"{f.rule}: {f.message}",
                       "expression": [f.location] if f.location else []})
    return {"resourceType": "OperationOutcome", "issue": issues}


def oauth_error(error: str, description: str) -> dict[str, str]:
    """An RFC 6749 §5.2 error body."""
    return {"error": error, "error_description": oauth_text(description)}


def oauth_status(error: str) -> int:
    """invalid_client is 401 per SPEC §5.2, the rest 400."""
    return 401 if error == "invalid_client" else 400


def oauth_text(text: str) -> str:
    """RFC 6749 §5.2 allows only printable ASCII without '"' and '\\' in error_description."""
    text = text.replace('"', "'").replace("\\", "/")
    return "".join(ch if 0x20 <= ord(ch) <= 0x7E else "?" for ch in text)
