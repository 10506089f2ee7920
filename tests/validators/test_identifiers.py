from __future__ import annotations

import pytest

from validators import spec
from validators.rules.identifiers import (
    check_agb,
    check_big,
    check_bsn,
    check_identifier,
    check_identifier_system,
    check_identifiers_in,
    check_ura,
    check_uzi_person,
    check_uzi_system,
    check_uzovi,
    is_placeholder_system,
    is_valid_bsn,
    is_valid_ura,
)

from ._cases import check_case, fires, quiet


@pytest.mark.parametrize("bsn", ["999993653", "999990639", "999993872", "999991723", "999992740", "999901370",
                                 "999901497", "999909587", "999911259"])
def test_spec_test_patients_pass_the_11_check(bsn: str) -> None:
    assert is_valid_bsn(bsn)


@pytest.mark.parametrize("bsn", ["999999245", "99999365", "9999936530", "99999365a", "", "٩٩٩٩٩٣٦٥٣"])
def test_invalid_bsns(bsn: str) -> None:
    assert not is_valid_bsn(bsn)


def test_is_valid_ura() -> None:
    assert is_valid_ura("12345678")
    assert not is_valid_ura(12345678)
    assert not is_valid_ura("1234567")


URA_LOC = "Task.owner.identifier.value"
NS = spec.NS


def ident(system: str, value: object) -> list:
    return check_identifier({"system": system, "value": value}, "Patient.identifier[0]")

