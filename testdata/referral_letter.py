"""Referral letters (verwijsbrieven) as real, minimal PDF 1.4 files written by hand.

One A4 page, Helvetica and Helvetica-Bold (standard Type1 fonts, WinAnsiEncoding so that é, ç, ë …
are written as cp1252 bytes), an uncompressed content stream, a correct cross-reference table.
The output depends only on the arguments (no timestamps, no random ids), so tests can compare bytes.
"""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testdata.patients import TestPatient

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN_LEFT, MARGIN_TOP, MARGIN_BOTTOM = 72, 72, 72
TITLE_SIZE, BODY_SIZE, LEADING = 16, 11, 15
WRAP_COLUMNS = 85  # Helvetica 11 pt averages ~5.3 pt a character: 85 columns fit in 451 pt
MAX_BODY_LINES = (PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM - 3 * LEADING) // LEADING


def pdf_string(text: str) -> bytes:
    """A PDF literal string for a WinAnsi-encoded font: cp1252 bytes, `( ) \\` escaped,
    everything outside printable ASCII written as an octal escape (the file stays 7-bit)."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte <= 0x7E:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


def _text_string(text: str) -> bytes:
    """A PDF text string (document information): ASCII as a literal, otherwise UTF-16BE with BOM."""
    if text.isascii():
        return pdf_string(text)
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _wrap(lines: list[str]) -> list[str]:
    wrapped: list[str] = []
    for line in lines:
        if not line.strip():
            wrapped.append("")
            continue
        wrapped.extend(textwrap.wrap(line, WRAP_COLUMNS, break_long_words=True, break_on_hyphens=False))
    return wrapped


def _content_stream(title: str, header: list[str], body: list[str]) -> bytes:
    y = PAGE_HEIGHT - MARGIN_TOP
    ops = [b"BT", b"/F2 %d Tf" % TITLE_SIZE, b"%d %d Td" % (MARGIN_LEFT, y), pdf_string(title) + b" Tj",
           b"/F1 %d Tf" % BODY_SIZE, b"%d TL" % LEADING, b"0 %d Td" % (-2 * LEADING)]
    for line in header:
        ops.append(pdf_string(line) + b" Tj T*")
    ops.append(b"T*")
    for line in body:
        ops.append(pdf_string(line) + b" Tj T*" if line else b"T*")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def _format_date(iso_date: str) -> str:
    year, month, day = iso_date.split("-")
    return f"{day}-{month}-{year}"


def referral_letter_pdf(patient: "TestPatient", *, title: str, lines: list[str]) -> bytes:
    """A one-page PDF 1.4 letter: `title` in bold, a patient header (name, birth date, BSN), `lines`.

    Long lines are wrapped; a letter that does not fit on one page raises ValueError.
    """
    header = [f"Patiënt: {patient.display_name}",
              f"Geboortedatum: {_format_date(patient.birth_date)}    BSN: {patient.bsn}"]
    if patient.deceased:
        header.append(f"Overleden: {_format_date(patient.deceased)}")
    body = _wrap(lines)
    if len(header) + 1 + len(body) > MAX_BODY_LINES:
        raise ValueError(f"letter too long for one page: {len(body)} lines, at most "
                         f"{MAX_BODY_LINES - len(header) - 1} fit")
    stream = _content_stream(title, header, body)

    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
        b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>" % (PAGE_WIDTH, PAGE_HEIGHT),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
        b"<< /Title " + _text_string(f"{title} - {patient.display_name}")
        + b" /Producer (speeltuin) /Creator (speeltuin testdata) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment: marks the file as binary
    offsets: list[int] = []
    for number, body_bytes in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body_bytes + b"\nendobj\n"
    xref_offset = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    out += b"startxref\n%d\n%%%%EOF\n" % xref_offset
    return bytes(out)
