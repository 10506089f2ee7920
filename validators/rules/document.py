"""Documents: the DocumentReference found by `DocumentReference?status=current` and the Binary it points to
(SPEC §3 step 6, the referral letter as PDF)."""
from __future__ import annotations

import base64
import binascii
import re

from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.stu3 import media_type

_REF = "SPEC §3 (step 6)"
PDF = "application/pdf"

_FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
_BINARY_URL = re.compile(f"Binary/{_FHIR_ID}(/_history/{_FHIR_ID})?")
_ABSOLUTE_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
_PATIENT_REF = re.compile(f"(https?://[^\\s]+/)?Patient/{_FHIR_ID}(/_history/{_FHIR_ID})?|urn:uuid:[0-9a-fA-F-]{{36}}")
# RFC 6838 §4.2 type/subtype names, then optional parameters
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(f"{_NAME}/{_NAME}\\s*(;.*)?", re.DOTALL)
_WHITESPACE = re.compile(rb"\s+")


def check_binary(content_type: str | None, body: bytes, *, declared_type: str | None = None) -> list[Finding]:
    """Check document bytes as served raw (`Accept: application/pdf`), against the declared attachment type."""
    return _check_bytes(content_type, body, declared_type, "response.headers.Content-Type", "response.body")


CONTENT_TYPE = rule("DOC-001", "error", "document content type is not application/pdf", _REF)
PDF_MAGIC = rule("DOC-002", "error", "PDF body does not start with %PDF-", _REF)
DECLARED_MISMATCH = rule("DOC-003", "error", "served content type differs from the DocumentReference's "
                         "attachment contentType", _REF)


@emits(CONTENT_TYPE, PDF_MAGIC, DECLARED_MISMATCH)
def _check_bytes(content_type: str | None, body: bytes, declared_type: str | None, type_location: str,
                 body_location: str) -> list[Finding]:
    findings: list[Finding] = []
    actual, declared = media_type(content_type), media_type(declared_type) or None
    if declared in (None, PDF) and actual != PDF:
        findings.append(CONTENT_TYPE.finding(f"saw content type {show(content_type)}; expected {PDF!r}",
                                             type_location))
    # A PDF declared but not served is DOC-001 already; this covers the other declared types.
    if declared not in (None, PDF) and actual != declared:
        findings.append(DECLARED_MISMATCH.finding(f"served as {show(content_type)} but the DocumentReference "
                                                  f"declares {declared_type!r}", type_location))
    if actual == PDF and not body.startswith(b"%PDF-"):
        findings.append(PDF_MAGIC.finding(f"body ({len(body)} bytes) starts with {body[:8]!r}; expected b'%PDF-'",
                                          body_location))
    elif actual == PDF:
        findings.extend(_check_pdf_complete(body, body_location))
    return findings


_EOF_SLACK = 1024  # bytes of whitespace allowed after the last %%EOF (readers look this far back)
_PDF_WHITESPACE = b" \t\r\n\f\x00"
_STARTXREF = re.compile(rb"startxref[ \t\r\n\f\x00]+([0-9]{1,12})[ \t\r\n\f\x00]*\Z")
_XREF_TABLE = re.compile(rb"(?:\A|[\r\n])[ \t]*xref[ \t]*[\r\n]")
_XREF_STREAM = re.compile(rb"/Type[ \t\r\n\f\x00]*/XRef\b")

PDF_INCOMPLETE = rule("DOC-013", "error", "PDF is not complete (no %%EOF at the end, no startxref, or no xref table "
                      "or cross-reference stream)", "SPEC §6.4")


@emits(PDF_INCOMPLETE)
def _check_pdf_complete(body: bytes, location: str) -> list[Finding]:
    """A file cut off in transfer, or bytes that only start like a PDF. Readers find the cross-reference data
    through the `startxref` offset just before the final `%%EOF` (ISO 32000-1 §7.5.5); an offset that is a
    little wrong they repair, so only cross-reference data missing altogether is reported."""
    eof = body.rfind(b"%%EOF", max(0, len(body) - _EOF_SLACK - 5))
    if eof < 0:
        return [PDF_INCOMPLETE.finding(f"no %%EOF in the last {_EOF_SLACK} bytes of {len(body)} (it ends with "
                                       f"{show(body[-24:])}); the file is cut off or not a PDF", location)]
    if body[eof + 5:].strip(_PDF_WHITESPACE):
        return [PDF_INCOMPLETE.finding(f"{show(body[eof + 5:].strip(_PDF_WHITESPACE))} after the final %%EOF; "
                                       "only whitespace may follow it", location)]
    match = _STARTXREF.search(body[max(0, eof - 64):eof])
    if match is None or int(match.group(1)) >= eof:
        seen = f"offset {match.group(1).decode()} lies beyond it" if match else "there is none"
        return [PDF_INCOMPLETE.finding(f"no 'startxref <offset>' of the cross-reference data just before the "
                                       f"final %%EOF ({seen})", location)]
    at = body[int(match.group(1)):int(match.group(1)) + 4096]
    if _XREF_TABLE.match(at) or _XREF_STREAM.search(at):  # where startxref points: no need to read the whole file
        return []
    if _XREF_TABLE.search(body) or _XREF_STREAM.search(body):
        return []
    return [PDF_INCOMPLETE.finding(f"no cross-reference data (neither an 'xref' table nor a /Type /XRef stream) "
                                   f"in its {len(body)} bytes", location)]


