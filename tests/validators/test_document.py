from __future__ import annotations

from typing import Any, Callable

import pytest

from validators import spec
from validators.document import check_binary, check_document_reference

from ._cases import check_case, fires, quiet

PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def good_reference() -> dict:
    return {
        "resourceType": "DocumentReference", "id": "d-1", "status": "current",
        "type": {"coding": [dict(spec.REFERRAL_LETTER_TYPE)]},
        "subject": {"reference": "Patient/p-1", "display": "Suzanne Moulin"},
        "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/b-1",
                                    "title": "Verwijsbrief"}}],
    }


def with_(change: Callable[[dict], Any]) -> Callable[[], list]:
    def make() -> list:
        resource = good_reference()
        change(resource)
        return check_document_reference(resource)
    return make


CASES = [
    quiet("DOC-001", "pdf", lambda: check_binary("application/pdf", PDF_BYTES, declared_type="application/pdf")),
    quiet("DOC-001", "pdf-with-parameter", lambda: check_binary("Application/PDF; name=brief.pdf", PDF_BYTES)),
    quiet("DOC-001", "other-declared-type-served", lambda: check_binary("text/plain", b"brief",
                                                                        declared_type="text/plain")),
    fires("DOC-001", "octet-stream", lambda: check_binary("application/octet-stream", PDF_BYTES)),
    fires("DOC-001", "missing", lambda: check_binary(None, PDF_BYTES, declared_type="application/pdf")),
    fires("DOC-001", "html-for-declared-pdf",
          lambda: check_binary("text/html", b"<html>", declared_type="application/pdf")),
    quiet("DOC-002", "magic", lambda: check_binary("application/pdf", PDF_BYTES)),
    quiet("DOC-002", "not-pdf-not-checked", lambda: check_binary("text/plain", b"hello", declared_type="text/plain")),
    fires("DOC-002", "html-body", lambda: check_binary("application/pdf", b"<html><body>error</body></html>")),
    fires("DOC-002", "base64-body", lambda: check_binary("application/pdf", b"JVBERi0xLjcK")),
    fires("DOC-002", "empty", lambda: check_binary("application/pdf", b"")),
    quiet("DOC-003", "same", lambda: check_binary("text/plain; charset=utf-8", b"x", declared_type="text/plain")),
    fires("DOC-003", "pdf-for-declared-text", lambda: check_binary("application/pdf", PDF_BYTES,
                                                                   declared_type="text/plain")),
    quiet("DOC-004", "document-reference", lambda: check_document_reference(good_reference())),
    fires("DOC-004", "binary", lambda: check_document_reference({"resourceType": "Binary"})),
    fires("DOC-004", "string", lambda: check_document_reference("DocumentReference")),
    quiet("DOC-005", "current", lambda: check_document_reference(good_reference())),
    fires("DOC-005", "superseded", with_(lambda r: r.update(status="superseded"))),
    fires("DOC-005", "missing", with_(lambda r: r.pop("status"))),
    quiet("DOC-006", "coded", lambda: check_document_reference(good_reference())),
    fires("DOC-006", "text-only", with_(lambda r: r.update(type={"text": "Verwijsbrief"}))),
    fires("DOC-006", "missing", with_(lambda r: r.pop("type"))),
    quiet("DOC-007", "reference", lambda: check_document_reference(good_reference())),
    fires("DOC-007", "display-only", with_(lambda r: r.update(subject={"display": "Suzanne Moulin"}))),
    fires("DOC-007", "missing", with_(lambda r: r.pop("subject"))),
    quiet("DOC-008", "attachment", lambda: check_document_reference(good_reference())),
    fires("DOC-008", "no-content", with_(lambda r: r.pop("content"))),
    fires("DOC-008", "no-url", with_(lambda r: r["content"][0]["attachment"].pop("url"))),
    fires("DOC-008", "no-content-type", with_(lambda r: r["content"][0]["attachment"].pop("contentType"))),
    fires("DOC-008", "no-attachment", with_(lambda r: r["content"][0].pop("attachment"))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_good_document_has_no_findings() -> None:
    assert check_document_reference(good_reference()) == []
    assert check_binary("application/pdf", PDF_BYTES, declared_type="application/pdf") == []


def test_attachment_location() -> None:
    resource = good_reference()
    resource["content"][0]["attachment"].pop("url")
    [finding] = check_document_reference(resource)
    assert finding.location == "DocumentReference.content[0].attachment.url"