CASES = [
    quiet("ID-BSN-001", "valid", lambda: check_bsn("999993653", "x")),
    fires("ID-BSN-001", "eight-digits", lambda: check_bsn("99999365", "x")),
    fires("ID-BSN-001", "integer", lambda: check_bsn(999993653, "x")),
    fires("ID-BSN-001", "none", lambda: check_bsn(None, "x")),
    quiet("ID-BSN-002", "valid", lambda: check_bsn("999993653", "x")),
    quiet("ID-BSN-002", "wrong-format-is-BSN-001-only", lambda: check_bsn("12", "x")),
    fires("ID-BSN-002", "999999245", lambda: check_bsn("999999245", "x")),
    quiet("ID-URA-001", "valid", lambda: check_ura("12345678", URA_LOC)),
    fires("ID-URA-001", "seven-digits", lambda: check_ura("1234567", URA_LOC)),
    fires("ID-URA-001", "letters", lambda: check_ura("1234567X", URA_LOC)),
    fires("ID-URA-001", "integer", lambda: check_ura(12345678, URA_LOC)),
    quiet("ID-SYS-001", "exact", lambda: check_identifier_system(spec.URA_SYSTEM, spec.URA_SYSTEM, "s")),
    fires("ID-SYS-001", "missing", lambda: check_identifier_system(None, spec.URA_SYSTEM, "s")),
    quiet("ID-SYS-001", "placeholder-is-its-own-rule",
          lambda: check_identifier_system("http://example.org/ura", spec.URA_SYSTEM, "s")),
    fires("ID-SYS-001", "case", lambda: check_identifier_system(spec.URA_SYSTEM.upper(), spec.URA_SYSTEM, "s")),
    fires("ID-SYS-001", "other-system", lambda: check_identifier_system(spec.AGB_SYSTEM, spec.URA_SYSTEM, "s")),
    fires("ID-SYS-001", "https-bsn-in-identifier", lambda: ident("https://fhir.nl/fhir/NamingSystem/bsn", "999993653")),
    fires("ID-SYS-001", "uppercase-ura-in-identifier", lambda: ident(NS + "URA", "12345678")),
    quiet("ID-SYS-002", "real-system", lambda: check_identifier_system(spec.URA_SYSTEM, spec.URA_SYSTEM, "s")),
    quiet("ID-SYS-002", "other-real-system", lambda: ident("urn:oid:2.16.528.1.1007.3.3", "12345678")),
    quiet("ID-SYS-002", "test-host-is-not-a-placeholder", lambda: ident("https://speeltuin.test/ids", "1")),
    fires("ID-SYS-002", "example-org-for-ura",
          lambda: check_identifier_system("http://example.org/ura", spec.URA_SYSTEM, "s")),
    fires("ID-SYS-002", "example-com-subdomain", lambda: ident("https://fhir.example.com/NamingSystem/bsn", "x")),
    fires("ID-SYS-002", "placeholder-word", lambda: ident("urn:placeholder:ura", "12345678")),
    fires("ID-SYS-002", "todo", lambda: ident("TODO", "12345678")),
    fires("ID-SYS-002", "template", lambda: ident("{{ura-system}}", "12345678")),
    fires("ID-SYS-002", "empty", lambda: ident("", "12345678")),
    fires("ID-SYS-002", "empty-where-bsn-expected", lambda: check_identifier_system("", spec.BSN_SYSTEM, "s")),
    quiet("ID-UZI-001", "nine-digits", lambda: check_uzi_person("000001111", "v")),
    quiet("ID-UZI-001", "identifier", lambda: ident(spec.UZI_PERSON_SYSTEM, "129854656")),
    fires("ID-UZI-001", "eight-digits", lambda: ident(spec.UZI_PERSON_SYSTEM, "12985465")),
    fires("ID-UZI-001", "integer", lambda: check_uzi_person(129854656, "v")),
    quiet("ID-UZI-002", "eight-digits", lambda: ident(spec.UZI_SYSTEM_SYSTEM, "00012345")),
    fires("ID-UZI-002", "letters", lambda: ident(spec.UZI_SYSTEM_SYSTEM, "GTK-01")),
    fires("ID-UZI-002", "ten-digits", lambda: check_uzi_system("0123456789", "v")),
    quiet("ID-AGB-001", "eight-digits", lambda: ident(spec.AGB_SYSTEM, "01069857")),
    quiet("ID-AGB-001", "value", lambda: check_agb("01069857", "v")),
    fires("ID-AGB-001", "seven-digits", lambda: ident(spec.AGB_SYSTEM, "1069857")),
    fires("ID-AGB-001", "missing-value", lambda: check_identifier({"system": spec.AGB_SYSTEM}, "i")),
    quiet("ID-UZOVI-001", "four-digits", lambda: ident(spec.UZOVI_SYSTEM, "3332")),
    fires("ID-UZOVI-001", "five-digits", lambda: check_uzovi("03332", "v")),
    quiet("ID-BIG-001", "eleven-digits", lambda: ident(spec.BIG_SYSTEM, "12345678912")),
    fires("ID-BIG-001", "nine-digits", lambda: check_big("123456789", "v")),
    quiet("ID-BSN-002", "identifier", lambda: ident(spec.BSN_SYSTEM, "999911120")),
    fires("ID-BSN-002", "identifier-11-check", lambda: ident(spec.BSN_SYSTEM, "999999245")),
    fires("ID-URA-001", "identifier", lambda: ident(spec.URA_SYSTEM, "1234")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_location_and_evidence() -> None:
    [finding] = check_bsn("999999245", "Task.for.identifier.value")
    assert finding.location == "Task.for.identifier.value"
    assert "999999245" in finding.message
    [finding] = check_identifier_system("http://example.org/ura", spec.URA_SYSTEM, "Task.owner.identifier.system")
    assert "placeholder" in finding.message and spec.URA_SYSTEM in finding.message


def test_check_identifier_locations() -> None:
    [finding] = ident(spec.AGB_SYSTEM, "123")
    assert (finding.rule, finding.location) == ("ID-AGB-001", "Patient.identifier[0].value")
    [finding] = ident("http://example.org/agb", "123")
    assert (finding.rule, finding.location) == ("ID-SYS-002", "Patient.identifier[0].system")
    [finding] = ident(NS + "BSN", "999993653")
    assert finding.rule == "ID-SYS-001" and spec.BSN_SYSTEM in finding.message


def test_check_identifier_leaves_other_systems_alone() -> None:
    assert ident("http://example-xis.org/fhir/NamingSystem/patientID", "anything") == []  # not an RFC 2606 host
    assert ident(spec.RFC3986, "urn:uuid:1") == []
    assert check_identifier("not an identifier", "x") == []  # type: ignore[arg-type]
    assert check_identifier({"value": "1"}, "x") == []


@pytest.mark.parametrize("system,expected", [
    ("", True), ("  ", True), ("http://example.org/ura", True), ("https://EXAMPLE.COM", True),
    ("http://ids.example/x", True), ("urn:todo", True), ("<system>", True), ("xxx", True),
    (spec.URA_SYSTEM, False), ("http://myexample.com/system/careplan", False), ("https://speeltuin.test/x", False),
    ("urn:oid:2.16.528.1.1007.3.3", False), (None, False), (5, False), ("http://[::1", True),
])
def test_is_placeholder_system(system: object, expected: bool) -> None:
    assert is_placeholder_system(system) is expected


def patient() -> dict:
    return {
        "resourceType": "Patient", "id": "p-1",
        "identifier": [{"system": spec.BSN_SYSTEM, "value": "999993653"},
                       {"system": "http://example-xis.org/fhir/NamingSystem/patientID", "value": "local-1"}],
        "generalPractitioner": [{"identifier": {"system": spec.AGB_SYSTEM, "value": "01069857"}, "display": "GP"}],
        "contained": [{"resourceType": "Organization", "identifier": [{"system": spec.URA_SYSTEM, "value": "1234"}],
                       "type": [{"coding": [{"system": spec.URA_SYSTEM, "code": "not-an-identifier"}]}]}],
    }


def test_check_identifiers_in_walks_every_dutch_identifier() -> None:
    found = check_identifiers_in(patient(), "Patient")
    assert [(f.rule, f.location) for f in found] == [("ID-URA-001", "Patient.contained[0].identifier[0].value")]
    resource = patient()
    resource["identifier"][0]["value"] = "999999245"
    resource["generalPractitioner"][0]["identifier"]["system"] = NS + "AGB-Z"
    found = check_identifiers_in(resource, "Patient")
    assert [(f.rule, f.location) for f in found] == [
        ("ID-BSN-002", "Patient.identifier[0].value"),
        ("ID-SYS-001", "Patient.generalPractitioner[0].identifier.system"),
        ("ID-URA-001", "Patient.contained[0].identifier[0].value"),
    ]


def test_check_identifiers_in_survives_deep_and_odd_input() -> None:
    deep: object = {"system": spec.BSN_SYSTEM, "value": "999993653"}
    for _ in range(5000):
        deep = {"extension": [deep]}
    assert check_identifiers_in(deep, "X") == []
    assert check_identifiers_in([None, 1, "x", {"system": 5}], "X") == []
