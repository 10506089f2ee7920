from __future__ import annotations

import pytest

from validators import spec
from validators.identifiers import check_bsn, check_identifier_system, check_ura, is_valid_bsn, is_valid_ura

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
    fires("ID-SYS-001", "placeholder", lambda: check_identifier_system("http://example.org/ura", spec.URA_SYSTEM, "s")),
    fires("ID-SYS-001", "case", lambda: check_identifier_system(spec.URA_SYSTEM.upper(), spec.URA_SYSTEM, "s")),
    fires("ID-SYS-001", "other-system", lambda: check_identifier_system(spec.AGB_SYSTEM, spec.URA_SYSTEM, "s")),
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
