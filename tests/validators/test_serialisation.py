"""SPEC §6.4: FHIR STU3 JSON and XML as others write them, and complete PDFs.

Each rule fires on a defect and stays quiet on what is allowed, in JSON and in XML where it applies to
both: a primitive carrying only extensions (ele-1), a JSON key given twice, XML element order, the resource
type a Task query or read names, a PDF cut off. The Task in XML is written by the fhir.resources STU3 model
(an independent writer, in the order of the STU3 definition) from the good Task of test_notification.
"""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from fhir.resources.STU3 import get_fhir_model_class

from testdata.bgz_content import patient_resources
from testdata.patients import PATIENTS
from validators import spec
from validators.findings import Finding
from validators.rules.bgz_profiles import check_resource
from validators.rules.document import check_binary, check_binary_resource
from validators.rules.notification import check_notification_task
from validators.rules.structure import FhirParseError, parse_fhir

from ._cases import Case, check_case, fires, quiet
from .test_document import PDF_BYTES
from .test_notification import NOW, good_task
from .test_structure import GOOD_PATIENT_XML, xml

DATA_ABSENT_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DATA_ABSENT = {"extension": [{"url": DATA_ABSENT_URL, "valueCode": "unknown"}]}
DATA_ABSENT_XML = f'<extension url="{DATA_ABSENT_URL}"><valueCode value="unknown"/></extension>'
WORKFLOW_INPUT = 1  # index of the get-workflow-task input in good_task()
TRUE_XML = b'<valueBoolean value="true"/>'


# --- the Task in both formats --------------------------------------------------------------------
def task_json(change: Callable[[dict], object] = lambda t: None) -> bytes:
    task = good_task()
    change(task)
    return json.dumps(task).encode()


def task_xml(change: Callable[[dict], object] = lambda t: None) -> bytes:
    task = good_task()
    change(task)
    return get_fhir_model_class("Task").model_validate(task).model_dump_xml()


def judged(data: bytes) -> list[Finding]:
    """What `speeltuin validate` finds in a notification: reading (with structure) and the Task rules."""
    parsed = parse_fhir(data)
    return parsed.findings + check_notification_task(parsed.resource, now=NOW)


def only_extensions(task: dict) -> None:
    item = task["input"][WORKFLOW_INPUT]
    del item["valueBoolean"]
    item["_valueBoolean"] = DATA_ABSENT


def no_based_on(task: dict) -> None:
    task.pop("basedOn")


def xml_with(replace: bytes, by: bytes, change: Callable[[dict], object] = lambda t: None) -> bytes:
    data = task_xml(change)
    assert data.count(replace) == 1, replace
    return data.replace(replace, by)


DATA_ABSENT_BOOLEAN = b"<valueBoolean>" + DATA_ABSENT_XML.encode() + b"</valueBoolean>"

