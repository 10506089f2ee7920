from datetime import date

from testdata.patients import INVALID_BSN, PATIENTS, TestPatient, find_patient


def elfproef(bsn: str) -> bool:
    if len(bsn) != 9 or not bsn.isdigit():
        return False
    return sum(int(d) * w for d, w in zip(bsn, (9, 8, 7, 6, 5, 4, 3, 2, -1))) % 11 == 0


# SPEC §7, as published
SPEC_TABLE = {
    "999993653": ("Suzanne Moulin", "1985-12-01", "F"),
    "999990639": ("Mattheus du Burck", "1922-09-25", "M"),
    "999993872": ("Peter-Jan van der Meijden", "1959-04-17", "M"),
    "999991723": ("Lukas Klamer", "1995-05-15", "M"),
    "999992740": ("Jael de Jager", "2000-01-01", "F"),
    "999901370": ("H. de Herder", "1985-12-16", "M"),
    "999901497": ("Ghaniya Çelik-Noermohamed", "1985-12-27", "F"),
    "999909587": ("Jan van Houten", "1954-07-25", "M"),
    "999911259": ("Michelle Bergzoon-Verheul", "1964-08-01", "F"),
}


def test_the_nine_patients_of_the_spec():
    assert len(PATIENTS) == 9
    assert {p.bsn: (p.display_name, p.birth_date, p.sex) for p in PATIENTS} == SPEC_TABLE


def test_bsns_pass_the_11_check_and_the_invalid_one_does_not():
    assert all(elfproef(p.bsn) for p in PATIENTS)
    assert all(p.bsn.startswith("9999") for p in PATIENTS)
    assert not elfproef(INVALID_BSN)
    assert find_patient(INVALID_BSN) is None


def test_birth_dates_are_iso_dates():
    for p in PATIENTS:
        assert date.fromisoformat(p.birth_date).isoformat() == p.birth_date


def test_coverage_of_the_test_dataset():
    assert [p.display_name for p in PATIENTS if p.content == "sparse"] == ["Lukas Klamer"]
    deceased = [p for p in PATIENTS if p.deceased]
    assert [(p.given, p.deceased) for p in deceased] == [("Ghaniya", "2018-07-01")]
    assert any(p.letters >= 2 for p in PATIENTS)
    assert all(p.letters >= 1 for p in PATIENTS)
    assert find_patient("999901497").family == "Çelik-Noermohamed"


def test_find_patient_and_display_name():
    p = find_patient("999993872")
    assert isinstance(p, TestPatient)
    assert p.display_name == "Peter-Jan van der Meijden"
    assert find_patient("123456782") is None
