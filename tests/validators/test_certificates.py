"""Certificates (SPEC §5.1): a test CA made here, UZI otherName with the URA, chains, and the TLS key rule.

The PKI below is built once per run with EC keys (fast) and reused by test_jwt_assertion for x5c.
"""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from validators import spec
from validators.rules.certificates import (
    check_certificate_ura,
    check_chain,
    check_signing_key_not_tls,
    decode_der_string,
    decode_x5c,
    encode_der_ia5_string,
    load_certificate,
    parse_uzi_name,
    public_key_der,
    ura_from_certificate,
    ura_mismatch,
    uzi_other_name,
)

from ._cases import check_case, fires, quiet

NOW = 1_700_000_000  # the same instant as test_jwt_assertion
NOW_DT = datetime.fromtimestamp(NOW, tz=timezone.utc)
URA = "90000101"
UZI_TEXT = f"{spec.UZI_SERVER_CA_OID}-1-12345678-S-{URA}-00.000-01069857"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Speeltuin test PKI")])


def make_cert(common_name: str, key: ec.EllipticCurvePrivateKey, *, issuer: tuple[x509.Certificate, Any] | None = None,
              ca: bool = False, san: list[x509.GeneralName] | None = None, not_before: datetime | None = None,
              not_after: datetime | None = None) -> x509.Certificate:
    """A certificate signed by `issuer` (certificate, key), or self-signed."""
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (_name(common_name), key)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name)).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW_DT - timedelta(days=30))
               .not_valid_after(not_after or NOW_DT + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def utf8_other_name(text: str) -> x509.OtherName:
    """The otherName value as DER UTF8String (tag 0x0C), long-form length when the text needs it."""
    body = text.encode("utf-8")
    length = bytes([len(body)]) if len(body) < 0x80 else bytes([0x81, len(body)])
    return x509.OtherName(ObjectIdentifier(spec.UZI_OTHER_NAME_OID), b"\x0c" + length + body)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def x5c(*certs: x509.Certificate) -> list[str]:
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]


CA_KEY, INTERMEDIATE_KEY, LEAF_KEY, OTHER_CA_KEY = key(), key(), key(), key()
CA = make_cert("Speeltuin Test Root CA", CA_KEY, ca=True)
INTERMEDIATE = make_cert("Speeltuin Test Server CA", INTERMEDIATE_KEY, issuer=(CA, CA_KEY), ca=True)
LEAF = make_cert("gtk.vendor.test", LEAF_KEY, issuer=(INTERMEDIATE, INTERMEDIATE_KEY),
                 san=[x509.DNSName("gtk.vendor.test"), uzi_other_name("12345678", URA, "01069857")])
LEAF_UTF8 = make_cert("utf8.vendor.test", LEAF_KEY, issuer=(CA, CA_KEY), san=[utf8_other_name(UZI_TEXT)])
LEAF_NO_URA = make_cert("plain.vendor.test", LEAF_KEY, issuer=(CA, CA_KEY), san=[x509.DNSName("plain.vendor.test")])
LEAF_BAD_URA = make_cert("bad.vendor.test", LEAF_KEY, issuer=(CA, CA_KEY),
                         san=[x509.OtherName(ObjectIdentifier(spec.UZI_OTHER_NAME_OID),
                                             encode_der_ia5_string("URA:90000101"))])
EXPIRED_LEAF = make_cert("expired.vendor.test", LEAF_KEY, issuer=(CA, CA_KEY),
                         not_before=NOW_DT - timedelta(days=400), not_after=NOW_DT - timedelta(days=1))
