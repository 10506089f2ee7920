from __future__ import annotations

import base64
import random
from typing import Any, Callable

import pytest

from validators import spec
from validators.rules.document import check_binary, check_binary_resource, check_document_reference

from ._cases import check_case, fires, quiet



def minimal_pdf() -> bytes:
    """The smallest complete PDF: header, one object, an xref table, trailer, startxref and %%EOF."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    catalog = b"1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    xref = len(head) + len(catalog)
    return (head + catalog + b"xref\n0 2\n0000000000 65535 f \n%010d 00000 n \n" % len(head)
            + b"trailer\n<< /Size 2 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)


PDF_BYTES = minimal_pdf()


def good_reference() -> dict:
    return {
        "resourceType": "DocumentReference", "id": "d-1", "status": "current",
        "type": {"coding": [dict(spec.REFERRAL_LETTER_TYPE)]},
        "subject": {"reference": "Patient/p-1", "display": "Suzanne Moulin"},
        "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/b-1",
                                    "title": "Verwijsbrief"}}],
    }


PDF = "application/pdf"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wrapped(text: str) -> str:
    return "\n".join(text[i:i + 16] for i in range(0, len(text), 16))


def good_binary() -> dict:
    return {"resourceType": "Binary", "id": "b-1", "contentType": PDF, "content": b64(PDF_BYTES)}


def binary_with(change: Callable[[dict], Any], **kw: Any) -> Callable[[], list]:
    def make() -> list:
        resource = good_binary()
        change(resource)
        return check_binary_resource(resource, **kw)
    return make


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
    fires("DOC-008", "content-type-not-a-media-type", with_(lambda r: r["content"][0]["attachment"].update(
        contentType="pdf"))),
    quiet("DOC-006", "system-and-code", lambda: check_document_reference(good_reference())),
    fires("DOC-006", "coding-without-system", with_(lambda r: r["type"]["coding"][0].pop("system"))),
    fires("DOC-006", "coding-without-code", with_(lambda r: r["type"].update(coding=[{"system": spec.LOINC}]))),
    quiet("DOC-007", "absolute-patient", with_(lambda r: r["subject"].update(
        reference="https://sender.example.nl/fhir/Patient/p-1"))),
    quiet("DOC-007", "urn-uuid-in-bundle", with_(lambda r: r["subject"].update(
        reference="urn:uuid:5b3c5a0e-7c0c-4d2a-9f3e-2b8a1f6c9d10"))),
    fires("DOC-007", "practitioner", with_(lambda r: r["subject"].update(reference="Practitioner/pr-1"))),
    fires("DOC-007", "leading-slash", with_(lambda r: r["subject"].update(reference="/Patient/p-1"))),
    quiet("DOC-009", "relative-binary", lambda: check_document_reference(good_reference())),
    quiet("DOC-009", "absolute", with_(lambda r: r["content"][0]["attachment"].update(
        url="https://sender.example.nl/fhir/Binary/b-1"))),
    quiet("DOC-009", "binary-version", with_(lambda r: r["content"][0]["attachment"].update(
        url="Binary/b-1/_history/2"))),
    fires("DOC-009", "leading-slash", with_(lambda r: r["content"][0]["attachment"].update(url="/Binary/b-1"))),
    fires("DOC-009", "other-type", with_(lambda r: r["content"][0]["attachment"].update(url="DocumentReference/d-1"))),
    fires("DOC-009", "urn-uuid", with_(lambda r: r["content"][0]["attachment"].update(
        url="urn:uuid:5b3c5a0e-7c0c-4d2a-9f3e-2b8a1f6c9d10"))),
    fires("DOC-009", "file-url", with_(lambda r: r["content"][0]["attachment"].update(url="file:///tmp/brief.pdf"))),

    quiet("DOC-010", "binary", lambda: check_binary_resource(good_binary())),
    fires("DOC-010", "document-reference", lambda: check_binary_resource(good_reference())),
    fires("DOC-010", "not-an-object", lambda: check_binary_resource(PDF_BYTES)),
    quiet("DOC-011", "pdf", lambda: check_binary_resource(good_binary())),
    fires("DOC-011", "missing", binary_with(lambda b: b.pop("contentType"))),
    fires("DOC-011", "not-a-media-type", binary_with(lambda b: b.update(contentType="PDF document"))),
    quiet("DOC-012", "base64", lambda: check_binary_resource(good_binary())),
    quiet("DOC-012", "base64-wrapped-lines", binary_with(lambda b: b.update(content=wrapped(b["content"])))),
    fires("DOC-012", "missing", binary_with(lambda b: b.pop("content"))),
    fires("DOC-012", "r4-data", binary_with(lambda b: b.update(data=b.pop("content")))),
    fires("DOC-012", "not-base64", binary_with(lambda b: b.update(content="%PDF-1.7 raw bytes"))),
    fires("DOC-012", "urlsafe-base64", binary_with(lambda b: b.update(content=base64.urlsafe_b64encode(
        b"\xfb\xff\xfe" * 4).decode()))),
    fires("DOC-012", "truncated", binary_with(lambda b: b.update(content=b["content"][:-1]))),
    quiet("DOC-002", "binary-pdf", lambda: check_binary_resource(good_binary())),
    fires("DOC-002", "binary-html-as-pdf", binary_with(lambda b: b.update(content=b64(b"<html>error</html>")))),
    quiet("DOC-003", "binary-declared-pdf", lambda: check_binary_resource(good_binary(), declared_type=PDF)),
    fires("DOC-003", "binary-text-declared", lambda: check_binary_resource(good_binary(),
                                                                           declared_type="text/plain")),
    fires("DOC-001", "binary-octet-stream", binary_with(lambda b: b.update(contentType="application/octet-stream"))),
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


def test_good_binary_resource_has_no_findings() -> None:
    assert check_binary_resource(good_binary(), declared_type=PDF) == []


def test_binary_resource_locations() -> None:
    resource = good_binary()
    resource["content"] = b64(b"<html>")
    [finding] = check_binary_resource(resource)
    assert (finding.rule, finding.location) == ("DOC-002", "Binary.content")
    [finding] = check_binary_resource(good_binary(), declared_type="text/plain")
    assert (finding.rule, finding.location) == ("DOC-003", "Binary.contentType")


def test_r4_data_gets_a_hint() -> None:
    resource = good_binary()
    resource["data"] = resource.pop("content")
    [finding] = check_binary_resource(resource)
    assert "R4" in finding.message


def test_mutated_binaries_never_raise() -> None:
    from . import test_robustness

    rnd = random.Random("binary")
    for _ in range(300):
        resource = good_binary()
        for _ in range(rnd.randint(1, 2)):
            test_robustness._mutate(resource, rnd)
        assert isinstance(check_binary_resource(resource, declared_type=PDF), list)
