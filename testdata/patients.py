"""The test patients of SPEC §7.

Nine public test persons (BV BSN test dataset of RvIG and Nictiz BgZ MSZ test patients). Each has
at least one referral letter; what else they have is decided by `content`:

- ``"full"``: a complete BgZ, every one of the 28 queries of SPEC §6 returns data;
- ``"sparse"``: only the Patient, the general practitioner, the Coverage and the documents.

`testdata.bgz_content` turns a `TestPatient` into FHIR resources.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Listed in the BSN test range but failing the 11-check: a good negative case (SPEC §7).
INVALID_BSN = "999999245"


@dataclass(frozen=True)
class Address:
    line: str
    postal_code: str
    city: str


@dataclass(frozen=True)
class TestPatient:
    """One test person; `birth_date` and `deceased` are ISO dates (YYYY-MM-DD)."""

    __test__ = False  # not a pytest test class, despite the name

    bsn: str
    given: str
    family: str
    birth_date: str
    sex: Literal["F", "M"]
    deceased: str | None = None
    content: Literal["full", "sparse"] = "full"
    letters: int = 1
    address: Address | None = None

    @property
    def display_name(self) -> str:
        return f"{self.given} {self.family}"


PATIENTS: tuple[TestPatient, ...] = (
    TestPatient("999993653", "Suzanne", "Moulin", "1985-12-01", "F"),
    TestPatient("999990639", "Mattheus", "du Burck", "1922-09-25", "M", letters=2),
    TestPatient("999993872", "Peter-Jan", "van der Meijden", "1959-04-17", "M"),
    TestPatient("999991723", "Lukas", "Klamer", "1995-05-15", "M", content="sparse"),
    TestPatient("999992740", "Jael", "de Jager", "2000-01-01", "F"),
    TestPatient("999901370", "H.", "de Herder", "1985-12-16", "M"),
    TestPatient("999901497", "Ghaniya", "Çelik-Noermohamed", "1985-12-27", "F", deceased="2018-07-01"),
    TestPatient("999909587", "Jan", "van Houten", "1954-07-25", "M", letters=2),
    TestPatient("999911259", "Michelle", "Bergzoon-Verheul", "1964-08-01", "F"),
)


def find_patient(bsn: str) -> TestPatient | None:
    """The test patient with this BSN, or None."""
    for patient in PATIENTS:
        if patient.bsn == bsn:
            return patient
    return None