FUTURE_LEAF = make_cert("future.vendor.test", LEAF_KEY, issuer=(CA, CA_KEY), not_before=NOW_DT + timedelta(days=1))
OTHER_CA = make_cert("Somebody Else's CA", OTHER_CA_KEY, ca=True)
FOREIGN_LEAF = make_cert("foreign.vendor.test", LEAF_KEY, issuer=(OTHER_CA, OTHER_CA_KEY))
# Signed by a leaf that is not a CA: the chain must not accept it.
NOT_CA_ISSUED = make_cert("sub.vendor.test", key(), issuer=(LEAF_NO_URA, LEAF_KEY))
CA_PEM = pem(CA)
TLS_KEY = key()
TLS_CERT = make_cert("tls.vendor.test", TLS_KEY, issuer=(CA, CA_KEY))


def jwk(private_key: Any, kid: str = "k") -> dict:
    return {**jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid}


CASES = [
    quiet("CERT-001", "same-ura", lambda: check_certificate_ura(LEAF, URA)),
    quiet("CERT-001", "utf8-string-value", lambda: check_certificate_ura(LEAF_UTF8, URA)),
    quiet("CERT-001", "pem-input", lambda: check_certificate_ura(pem(LEAF), URA)),
    fires("CERT-001", "other-ura", lambda: check_certificate_ura(LEAF, "90000202")),
    fires("CERT-001", "sub-not-a-string", lambda: check_certificate_ura(LEAF, 90000101)),
    quiet("CERT-002", "uzi-name", lambda: check_certificate_ura(LEAF, URA)),
    fires("CERT-002", "no-other-name", lambda: check_certificate_ura(LEAF_NO_URA, URA)),
    fires("CERT-002", "other-shape", lambda: check_certificate_ura(LEAF_BAD_URA, URA)),
    quiet("CERT-003", "separate-keys", lambda: check_signing_key_not_tls(jwk(LEAF_KEY), pem(TLS_CERT))),
    quiet("CERT-003", "unusable-jwk-not-judged", lambda: check_signing_key_not_tls({"kty": "EC"}, pem(TLS_CERT))),
    fires("CERT-003", "jwk-of-tls-key", lambda: check_signing_key_not_tls(jwk(TLS_KEY), pem(TLS_CERT))),
    fires("CERT-003", "certificate-with-tls-key", lambda: check_signing_key_not_tls(TLS_CERT, pem(TLS_CERT))),
    fires("CERT-003", "private-key", lambda: check_signing_key_not_tls(TLS_KEY, TLS_CERT)),
    quiet("CERT-004", "der", lambda: check_certificate_ura(LEAF.public_bytes(serialization.Encoding.DER), URA)),
    fires("CERT-004", "garbage", lambda: check_certificate_ura(b"not a certificate", URA)),
    fires("CERT-004", "bad-pem", lambda: check_certificate_ura("-----BEGIN CERTIFICATE-----\nAAAA\n", URA)),
    fires("CERT-004", "tls-garbage", lambda: check_signing_key_not_tls(jwk(LEAF_KEY), b"\x30\x03")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


def test_ura_from_certificate() -> None:
    assert ura_from_certificate(LEAF) == URA
    assert ura_from_certificate(LEAF_UTF8) == URA
    assert ura_from_certificate(LEAF_NO_URA) is None
    assert ura_from_certificate(LEAF_BAD_URA) is None
    assert ura_from_certificate(CA) is None  # no subjectAltName at all


def test_ura_mismatch_names_what_the_certificate_carries() -> None:
    assert ura_mismatch(LEAF, URA) is None
    assert ura_mismatch(LEAF, "90000202") == f"names URA {URA}"
    assert ura_mismatch(LEAF_NO_URA, URA) == "names no URA"
    assert ura_mismatch(CA, URA) == "names no URA"


def test_uzi_other_name_round_trip() -> None:
    name = uzi_other_name("12345678", URA, "01069857")
    assert name.type_id.dotted_string == "2.5.5.5"
    assert decode_der_string(name.value) == UZI_TEXT
    parsed = parse_uzi_name(UZI_TEXT)
    assert parsed is not None
    assert (parsed.uzi_number, parsed.card_type, parsed.ura, parsed.role, parsed.agb) == \
        ("12345678", "S", URA, "00.000", "01069857")


@pytest.mark.parametrize("text", ["", "a-b", UZI_TEXT + "-extra", f"{spec.UZI_SERVER_CA_OID}-1--S-{URA}-00.000-x"])
def test_parse_uzi_name_rejects_other_shapes(text: str) -> None:
    assert parse_uzi_name(text) is None


def test_der_strings() -> None:
    long_text = "x" * 200
    assert decode_der_string(encode_der_ia5_string(long_text)) == long_text
    assert encode_der_ia5_string(long_text)[:3] == b"\x16\x81\xc8"
    assert decode_der_string(b"\x0c\x03\xc3\xa9x") == "éx"  # UTF8String
    assert decode_der_string(b"\x13\x02ab") == "ab"  # PrintableString
    for bad in (b"", b"\x16", b"\x04\x02ab", b"\x16\x05ab", b"\x16\x80", b"\x16\x85\x00\x00\x00\x00\x01a",
                b"\x16\x02\xff\xfe", b"\x16\x01ab"):
        assert decode_der_string(bad) is None, bad


def test_chain_checks() -> None:
    assert check_chain([LEAF, INTERMEDIATE], [CA], NOW_DT).ok
    assert check_chain([LEAF, INTERMEDIATE, CA], [CA], NOW_DT).ok  # the root may be included
    assert check_chain([LEAF], [INTERMEDIATE, CA], NOW_DT).ok  # the trusted file may hold the intermediate
    assert "not issued by the trusted CA" in (check_chain([LEAF], [CA], NOW_DT).untrusted or "")
    assert "x5c[0] is not issued by x5c[1]" in (check_chain([INTERMEDIATE, LEAF], [CA], NOW_DT).untrusted or "")
    assert check_chain([FOREIGN_LEAF, OTHER_CA], [CA], NOW_DT).untrusted
    assert "not a CA" in (check_chain([NOT_CA_ISSUED, LEAF_NO_URA], [CA], NOW_DT).untrusted or "")
    assert "expired" in (check_chain([EXPIRED_LEAF], [CA], NOW_DT).expired or "")
    assert "not yet valid" in (check_chain([FUTURE_LEAF], [CA], NOW_DT).expired or "")
    short_ca = make_cert("Short-lived CA", CA_KEY, ca=True, not_after=NOW_DT + timedelta(days=10))
    long_leaf = make_cert("long.vendor.test", LEAF_KEY, issuer=(short_ca, CA_KEY))
    assert "the trusted CA is expired" in (check_chain([long_leaf], [short_ca], NOW_DT + timedelta(days=20))
                                           .expired or "")
    assert not check_chain([], [CA], NOW_DT).ok


def test_decode_x5c() -> None:
    certs, problem = decode_x5c(x5c(LEAF, INTERMEDIATE))
    assert problem is None and certs == [LEAF, INTERMEDIATE]
    for bad in (None, [], "MIIB", [5], ["!!!"], [base64.urlsafe_b64encode(b"\xfb\xff" * 9).decode()],
                [base64.b64encode(b"not DER").decode()], [base64.b64encode(pem(LEAF)).decode()]):
        assert decode_x5c(bad)[1], bad


def test_load_and_key_helpers() -> None:
    assert load_certificate(LEAF) is LEAF
    assert load_certificate(pem(LEAF).decode()) == LEAF
    assert load_certificate(123) is None  # type: ignore[arg-type]
    assert public_key_der(jwk(LEAF_KEY)) == public_key_der(LEAF) == public_key_der(LEAF_KEY)
    assert public_key_der("nothing") is None
    assert public_key_der({"kty": "oct", "k": "AAAA"}) is None


def test_messages_describe_certificates_without_dumping_them() -> None:
    [finding] = check_certificate_ura(LEAF_NO_URA, URA)
    assert "plain.vendor.test" in finding.message and "BEGIN" not in finding.message
    assert finding.location == "certificate.subjectAltName"