NOT_BINARY = rule("DOC-010", "error", "not a FHIR Binary resource", _REF)
BINARY_CONTENT_TYPE = rule("DOC-011", "error", "Binary.contentType missing or not a media type", _REF)
BINARY_CONTENT = rule("DOC-012", "error", "Binary.content missing or not valid base64", _REF)


@emits(NOT_BINARY, BINARY_CONTENT_TYPE, BINARY_CONTENT)
def check_binary_resource(resource: object, *, declared_type: str | None = None) -> list[Finding]:
    """A Binary served as FHIR (`Accept: application/fhir+json`): contentType, base64 content, and the bytes."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        seen = resource.get("resourceType") if isinstance(resource, dict) else type(resource).__name__
        return [NOT_BINARY.finding(f"saw {show(seen)}; expected a Binary resource", "Binary")]
    findings: list[Finding] = []
    content_type = resource.get("contentType")
    type_ok = isinstance(content_type, str) and bool(_MEDIA_TYPE.fullmatch(content_type.strip()))
    if not type_ok:
        findings.append(BINARY_CONTENT_TYPE.finding(f"saw contentType {show(content_type)}; expected a media type "
                                                    "such as 'application/pdf'", "Binary.contentType"))
    content = resource.get("content")
    if not isinstance(content, str) or not content.strip():
        hint = " ('data' is the FHIR R4 name; STU3 Binary uses 'content')" if "data" in resource else ""
        findings.append(BINARY_CONTENT.finding(f"saw content {_shape(content)}{hint}; expected base64 bytes",
                                               "Binary.content"))
        return findings
    decoded = _decode_base64(content)
    if decoded is None:
        findings.append(BINARY_CONTENT.finding(f"content ({len(content)} characters) is not valid base64",
                                               "Binary.content"))
        return findings
    if type_ok:  # bytes are judged against a type only when there is one
        findings.extend(_check_bytes(content_type, decoded, declared_type, "Binary.contentType", "Binary.content"))
    return findings


def _shape(value: object) -> str:
    if isinstance(value, str):
        return "an empty string" if not value.strip() else f"a string of {len(value)} characters"
    return "nothing" if value is None else f"JSON {type(value).__name__}"


def _decode_base64(text: str) -> bytes | None:
    """Strict base64; whitespace is allowed between groups (FHIR base64Binary, e.g. wrapped XML text)."""
    compact = _WHITESPACE.sub(b"", text.encode("ascii", "replace"))
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


NOT_DOCUMENT_REFERENCE = rule("DOC-004", "error", "not a FHIR DocumentReference resource", _REF)
STATUS = rule("DOC-005", "error", "DocumentReference.status is not current", _REF)
TYPE = rule("DOC-006", "error", "DocumentReference.type lacks a coding with system and code", _REF)
SUBJECT = rule("DOC-007", "error", "DocumentReference.subject lacks a reference to a Patient", _REF)
ATTACHMENT = rule("DOC-008", "error", "DocumentReference.content lacks an attachment with contentType and url", _REF)
ATTACHMENT_URL = rule("DOC-009", "error", "attachment.url is neither a relative Binary/<id> nor an absolute http(s) "
                      "URL", _REF)


@emits(NOT_DOCUMENT_REFERENCE, STATUS, TYPE, SUBJECT, ATTACHMENT, ATTACHMENT_URL)
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
    codings = codings if isinstance(codings, list) else []
    if not any(isinstance(c, dict) and _text(c.get("system")) and _text(c.get("code")) for c in codings):
        findings.append(TYPE.finding(f"saw type {show(doc_type, 120)}; expected a CodeableConcept with a coding "
                                     "that has system and code", "DocumentReference.type.coding"))
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not _PATIENT_REF.fullmatch(reference):
        seen = f"reference {show(reference, 100)}" if isinstance(reference, str) else f"subject {show(subject)}"
        findings.append(SUBJECT.finding(f"saw {seen}; expected a reference to the Patient ('Patient/<id>')",
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
        location = f"DocumentReference.content[{i}].attachment"
        for key in ("contentType", "url"):
            value = attachment.get(key)
            if not isinstance(value, str) or not value:
                findings.append(ATTACHMENT.finding(f"saw {key} {show(value)}; expected a non-empty string",
                                                   f"{location}.{key}"))
        content_type = attachment.get("contentType")
        if _text(content_type) and not _MEDIA_TYPE.fullmatch(content_type.strip()):
            findings.append(ATTACHMENT.finding(f"saw contentType {show(content_type)}; expected a media type such "
                                               "as 'application/pdf'", f"{location}.contentType"))
        url = attachment.get("url")
        if _text(url) and not (_BINARY_URL.fullmatch(url) or _ABSOLUTE_URL.fullmatch(url)):
            hint = " (no leading slash)" if url.startswith("/") else ""
            findings.append(ATTACHMENT_URL.finding(f"saw url {show(url, 120)}; expected 'Binary/<id>' or an "
                                                   f"absolute http(s) URL{hint}", f"{location}.url"))
    return findings


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