PRIMITIVE_CASES: list[Case] = [
    # A valueBoolean with only data-absent-reason is present and valid: no STRUCT-001 (value[x] is 1..1 in
    # Task.input) and no NOTIF-027; as it is not true, it asks for no Workflow Task (no NOTIF-028 without basedOn).
    quiet("STRUCT-001", "only-extensions-json", lambda: judged(task_json(only_extensions))),
    quiet("STRUCT-001", "only-extensions-xml", lambda: judged(xml_with(TRUE_XML, DATA_ABSENT_BOOLEAN))),
    quiet("NOTIF-027", "only-extensions-json", lambda: judged(task_json(only_extensions))),
    quiet("NOTIF-027", "only-extensions-xml", lambda: judged(xml_with(TRUE_XML, DATA_ABSENT_BOOLEAN))),
    quiet("NOTIF-028", "only-extensions-no-based-on-json",
          lambda: judged(task_json(lambda t: (only_extensions(t), no_based_on(t))))),
    quiet("NOTIF-028", "only-extensions-no-based-on-xml",
          lambda: judged(xml_with(TRUE_XML, DATA_ABSENT_BOOLEAN, no_based_on))),
    quiet("STRUCT-001", "required-primitive-only-extensions-json",
          lambda: parse_fhir(task_json(lambda t: (t.pop("intent"), t.update(_intent=DATA_ABSENT)))).findings),
    quiet("STRUCT-001", "required-primitive-only-extensions-xml", lambda: parse_fhir(xml_with(
        b'<intent value="proposal"/>', b"<intent>" + DATA_ABSENT_XML.encode() + b"</intent>")).findings),
    quiet("STRUCT-001", "choice-in-extension-only-extensions-xml", lambda: parse_fhir(xml(
        f'<extension url="http://example.invalid/x"><valueBoolean>{DATA_ABSENT_XML}</valueBoolean></extension>'
    )).findings),
    quiet("STRUCT-001", "choice-in-extension-only-extensions-json", lambda: parse_fhir(json.dumps(
        {"resourceType": "Patient", "extension": [{"url": "http://example.invalid/x", "_valueBoolean": DATA_ABSENT}]}
    ).encode()).findings),
    # ... but a value[x] that is not there at all, or an `_x` without extensions, still is a defect
    fires("STRUCT-001", "input-without-value-json",
          lambda: judged(task_json(lambda t: t["input"][WORKFLOW_INPUT].pop("valueBoolean")))),
    fires("STRUCT-001", "input-without-value-xml", lambda: judged(xml_with(TRUE_XML, b""))),
    fires("NOTIF-027", "extension-part-without-extensions-json", lambda: judged(task_json(
        lambda t: (t["input"][WORKFLOW_INPUT].pop("valueBoolean"),
                   t["input"][WORKFLOW_INPUT].update(_valueBoolean={"id": "v1"}))))),
    fires("NOTIF-027", "element-without-value-or-extensions-xml",
          lambda: judged(xml_with(TRUE_XML, b'<valueBoolean id="v1"/>'))),
    fires("NOTIF-027", "string-with-extensions-json", lambda: judged(task_json(
        lambda t: t["input"][WORKFLOW_INPUT].update(valueBoolean="true", _valueBoolean=DATA_ABSENT)))),
]


def test_only_extensions_count_as_present_everywhere() -> None:
    for data in (task_json(only_extensions), xml_with(TRUE_XML, DATA_ABSENT_BOOLEAN)):
        assert judged(data) == []


def test_profile_facts_count_a_data_absent_primitive_as_present() -> None:
    consent = xml('<meta><profile value="http://nictiz.nl/fhir/StructureDefinition/zib-AdvanceDirective"/></meta>'
                  '<status value="active"/><category><coding><system value="http://snomed.info/sct"/>'
                  '<code value="11341000146107"/></coding></category><patient><reference value="Patient/p-1"/>'
                  f'</patient><dateTime>{DATA_ABSENT_XML}</dateTime>', root="Consent")
    parsed = parse_fhir(consent)
    assert parsed.findings == [] and parsed.resource["_dateTime"] == DATA_ABSENT
    assert check_resource(parsed.resource) == []  # PROF-ADVANCE-002: dateTime required, and present


# --- JSON: a key twice ---------------------------------------------------------------------------
TWO_PATIENTS = (b'"for": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999993653"}}, '
                b'"for": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990639"}}')


def task_with_for_twice() -> bytes:
    data = task_json()
    start = data.index(b'"for": ')
    end = data.index(b'"authoredOn"')
    return data[:start] + TWO_PATIENTS + b", " + data[end:]


def bundle_json(entries: int, duplicate_every: int = 0) -> bytes:
    """A searchset of `entries` Patients; every `duplicate_every`-th one has its gender twice."""
    parts = []
    for i in range(entries):
        twice = b'"gender": "male", ' if duplicate_every and i % duplicate_every == duplicate_every - 1 else b""
        parts.append(b'{"fullUrl": "https://x.example/fhir/Patient/p%d", "resource": {"resourceType": "Patient", '
                     b'"id": "p%d", %s"gender": "female", "name": [{"family": "Jansen", "given": ["An"]}]}, '
                     b'"search": {"mode": "match"}}' % (i, i, twice))
    return b'{"resourceType": "Bundle", "type": "searchset", "entry": [' + b", ".join(parts) + b"]}"


DUPLICATE_CASES: list[Case] = [
    quiet("STRUCT-004", "keys-unique", lambda: judged(task_json())),
    quiet("STRUCT-004", "same-key-in-sibling-objects", lambda: parse_fhir(bundle_json(3)).findings),
    quiet("STRUCT-004", "xml-repeats-elements-by-design", lambda: parse_fhir(task_xml()).findings),
    fires("STRUCT-004", "task-for-twice", lambda: judged(task_with_for_twice())),
    fires("STRUCT-004", "in-a-bundle-entry", lambda: parse_fhir(bundle_json(3, duplicate_every=2)).findings),
    fires("STRUCT-004", "three-times", lambda: parse_fhir(
        b'{"resourceType": "Patient", "gender": "male", "gender": "female", "gender": "other"}').findings),
]


