"""Reading FHIR STU3 from JSON and XML bytes, safely, and judging structure with findings instead of exceptions."""
from __future__ import annotations

import copy
import http.server
import json
import random
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from validators.findings import Finding, Rule
from validators.rules import structure as structure_rules
from validators.rules.structure import FhirParseError, ParsedFhir, check_structure, is_resource_type, parse_fhir

from ._cases import Case, check_case, fires, json_paths, quiet

NS = 'xmlns="http://hl7.org/fhir"'


def xml(body: str, root: str = "Patient", attrs: str = "") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} {NS}{attrs}>{body}</{root}>'.encode()


def good_patient() -> dict:
    return {
        "resourceType": "Patient", "id": "p-1",
        "meta": {"profile": ["http://fhir.nl/fhir/StructureDefinition/nl-core-patient"]},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Jan &amp; Piet</p></div>'},
        "contained": [{"resourceType": "Organization", "id": "org", "name": "Huisartsenpraktijk"}],
        "extension": [{"url": "http://example.invalid/ext", "valueDecimal": 1.5}],
        "identifier": [{"use": "official", "system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999993653"}],
        "active": True,
        "name": [{"family": "Moulin",
                  "_family": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-name",
                                             "valueString": "Moulin"}]},
                  "given": ["Suzanne", None],
                  "_given": [None, {"id": "g2", "extension": [{"url": "http://example.invalid/initial",
                                                                "valueCode": "BR"}]}]}],
        "gender": "female",
        "birthDate": "1985-12-01",
        "multipleBirthInteger": 2,
        "managingOrganization": {"reference": "#org"},
    }


GOOD_PATIENT_XML = xml(
    '<id value="p-1"/>'
    '<meta><profile value="http://fhir.nl/fhir/StructureDefinition/nl-core-patient"/></meta>'
    '<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Jan &amp; Piet</p></div></text>'
    '<contained><Organization><id value="org"/><name value="Huisartsenpraktijk"/></Organization></contained>'
    '<extension url="http://example.invalid/ext"><valueDecimal value="1.5"/></extension>'
    '<identifier><use value="official"/><system value="http://fhir.nl/fhir/NamingSystem/bsn"/>'
    '<value value="999993653"/></identifier>'
    '<active value="true"/>'
    '<name><family value="Moulin">'
    '<extension url="http://hl7.org/fhir/StructureDefinition/humanname-own-name"><valueString value="Moulin"/>'
    '</extension></family>'
    '<given value="Suzanne"/>'
    '<given id="g2"><extension url="http://example.invalid/initial"><valueCode value="BR"/></extension></given>'
    '</name>'
    '<gender value="female"/><birthDate value="1985-12-01"/><multipleBirthInteger value="2"/>'
    '<managingOrganization><reference value="#org"/></managingOrganization>',
    attrs=' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://hl7.org/fhir x.xsd"',
)


def structure(resource: dict) -> list[Finding]:
    return check_structure(resource)


def changed(**elements: Any) -> dict:
    resource = good_patient()
    for key, value in elements.items():
        if value is ...:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def parse_xml(body: str, root: str = "Patient") -> list[Finding]:
    return parse_fhir(xml(body, root)).findings


OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "Gewicht"}}

