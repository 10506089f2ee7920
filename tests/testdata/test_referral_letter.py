import re
import shutil
import subprocess

import pytest

from testdata.patients import PATIENTS, find_patient
from testdata.referral_letter import pdf_string, referral_letter_pdf

GHANIYA = find_patient("999901497")


def letter(patient=GHANIYA, **kwargs):
    kwargs.setdefault("title", "Verwijsbrief (cardiologie)")
    kwargs.setdefault("lines", ["Geachte collega,", "Reden: hartfalen (NYHA II) \\ controle", "Met groet,"])
    return referral_letter_pdf(patient, **kwargs)


def test_header_and_trailer():
    pdf = letter()
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.endswith(b"%%EOF\n")
    assert b"/Type /Catalog" in pdf and b"/BaseFont /Helvetica" in pdf
    assert b"/Encoding /WinAnsiEncoding" in pdf


def test_xref_offsets_point_at_their_objects():
    pdf = letter()
    startxref = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", pdf).group(1))
    assert pdf[startxref:].startswith(b"xref\n")
    m = re.match(rb"xref\n0 (\d+)\n", pdf[startxref:])
    count = int(m.group(1))
    table = pdf[startxref + m.end():]
    entries = [table[i * 20:(i + 1) * 20] for i in range(count)]
    assert entries[0] == b"0000000000 65535 f \n"
    for number, entry in enumerate(entries[1:], start=1):
        assert re.fullmatch(rb"\d{10} 00000 n \n", entry), entry
        offset = int(entry[:10])
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    trailer = table[count * 20:]
    assert trailer.startswith(b"trailer\n") and b"/Size %d" % count in trailer and b"/Root 1 0 R" in trailer


def test_stream_length_is_exact():
    pdf = letter()
    m = re.search(rb"<< /Length (\d+) >>\nstream\n", pdf)
    length = int(m.group(1))
    assert pdf[m.end() + length:].startswith(b"endstream")


def test_text_escaping_and_cp1252():
    assert pdf_string("a(b)c\\d") == b"(a\\(b\\)c\\\\d)"
    assert pdf_string("é") == b"(\\351)"
    assert pdf_string("Ç") == b"(\\307)"
    pdf = letter()
    assert b"(Verwijsbrief \\(cardiologie\\)) Tj" in pdf
    assert b"\\\\ controle" in pdf
    assert b"\\307elik-Noermohamed" in pdf  # Ç of the patient's name, WinAnsi byte 0xC7
    body = pdf[pdf.index(b"1 0 obj"):]
    assert all(b < 0x80 for b in body)  # everything after the binary comment is 7-bit


def test_patient_header_and_deterministic():
    pdf = letter()
    assert b"BSN: 999901497" in pdf
    assert b"Overleden: 01-07-2018" in pdf
    assert letter() == pdf
    assert letter(title="Other") != pdf


def test_long_lines_wrap_and_overlong_letters_are_refused():
    pdf = letter(lines=["woord " * 60])
    assert pdf.count(b" Tj T*") >= 4
    with pytest.raises(ValueError):
        letter(lines=[f"regel {i}" for i in range(200)])


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext not installed")
def test_pdftotext_reads_it(tmp_path):
    path = tmp_path / "letter.pdf"
    path.write_bytes(letter(PATIENTS[0]))
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True).stdout.decode()
    assert "Verwijsbrief (cardiologie)" in text and "Suzanne Moulin" in text
