"""Documents: the DocumentReference found by `DocumentReference?status=current` and the Binary it points to
(SPEC §3 step 6, the referral letter as PDF)."""
from __future__ import annotations

from validators.findings import Finding, rule
from validators.identifiers import show
from validators.token_request import media_type

_REF = "SPEC §3 (step 6)"
PDF = "application/pdf"
CONTENT_TYPE = rule("DOC-001", "error", "document content type is not application/pdf", _REF)
PDF_MAGIC = rule("DOC-002", "error", "PDF body does not start with %PDF-", _REF)
DECLARED_MISMATCH = rule("DOC-003", "error", "content type differs from the DocumentReference's attachment "
                         "contentType", _REF)
NOT_DOCUMENT_REFERENCE = rule("DOC-004", "error", "not a FHIR DocumentReference resource", _REF)
STATUS = rule("DOC-005", "error", "DocumentReference.status is not current", _REF)
TYPE = rule("DOC-006", "error", "DocumentReference.type lacks a coding", _REF)
SUBJECT = rule("DOC-007", "error", "DocumentReference.subject lacks a reference", _REF)
ATTACHMENT = rule("DOC-008", "error", "DocumentReference.content lacks an attachment with contentType and url", _REF)


def check_binary(content_type: str | None, body: bytes, *, declared_type: str | None = None) -> list[Finding]:
    """Check document bytes as served (raw, or decoded from a Binary resource with its contentType)."""
    findings: list[Finding] = []
    actual, declared = media_type(content_type), media_type(declared_type) or None
    if declared in (None, PDF) and actual != PDF:
        findings.append(CONTENT_TYPE.finding(f"saw content type {show(content_type)}; expected {PDF!r}",
                                             "response.headers.Content-Type"))
    # A PDF declared but not served is DOC-001 already; this covers the other declared types.
    if declared not in (None, PDF) and actual != declared:
        findings.append(DECLARED_MISMATCH.finding(f"served as {show(content_type)} but the DocumentReference "
                                                  f"declares {declared_type!r}", "response.headers.Content-Type"))
    if actual == PDF and not body.startswith(b"%PDF-"):
        findings.append(PDF_MAGIC.finding(f"body ({len(body)} bytes) starts with {body[:8]!r}; expected b'%PDF-'",
                                          "response.body"))
    return findings


def check_document_reference(resource: object) -> list[Finding]:
    if not isinstance(resource, dict) or resource.get("resourceType") != "DocumentReference":
        seen = resource.get("resourceType") if isinstance(resource, dict) else type(resource).__name__
        return [NOT_DOCUMENT_REFERENCE.finding(f"saw {show(seen)}; expected a DocumentReference",
                                               "DocumentReference")]
    findings: list[Finding] = []
    if resource.get("status") != "current":
        findings.append(STATUS.finding(f"saw status {show(resource.get('status'))}; expected 'current'",
                                       "DocumentReference.status"))
    doc_type = resource.get("type")
    codings = doc_type.get("coding") if isinstance(doc_type, dict) else None
    if not isinstance(codings, list) or not codings:
        findings.append(TYPE.finding(f"saw type {show(doc_type)}; expected a CodeableConcept with a coding",
                                     "DocumentReference.type.coding"))
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference:
        findings.append(SUBJECT.finding(f"saw subject {show(subject)}; expected a reference to the Patient",
                                        "DocumentReference.subject.reference"))
    content = resource.get("content")
    if not isinstance(content, list) or not content:
        findings.append(ATTACHMENT.finding(f"saw content {show(content)}; expected at least one attachment",
                                           "DocumentReference.content"))
        return findings
    for i, item in enumerate(content):
        attachment = item.get("attachment") if isinstance(item, dict) else None
        if not isinstance(attachment, dict):
            findings.append(ATTACHMENT.finding(f"saw {show(attachment)}; expected an attachment object",
                                               f"DocumentReference.content[{i}].attachment"))
            continue
        for key in ("contentType", "url"):
            value = attachment.get(key)
            if not isinstance(value, str) or not value:
                findings.append(ATTACHMENT.finding(f"saw {key} {show(value)}; expected a non-empty string",
                                                   f"DocumentReference.content[{i}].attachment.{key}"))
    return findings