CASES: list[Case] = [
    # STRUCT-001: what the STU3 definition does not allow, in JSON and XML alike
    quiet("STRUCT-001", "good-json", lambda: structure(good_patient())),
    quiet("STRUCT-001", "good-xml", lambda: parse_fhir(GOOD_PATIENT_XML).findings),
    fires("STRUCT-001", "unknown-element", lambda: structure(changed(nickname="Suus"))),
    fires("STRUCT-001", "unknown-element-xml", lambda: parse_xml('<nickname value="Suus"/>')),
    fires("STRUCT-001", "array-for-single", lambda: structure(changed(gender=["female"]))),
    fires("STRUCT-001", "single-for-array", lambda: structure(changed(identifier={"system": "x", "value": "1"}))),
    fires("STRUCT-001", "boolean-as-string", lambda: structure(changed(active="true"))),
    fires("STRUCT-001", "boolean-as-string-xml", lambda: parse_xml('<active value="yes"/>')),
    fires("STRUCT-001", "integer-as-string", lambda: structure(changed(multipleBirthInteger="2"))),
    fires("STRUCT-001", "string-as-number", lambda: structure(changed(gender=1))),
    fires("STRUCT-001", "bad-date", lambda: structure(changed(birthDate="01-12-1985"))),
    fires("STRUCT-001", "bad-date-xml", lambda: parse_xml('<birthDate value="1985-13-01"/>')),
    fires("STRUCT-001", "missing-required", lambda: structure({"resourceType": "Observation", "code": {"text": "x"}})),
    fires("STRUCT-001", "two-choices", lambda: structure(changed(deceasedBoolean=False, deceasedDateTime="2020"))),
    fires("STRUCT-001", "required-choice", lambda: structure({"resourceType": "MedicationRequest", "intent": "order",
                                                             "subject": {"reference": "Patient/1"}})),
    fires("STRUCT-001", "null", lambda: structure(changed(gender=None))),
    fires("STRUCT-001", "empty-string", lambda: structure(changed(gender=""))),
    fires("STRUCT-001", "empty-object", lambda: structure(changed(managingOrganization={}))),
    fires("STRUCT-001", "empty-array", lambda: structure(changed(identifier=[]))),
    fires("STRUCT-001", "extension-part-of-complex", lambda: structure(changed(_name=[{"id": "x"}]))),
    fires("STRUCT-001", "complex-as-string", lambda: structure(changed(managingOrganization="Organization/1"))),
    fires("STRUCT-001", "nested-in-contained", lambda: structure(changed(
        contained=[{"resourceType": "Patient", "id": "c", "gender": "female", "birthDate": "not a date"}]))),
    fires("STRUCT-001", "element-in-primitive-xml", lambda: parse_xml('<gender value="female"><code value="F"/>'
                                                                      '</gender>')),
    quiet("STRUCT-001", "observation", lambda: structure(dict(OBSERVATION))),
    quiet("STRUCT-001", "primitive-only-extension", lambda: structure(changed(
        birthDate=..., _birthDate={"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                  "valueCode": "unknown"}]}))),
    # STRUCT-002: not an STU3 resource type, at the top or nested
    quiet("STRUCT-002", "good", lambda: structure(good_patient())),
    fires("STRUCT-002", "unknown-type", lambda: structure({"resourceType": "Patiënt", "id": "x"})),
    fires("STRUCT-002", "r4-only-type", lambda: structure({"resourceType": "ServiceRequest", "status": "active"})),
    fires("STRUCT-002", "abstract-type", lambda: structure({"resourceType": "DomainResource"})),
    fires("STRUCT-002", "unknown-type-json", lambda: parse_fhir(b'{"resourceType": "Foo", "id": "1"}').findings),
    fires("STRUCT-002", "unknown-type-xml", lambda: parse_fhir(xml('<id value="1"/>', root="Foo")).findings),
    fires("STRUCT-002", "unknown-contained", lambda: structure(changed(contained=[{"resourceType": "Foo"}]))),
    fires("STRUCT-002", "contained-without-type", lambda: structure(changed(contained=[{"id": "x"}]))),
    fires("STRUCT-002", "contained-not-object", lambda: structure(changed(contained=[5]))),
    fires("STRUCT-002", "unknown-contained-xml", lambda: parse_xml('<contained><Foo/></contained>')),
    fires("STRUCT-002", "unknown-entry", lambda: structure({"resourceType": "Bundle", "type": "searchset",
                                                           "entry": [{"resource": {"resourceType": "Foo"}}]})),
    fires("STRUCT-002", "not-an-object", lambda: check_structure([])),  # type: ignore[arg-type]
    # STRUCT-003: the XML form itself
    quiet("STRUCT-003", "good", lambda: parse_fhir(GOOD_PATIENT_XML).findings),
    fires("STRUCT-003", "foreign-namespace", lambda: parse_xml('<x:gender xmlns:x="urn:other" value="female"/>')),
    fires("STRUCT-003", "unknown-attribute", lambda: parse_xml('<gender value="female" lang="nl"/>')),
    fires("STRUCT-003", "text-content", lambda: parse_xml('<gender>female</gender>')),
    fires("STRUCT-003", "repeated-single", lambda: parse_xml('<gender value="female"/><gender value="male"/>')),
    fires("STRUCT-003", "primitive-without-value", lambda: parse_xml('<gender/>')),
    fires("STRUCT-003", "two-resources-contained", lambda: parse_xml(
        '<contained><Organization><id value="a"/></Organization><Organization><id value="b"/></Organization>'
        '</contained>')),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    check_case(case)


def module_rules() -> set[str]:
    return {v.id for v in vars(structure_rules).values() if isinstance(v, Rule)}


def test_every_rule_fires_and_stays_quiet() -> None:
    # STRUCT-004 (JSON key twice) and STRUCT-005 (XML element order) have their cases in test_serialisation
    assert module_rules() == {"STRUCT-001", "STRUCT-002", "STRUCT-003", "STRUCT-004", "STRUCT-005"}
    assert module_rules() - {"STRUCT-004", "STRUCT-005"} <= {c.rule for c in CASES if c.fires}
    assert module_rules() - {"STRUCT-004", "STRUCT-005"} <= {c.rule for c in CASES if not c.fires}


# --- reading ---------------------------------------------------------------------------------------
def test_json_is_read_as_is() -> None:
    data = json.dumps(good_patient()).encode()
    parsed = parse_fhir(b"\xef\xbb\xbf \n" + data)
    assert isinstance(parsed, ParsedFhir)
    assert parsed.format == "json" and parsed.resource == good_patient() and parsed.findings == []


def test_xml_becomes_fhir_json() -> None:
    parsed = parse_fhir(GOOD_PATIENT_XML)
    assert parsed.format == "xml"
    assert parsed.findings == []
    # primitives typed as FHIR JSON, extensions on primitives in `_x`, aligned with nulls in arrays
    assert parsed.resource == good_patient()


def test_xml_keeps_primitive_text_exactly() -> None:
    body = ('<status value="final"/><code><text value="x"/></code>'
            '<effectiveDateTime value="2019-09-03T11:01:07.9477128+00:00"/>'
            '<valueQuantity><value value="1.50"/><unit value="kg"/></valueQuantity>')
    resource = parse_fhir(xml(body, root="Observation")).resource
    assert resource["effectiveDateTime"] == "2019-09-03T11:01:07.9477128+00:00"
    assert resource["valueQuantity"]["value"] == 1.5


def test_xml_and_json_give_the_same_findings() -> None:
    bad_json = changed(active="yes", nickname="Suus", birthDate="1985-13-01")
    bad_xml = GOOD_PATIENT_XML.replace(b'<active value="true"/>', b'<active value="yes"/><nickname value="Suus"/>')
    bad_xml = bad_xml.replace(b"1985-12-01", b"1985-13-01")
    from_xml = parse_fhir(bad_xml).findings
    from_json = parse_fhir(json.dumps(bad_json).encode()).findings
    assert from_xml and sorted(map(repr, from_xml)) == sorted(map(repr, from_json))
    assert {f.location for f in from_xml} == {"Patient.active", "Patient.nickname", "Patient.birthDate"}


def test_required_and_choice_are_reported_alongside_other_errors() -> None:
    """pydantic checks these only when every field is right; our walk always does, and nothing is said twice."""
    resource = {"resourceType": "Observation", "code": {"text": "x"}, "valueQuantity": {"value": 1},
                "valueString": "x", "issued": "yesterday", "extension": [{"valueString": "no url"}]}
    found = sorted((f.location, f.message.split(";")[0]) for f in check_structure(resource))
    assert [location for location, _ in found] == ["Observation", "Observation.extension[0].url",
                                                   "Observation.issued", "Observation.status"]
    assert found[0][1] == "Observation.value[x] takes at most one type"


def test_structure_false_skips_the_model_check() -> None:
    data = json.dumps(changed(active="yes")).encode()
    assert parse_fhir(data, structure=False).findings == []
    assert [f.rule for f in parse_fhir(data).findings] == ["STRUCT-001"]
    unknown = parse_fhir(b'{"resourceType": "Foo"}', structure=False)
    assert [f.rule for f in unknown.findings] == ["STRUCT-002"]


def test_locations_are_fhirpath_like() -> None:
    resource = changed(name=[{"given": ["A"], "_given": [{"extension": [{"valueString": "no url"}]}]}],
                       contained=[{"resourceType": "Patient", "gender": "female", "birthDate": "bad"}])
    locations = {f.location for f in check_structure(resource)}
    assert "Patient.name[0].given[0].extension[0].url" in locations
    assert "Patient.contained[0].birthDate" in locations


def test_unknown_nested_type_does_not_hide_other_problems() -> None:
    resource = changed(contained=[{"resourceType": "Foo"}], birthDate="bad")
    found = {(f.rule, f.location) for f in check_structure(resource)}
    assert found == {("STRUCT-002", "Patient.contained[0]"), ("STRUCT-001", "Patient.birthDate")}


def test_xml_bundle_entries_become_resources() -> None:
    body = ('<type value="searchset"/><total value="1"/>'
            '<entry><fullUrl value="https://x.example/fhir/Patient/p-1"/><resource><Patient><id value="p-1"/>'
            '<active value="true"/></Patient></resource><search><mode value="match"/></search></entry>')
    parsed = parse_fhir(xml(body, root="Bundle"))
    assert parsed.findings == []
    assert parsed.resource == {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [
        {"fullUrl": "https://x.example/fhir/Patient/p-1", "resource": {"resourceType": "Patient", "id": "p-1",
                                                                      "active": True},
         "search": {"mode": "match"}}]}


def test_deep_nesting_is_reported_not_raised() -> None:
    deep: dict = {"url": "http://example.invalid/leaf", "valueString": "x"}
    for _ in range(450):  # two JSON levels each: just inside what json.loads accepts
        deep = {"url": "http://example.invalid/nested", "extension": [deep]}
    resource = changed(extension=[deep])
    findings = check_structure(resource)
    assert [(f.rule, f.location) for f in findings] == [("STRUCT-001", "Patient")]
    assert "too deeply nested" in findings[0].message
    with pytest.raises(FhirParseError, match="nested too deep"):  # read from bytes: refused before any walk
        parse_fhir(json.dumps(resource).encode())
    deep_xml = xml('<extension url="u">' * 300 + '<valueString value="x"/>' + "</extension>" * 300)
    try:
        assert isinstance(parse_fhir(deep_xml).findings, list)
    except FhirParseError as e:  # libxml2 refuses depth beyond 256 without huge_tree
        assert "XML" in str(e)


def test_resource_types() -> None:
    assert is_resource_type("Patient") and is_resource_type("ProcedureRequest")
    for name in ("Resource", "DomainResource", "CodeableConcept", "ServiceRequest", "Foo", "", None, 5, "a.b"):
        assert not is_resource_type(name)


@pytest.mark.parametrize("data,needle", [
    (b"", "empty input"),
    (b"   \n", "empty input"),
    (b"hello", "neither JSON nor XML"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not a FHIR resource"),
    (b'{"id": "x"}', "no resourceType"),
    (b'{"resourceType": 5}', "no resourceType"),
    (b'{"resourceType": "Patient", "x": NaN}', "not valid JSON"),
    (b'{"resourceType": "Patient", "name": "\xff"}', "not UTF-8"),
    (b"<Patient", "not well-formed XML"),
    (b'<Patient xmlns="http://hl7.org/fhir"><id value="&undefined;"/></Patient>', "entities are not allowed"),
    (b"<Patient><id value='x'/></Patient>", "not in the FHIR namespace"),
    (b'<html xmlns="http://www.w3.org/1999/xhtml"/>', "not in the FHIR namespace"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_garbage_raises_a_one_line_error(data: bytes, needle: str) -> None:
    with pytest.raises(FhirParseError) as info:
        parse_fhir(data, source="upload.bin")
    message = str(info.value)
    assert needle in message and message.startswith("upload.bin: ") and "\n" not in message.strip()


# --- hostile XML -----------------------------------------------------------------------------------
SECRET = "s3cr3t-marker-4711"


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        _Recorder.requests.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(SECRET.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_server() -> Iterator[str]:
    _Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def xxe(target: str, where: str = "text") -> bytes:
    use = ('<id value="&xxe;"/>' if where == "attribute" else
           '<name><text value="x"/><family value="x">&xxe;</family></name>')
    return (f'<?xml version="1.0"?>\n<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "{target}">]>\n'
            f'<Patient {NS}>{use}</Patient>').encode()


BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                  + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b']>\n<Patient xmlns="http://hl7.org/fhir"><id value="&lol9;"/></Patient>')


def assert_refused(data: bytes) -> str:
    with pytest.raises(FhirParseError) as info:
        parse_fhir(data)
    message = str(info.value)
    assert "DOCTYPE/entities are not allowed" in message
    assert SECRET not in message
    return message


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_xxe_file_is_refused_and_not_read(secret_file: Path, where: str) -> None:
    assert_refused(xxe(secret_file.as_uri(), where))


def test_xxe_over_the_network_is_refused_and_not_fetched(http_server: str) -> None:
    assert_refused(xxe(f"{http_server}/entity"))
    external_dtd = f'<!DOCTYPE Patient SYSTEM "{http_server}/x.dtd"><Patient {NS}><id value="1"/></Patient>'
    assert_refused(external_dtd.encode())
    parameter_entity = (f'<!DOCTYPE Patient [<!ENTITY % remote SYSTEM "{http_server}/p.dtd"> %remote;]>'
                        f'<Patient {NS}/>')
    assert_refused(parameter_entity.encode())
    time.sleep(0.05)
    assert _Recorder.requests == []


def test_billion_laughs_is_refused_without_expansion() -> None:
    assert_refused(BILLION_LAUGHS)


def test_utf16_doctype_is_refused(secret_file: Path) -> None:
    assert_refused(xxe(secret_file.as_uri()).decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
                   .encode("utf-16"))


def test_parser_itself_never_resolves_entities(secret_file: Path, http_server: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Second line of defence: without the DOCTYPE pre-scan the parser neither reads nor expands anything."""
    monkeypatch.setattr(structure_rules, "_DTD_MARKERS", ())
    assert_refused(xxe(secret_file.as_uri()))
    assert_refused(xxe(f"{http_server}/entity"))
    assert_refused(BILLION_LAUGHS)
    assert _Recorder.requests == []


# --- robustness ------------------------------------------------------------------------------------
ODD_VALUES: list[Any] = [None, 0, 1.5, True, "", "x", [], {}, [None], [{}], {"a": 1}, {"resourceType": "Foo"},
                         {"resourceType": 5}, [5], {"extension": "x"}, "2020-13-99"]


def test_mutated_resources_never_raise() -> None:
    rnd = random.Random("fhir_parse")
    for _ in range(300):
        resource = good_patient()
        for _ in range(rnd.randint(1, 3)):
            path = rnd.choice(list(json_paths(resource))[1:])
            node = resource
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(rnd.choice(ODD_VALUES))
        findings = check_structure(resource)
        assert isinstance(findings, list)
        assert all(isinstance(f, Finding) and f.location for f in findings)
        # the same resource through the JSON reader; a broken resourceType is unreadable input
        try:
            assert isinstance(parse_fhir(json.dumps(resource).encode()).findings, list)
        except FhirParseError:
            assert not isinstance(resource.get("resourceType"), str) or not resource["resourceType"]


def test_mutated_xml_never_raises() -> None:
    rnd = random.Random("fhir_parse_xml")
    text = GOOD_PATIENT_XML.decode()
    snippets = ['<foo value="1"/>', '<extension/>', '<contained/>', '<given>text</given>', '<div>x</div>',
                '<valueDecimal value="1e999"/>', '<meta><profile/></meta>', '<x:y xmlns:x="urn:x"/>']
    for _ in range(200):
        cut = rnd.choice([i for i, ch in enumerate(text) if ch == "<" and text[i + 1] != "/" and text[i + 1] != "?"])
        mutated = text[:cut] + rnd.choice(snippets) + text[cut:]
        try:
            parsed = parse_fhir(mutated.encode())
        except FhirParseError:
            continue  # e.g. a snippet placed before the root: unreadable input, said so
        assert isinstance(parsed.findings, list)