def test_duplicate_key_names_key_location_and_both_values() -> None:
    [finding] = [f for f in judged(task_with_for_twice()) if f.rule == "STRUCT-004"]
    assert finding.location == "Task.for" and finding.severity == "error"
    assert "'for'" in finding.message and "999993653" in finding.message and "999990639" in finding.message
    # the checks judge the last value, as json.loads does
    assert parse_fhir(task_with_for_twice()).resource["for"]["identifier"]["value"] == "999990639"


def test_duplicate_keys_are_located_in_nested_resources() -> None:
    found = [f for f in parse_fhir(bundle_json(4, duplicate_every=2)).findings if f.rule == "STRUCT-004"]
    assert [f.location for f in found] == ["Bundle.entry[1].resource.gender", "Bundle.entry[3].resource.gender"]
    long_value = "x" * 500
    [finding] = parse_fhir(json.dumps({"resourceType": "Patient", "id": "a"}).replace(
        '"id": "a"', f'"id": "{long_value}", "id": "b"').encode()).findings
    assert len(finding.message) < 250  # values shortened as evidence


def best_time(work: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize("duplicate_every,slack", [(0, 25), (1, 60)])
def test_reading_json_stays_linear(duplicate_every: int, slack: int) -> None:
    """A 20,000-entry Bundle reads in a small multiple of what json.loads alone takes (quadratic would be thousands
    of times; the slack is wide so a busy machine does not fail it: the speed itself is measured in
    benchmarks/validate_bundle.py), with no key twice and with a key twice in every entry."""
    data = bundle_json(20_000, duplicate_every)
    parsed = parse_fhir(data, structure=False)
    assert len([f for f in parsed.findings if f.rule == "STRUCT-004"]) == (20_000 if duplicate_every else 0)
    ratio = best_time(lambda: parse_fhir(data, structure=False)) / best_time(lambda: json.loads(data))
    assert ratio < slack, ratio


# --- XML: elements in the order of the STU3 definition -------------------------------------------
def patient_xml(body: str) -> list[Finding]:
    return parse_fhir(xml(body)).findings


NAME = '<name><family value="Moulin"/><given value="Suzanne"/></name>'
ORDER_CASES: list[Case] = [
    quiet("STRUCT-005", "good-patient", lambda: parse_fhir(GOOD_PATIENT_XML).findings),
    quiet("STRUCT-005", "good-task", lambda: parse_fhir(task_xml()).findings),
    quiet("STRUCT-005", "repeated-elements-together", lambda: patient_xml(
        '<name><given value="A"/><given value="B"/></name><name><family value="C"/></name>')),
    quiet("STRUCT-005", "comments-anywhere", lambda: parse_fhir(
        b'<?xml version="1.0"?>\n<!-- before -->\n<Patient xmlns="http://hl7.org/fhir"><!-- first -->'
        b'<id value="p"/><!-- between --><active value="true"><!-- inside a primitive --></active>'
        b'<name><!-- inside a datatype --><family value="X"/></name><!-- last --></Patient>\n<!-- after -->'
    ).findings),
    quiet("STRUCT-005", "namespace-prefix", lambda: parse_fhir(
        b'<f:Patient xmlns:f="http://hl7.org/fhir"><f:id value="p"/><f:active value="true"/>'
        b'<f:gender value="female"/></f:Patient>').findings),
    fires("STRUCT-005", "gender-before-name", lambda: patient_xml('<gender value="female"/>' + NAME)),
    fires("STRUCT-005", "extension-after-identifier", lambda: patient_xml(
        '<identifier><value value="1"/></identifier><extension url="http://example.invalid/x">'
        '<valueString value="x"/></extension>')),
    fires("STRUCT-005", "id-after-meta", lambda: patient_xml(
        '<meta><profile value="http://example.invalid/p"/></meta><id value="p"/>')),
    fires("STRUCT-005", "datatype-extension-not-first", lambda: patient_xml(
        '<name><family value="X"/><extension url="http://example.invalid/x"><valueString value="x"/></extension>'
        '</name>')),
    fires("STRUCT-005", "narrative-div-before-status", lambda: patient_xml(
        '<text><div xmlns="http://www.w3.org/1999/xhtml">x</div><status value="generated"/></text>')),
    fires("STRUCT-005", "task-input-value-before-type", lambda: parse_fhir(xml_with(
        b'<type><coding><system value="http://fhir.nl/fhir/NamingSystem/TaskParameter"/>'
        b'<code value="get-workflow-task"/></coding></type>' + TRUE_XML,
        TRUE_XML + b'<type><coding><system value="http://fhir.nl/fhir/NamingSystem/TaskParameter"/>'
        b'<code value="get-workflow-task"/></coding></type>')).findings),
    fires("STRUCT-005", "in-a-contained-resource", lambda: patient_xml(
        '<contained><Organization><name value="x"/><active value="true"/></Organization></contained>')),
    fires("STRUCT-005", "in-a-bundle-entry", lambda: parse_fhir(xml(
        '<type value="searchset"/><entry><resource><Patient><gender value="male"/><active value="true"/>'
        '</Patient></resource><fullUrl value="https://x.example/fhir/Patient/1"/></entry>', root="Bundle")).findings),
]


def order_findings(body: str) -> list[tuple[str, str]]:
    return [(f.location, f.message.split(": ", 1)[1]) for f in patient_xml(body) if f.rule == "STRUCT-005"]


def test_order_names_the_neighbour_and_reports_each_misplaced_element_once() -> None:
    assert order_findings('<gender value="female"/>' + NAME) == [("Patient.gender", "it must come after 'name'")]
    # one element far too early: it alone is misplaced, not the four after it
    body = ('<birthDate value="1985-12-01"/><identifier><value value="1"/></identifier><active value="true"/>'
            + NAME + '<gender value="female"/>')
    assert order_findings(body) == [("Patient.birthDate", "it must come after 'gender'")]
    # one element far too late
    body = '<active value="true"/>' + NAME + '<gender value="female"/><id value="p"/>'
    assert order_findings(body) == [("Patient.id", "it must come before 'active'")]
    # a repeated element split by another
    body = '<name><given value="A"/><family value="X"/><given value="B"/></name>'
    assert [location for location, _ in order_findings(body)] == ["Patient.name[0].given[0]"]


def test_order_is_judged_per_type_in_linear_time() -> None:
    entry = ('<entry><fullUrl value="https://x.example/fhir/Patient/{i}"/><resource><Patient><id value="{i}"/>'
             '<active value="true"/><gender value="female"/></Patient></resource></entry>')
    body = '<type value="searchset"/>' + "".join(entry.format(i=i) for i in range(5000))
    wrong = body.replace('<type value="searchset"/>', "") + '<type value="searchset"/>'  # type after 5,000 entries
    assert parse_fhir(xml(body, root="Bundle")).findings == []
    [finding] = parse_fhir(xml(wrong, root="Bundle")).findings
    assert (finding.rule, finding.location) == ("STRUCT-005", "Bundle.type")


# --- XML form and JSON form that §6.4 shares with §8 (STRUCT-001/002/003) -------------------------
FORM_CASES: list[Case] = [
    quiet("STRUCT-003", "namespace-prefix", lambda: parse_fhir(
        b'<fhir:Patient xmlns:fhir="http://hl7.org/fhir"><fhir:id value="p"/><fhir:name><fhir:family value="X"/>'
        b'</fhir:name></fhir:Patient>').findings),
    quiet("STRUCT-003", "comments-anywhere", lambda: patient_xml(
        '<!-- a --><id value="p"/><name><!-- b --><family value="X"><!-- c --></family></name><!-- d -->')),
    quiet("STRUCT-001", "comments-anywhere", lambda: patient_xml('<!-- a --><active value="true"><!-- b --></active>')),
    fires("STRUCT-003", "value-as-text", lambda: patient_xml("<active>true</active>")),
    fires("STRUCT-003", "element-in-other-namespace", lambda: parse_fhir(
        b'<Patient xmlns="http://hl7.org/fhir" xmlns:x="urn:x"><x:active value="true"/></Patient>').findings),
    fires("STRUCT-001", "empty-element-xml", lambda: patient_xml("<managingOrganization/>")),
    fires("STRUCT-001", "null-in-array-json", lambda: parse_fhir(
        b'{"resourceType": "Patient", "name": [{"given": ["A", null]}]}').findings),
    fires("STRUCT-001", "nested-empty-array-json", lambda: parse_fhir(
        b'{"resourceType": "Patient", "name": [{"given": []}]}').findings),
    quiet("STRUCT-001", "null-aligned-with-extensions-json", lambda: parse_fhir(json.dumps(
        {"resourceType": "Patient", "name": [{"given": ["A", None], "_given": [None, DATA_ABSENT]}]}).encode()
    ).findings),
    fires("STRUCT-002", "resource-type-not-stu3-json", lambda: parse_fhir(
        b'{"resourceType": "ServiceRequest", "status": "active"}').findings),
]


def test_xml_with_a_doctype_is_refused() -> None:
    with pytest.raises(FhirParseError, match="DOCTYPE"):
        parse_fhir(b'<!DOCTYPE Patient><Patient xmlns="http://hl7.org/fhir"><id value="p"/></Patient>')


# --- the resource type a Task names ----------------------------------------------------------------
def add_input(code: str, system: str = spec.TASK_PARAMETER_SYSTEM, **value: Any) -> Callable[[dict], None]:
    def change(task: dict) -> None:
        task["input"].append({"type": {"coding": [{"system": system, "code": code}]}, **value})
    return change


PLURAL = add_input(spec.INPUT_SEARCH_RESOURCE, valueString="AllergyIntolerances?patient=Patient/p-1")
UNKNOWN_READ = add_input(spec.INPUT_READ_RESOURCE, valueReference={"reference": "Foo/1"})
R4_SECTION = add_input("18776-5", spec.LOINC, valueString="ServiceRequest?status=active")
NO_TYPE = add_input(spec.INPUT_SEARCH_RESOURCE, valueString="?patient=Patient/p-1")

QUERY_TYPE_CASES: list[Case] = [
    quiet("NOTIF-039", "good-json", lambda: judged(task_json())),
    quiet("NOTIF-039", "good-xml", lambda: judged(task_xml())),
    quiet("NOTIF-039", "no-type-at-all-is-notif-030", lambda: judged(task_json(NO_TYPE))),
    fires("NOTIF-030", "no-type-at-all", lambda: judged(task_json(NO_TYPE))),
    fires("NOTIF-039", "plural-type-json", lambda: judged(task_json(PLURAL))),
    fires("NOTIF-039", "plural-type-xml", lambda: judged(task_xml(PLURAL))),
    fires("NOTIF-039", "unknown-read-type-json", lambda: judged(task_json(UNKNOWN_READ))),
    fires("NOTIF-039", "unknown-read-type-xml", lambda: judged(task_xml(UNKNOWN_READ))),
    fires("NOTIF-039", "r4-type-in-section-query", lambda: judged(task_json(R4_SECTION))),
]


def test_query_type_finding_names_the_type() -> None:
    for data in (task_json(PLURAL), task_xml(PLURAL)):
        [finding] = [f for f in judged(data) if f.rule == "NOTIF-039"]
        assert "'AllergyIntolerances'" in finding.message and "'AllergyIntolerance'" in finding.message
        assert finding.location.endswith(".valueString")
    [finding] = [f for f in judged(task_json(UNKNOWN_READ)) if f.rule == "NOTIF-039"]
    assert "'Foo'" in finding.message and finding.location.endswith(".valueReference.reference")


# --- PDF: complete files -------------------------------------------------------------------------
def xref_stream_pdf() -> bytes:
    """A PDF 1.5 file whose cross-reference data is a stream (/Type /XRef), as Acrobat writes them."""
    head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n"
    catalog = b"1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    xref = len(head) + len(catalog)
    data = bytes([1, 0, 0, 1, len(head) >> 8, len(head) & 0xFF, 1, xref >> 8, xref & 0xFF])
    stream = (b"2 0 obj\n<< /Type /XRef /Size 3 /W [1 2 0] /Root 1 0 R /Length %d >>\nstream\n" % len(data)
              + data + b"\nendstream\nendobj\n")
    return head + catalog + stream + b"startxref\n%d\n%%%%EOF\n" % xref


def pdf(body: bytes) -> list[Finding]:
    return check_binary("application/pdf", body)


def binary_of(body: bytes) -> list[Finding]:
    return check_binary_resource({"resourceType": "Binary", "contentType": "application/pdf",
                                  "content": base64.b64encode(body).decode()})


LETTER = next(r for r in patient_resources(PATIENTS[0], now=datetime(2024, 5, 1, tzinfo=timezone.utc))
              if r["resourceType"] == "Binary")

PDF_CASES: list[Case] = [
    quiet("DOC-013", "minimal-xref-table", lambda: pdf(PDF_BYTES)),
    quiet("DOC-013", "xref-stream", lambda: pdf(xref_stream_pdf())),
    quiet("DOC-013", "whitespace-after-eof", lambda: pdf(PDF_BYTES + b"\r\n" * 200)),
    quiet("DOC-013", "generated-letter", lambda: check_binary_resource(LETTER)),
    quiet("DOC-013", "not-a-pdf-is-doc-002", lambda: pdf(b"<html>error</html>")),
    fires("DOC-002", "not-a-pdf", lambda: pdf(b"<html>error</html>")),
    fires("DOC-013", "cut-off-halfway", lambda: pdf(PDF_BYTES[: len(PDF_BYTES) // 2])),
    fires("DOC-013", "cut-off-in-eof", lambda: pdf(PDF_BYTES.rstrip()[:-2])),
    fires("DOC-013", "random-bytes-after-header", lambda: pdf(b"%PDF-1.7\n" + bytes(range(256)) * 20)),
    fires("DOC-013", "bytes-after-eof", lambda: pdf(PDF_BYTES + b"<html>trailing page</html>")),
    fires("DOC-013", "too-much-after-eof", lambda: pdf(PDF_BYTES + b" " * 2000)),
    fires("DOC-013", "no-startxref", lambda: pdf(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n")),
    fires("DOC-013", "startxref-beyond-the-file", lambda: pdf(PDF_BYTES.replace(b"startxref\n51", b"startxref\n9999"))),
    fires("DOC-013", "no-cross-reference-data", lambda: pdf(
        b"%PDF-1.4\n" + bytes(range(32, 127)) * 10 + b"\nstartxref\n9\n%%EOF\n")),
    fires("DOC-013", "truncated-in-a-binary", lambda: binary_of(xref_stream_pdf()[:60])),
]


def test_pdf_findings_locate_the_body() -> None:
    [finding] = pdf(PDF_BYTES[:40])
    assert (finding.rule, finding.location) == ("DOC-013", "response.body") and "%%EOF" in finding.message
    [finding] = binary_of(PDF_BYTES[:40])
    assert (finding.rule, finding.location) == ("DOC-013", "Binary.content")


def test_a_startxref_a_little_off_is_repaired_by_readers_not_reported() -> None:
    assert pdf(PDF_BYTES.replace(b"startxref\n51", b"startxref\n50")) == []


def test_every_generated_letter_is_complete() -> None:
    now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    letters = [r for p in PATIENTS for r in patient_resources(p, now=now) if r["resourceType"] == "Binary"]
    assert letters and all(check_binary_resource(letter) == [] for letter in letters)


CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "nictiz-zib2017-examples"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", ["pdfa-Binary-01.xml", "pdfa-Binary-02.xml"])
def test_corpus_pdfs_are_complete(name: str) -> None:
    """Two PDF/A files written by others: linearized, one with an xref table and one with xref streams."""
    binary = parse_fhir((CORPUS / name).read_bytes()).resource
    assert base64.b64decode(binary["content"]).startswith(b"%PDF-")
    assert check_binary_resource(binary) == []


CASES = PRIMITIVE_CASES + DUPLICATE_CASES + ORDER_CASES + FORM_CASES + QUERY_TYPE_CASES + PDF_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    check_case(case)


@pytest.mark.parametrize("depth", [150, 3000])
def test_json_nested_deeper_than_any_fhir_is_refused_as_malformed(depth: int) -> None:
    from validators.rules.structure import FhirParseError, parse_fhir

    doc = '{"resourceType": "Patient", "extension": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(FhirParseError, match="nested too deep"):
        parse_fhir(doc.encode())
    assert parse_fhir(('{"resourceType": "Patient", "extension": ' + "[" * 50 + "]" * 50 + "}").encode())


def test_a_lone_surrogate_in_json_is_malformed_and_a_pair_is_one_character() -> None:
    with pytest.raises(FhirParseError, match="surrogate"):
        parse_fhir(b'{"resourceType": "Patient", "id": "p", "text": {"div": "\\ud800"}}')
    paired = parse_fhir(b'{"resourceType": "Patient", "id": "p", "name": [{"family": "\\ud83d\\ude00"}]}')
    assert paired.resource["name"][0]["family"] == "\U0001F600"
