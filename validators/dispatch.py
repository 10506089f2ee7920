"""What `speeltuin validate` runs on one file: detect its kind, read it, apply the rules of that kind.

Pure: bytes in, findings out. Kinds are the stable CLI contract; `auto` picks one from the content.
"""
from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from validators import safe_json, spec
from validators.findings import Finding
from validators.json_walk import dig
from validators.query import read_search_url
from validators.rules.bgz_profiles import check_query_result, check_resource
from validators.rules.bundle import check_searchset
from validators.rules.document import check_binary, check_binary_resource, check_document_reference
from validators.rules.jwt_assertion import check_assertion_file
from validators.rules.notification import check_cancellation_task, check_notification_task
from validators.rules.structure import FhirParseError, parse_fhir
from validators.rules.token_request import check_token_request, check_token_response
from validators.rules.workflow_task import check_workflow_task

KINDS = ("notification", "cancel", "workflow-task", "client-assertion", "token-request", "token-response",
         "bundle", "resource", "document")

_JWS = re.compile(rb"^\s*[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\s*$")
_FORM = re.compile(rb"^\s*[A-Za-z0-9_.~%+-]+=[^\s]*(&[A-Za-z0-9_.~%+-]+=[^\s]*)*\s*$")


class UnreadableInput(ValueError):
    """The input is of no kind this tool reads, or cannot be read as the kind asked; one line for people."""


@dataclass
class FileResult:
    kind: str
    findings: list[Finding] = field(default_factory=list)


def detect_kind(data: bytes) -> str:
    """The kind of a file from its content."""
    stripped = data.lstrip()
    if stripped.startswith(b"%PDF-"):
        return "document"
    if _JWS.match(data) and _jws_header(data.strip()) is not None:
        return "client-assertion"
    if _FORM.match(data) and b"grant_type=" in data:
        return "token-request"
    if stripped[:1] == b"{":
        try:
            obj = safe_json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UnreadableInput(f"not valid JSON: {exc}") from exc
        if isinstance(obj, dict) and "resourceType" not in obj and ("access_token" in obj or "error" in obj):
            return "token-response"
    return _fhir_kind(_read_fhir(data).resource)


def validate_bytes(data: bytes, *, kind: str = "auto", audience: str | None = None,
                   jwks: dict | None = None, now: float | None = None) -> FileResult:
    """The findings for one input of `kind` (or the detected kind)."""
    if kind == "auto":
        kind = detect_kind(data)
    if kind not in KINDS:
        raise UnreadableInput(f"unknown kind {kind!r}")
    now = time.time() if now is None else now
    if kind == "client-assertion":
        return FileResult(kind, check_assertion_file(data.decode("ascii", "replace").strip(), audience, jwks, now))
    if kind == "token-request":
        findings, form = check_token_request(data, "application/x-www-form-urlencoded")
        for key, assertion_kind in (("client_assertion", "client"), ("assertion", "authorization")):
            if form.get(key):
                findings += check_assertion_file(form[key], audience, jwks, now, kind=assertion_kind, location=key)
        return FileResult(kind, findings)
    if kind == "token-response":
        return FileResult(kind, _token_response(data))
    if kind == "document" and data.lstrip().startswith(b"%PDF-"):
        return FileResult(kind, check_binary("application/pdf", data))
    parsed = _read_fhir(data)
    return FileResult(kind, parsed.findings + _FHIR_CHECKS[kind](parsed.resource))


def apply_suppressions(findings: list[Finding], suppressed: Mapping[str, str]) -> tuple[list[Finding],
                                                                                        list[tuple[Finding, str]]]:
    """Kept findings, and the suppressed ones with the recorded reason."""
    kept = [f for f in findings if f.rule not in suppressed]
    return kept, [(f, suppressed[f.rule]) for f in findings if f.rule in suppressed]


def _token_response(data: bytes) -> list[Finding]:
    try:
        body = safe_json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"a token response must be JSON: {exc}") from exc
    # A file holds no HTTP status or headers: judge the body as the status it implies, with no-store given.
    status = 400 if isinstance(body, dict) and "error" in body else 200
    if isinstance(body, dict) and body.get("error") == "invalid_client":
        status = 401
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    return check_token_response(status, headers, data)


def _read_fhir(data: bytes) -> Any:
    try:
        return parse_fhir(data)
    except FhirParseError as exc:
        raise UnreadableInput(str(exc)) from exc


def _fhir_kind(resource: dict) -> str:
    resource_type = resource.get("resourceType")
    if resource_type == "Task":
        # Read leniently: a file may hold any JSON where code.coding and meta.profile belong (the rules report it)
        codings, profiles = dig(resource, "code", "coding"), dig(resource, "meta", "profile")
        workflow_code = any(isinstance(c, dict) and c.get("system") == spec.SNOMED
                            and c.get("code") == spec.WORKFLOW_TASK_CODE["code"]
                            for c in (codings if isinstance(codings, list) else []))
        if workflow_code or (isinstance(profiles, list) and spec.WORKFLOW_TASK_PROFILE in profiles):
            return "workflow-task"
        return "cancel" if resource.get("status") == "cancelled" else "notification"
    if resource_type == "Bundle":
        return "bundle"
    if resource_type in ("DocumentReference", "Binary"):
        return "document"
    return "resource"


def _bundle(bundle: dict) -> list[Finding]:
    links, entries = bundle.get("link"), bundle.get("entry")
    self_url = next((link.get("url") for link in (links if isinstance(links, list) else []) if isinstance(link, dict)
                     and link.get("relation") == "self" and isinstance(link.get("url"), str)), None)
    asked = read_search_url(self_url) if self_url else None
    query = spec.find_query(asked) if asked else None
    found = check_searchset(bundle, expected_profiles=query.profiles if query else ())
    if query is not None and query.profiles:
        return found + check_query_result(bundle, query)
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            found += check_resource(entry["resource"], location=f"Bundle.entry[{index}].resource")
    return found


def _document(resource: dict) -> list[Finding]:
    if resource.get("resourceType") == "Binary":
        return check_binary_resource(resource)  # decodes the content and judges the bytes too
    return check_document_reference(resource) + check_resource(resource)


_FHIR_CHECKS = {
    "notification": check_notification_task,
    "cancel": check_cancellation_task,
    "workflow-task": check_workflow_task,
    "bundle": _bundle,
    "resource": check_resource,
    "document": _document,
}


def _jws_header(data: bytes) -> dict | None:
    try:
        part = data.split(b".", 1)[0]
        header = safe_json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) and "alg" in header else None
