"""Certificates (SPEC §5.1): the URA inside an UZI server certificate, x5c chains to the test CA, and keys.

An UZI server certificate names its organization in subjectAltName otherName 2.5.5.5, whose value is a string
`2.16.528.1.1003.1.3.5.5.2-1-<UZI nr>-S-<URA>-00.000-<AGB>`. The test CA writes it the same way **[choice]**, so
the URA in a certificate can be compared with the `sub` of an authorization assertion.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ObjectIdentifier

from validators import spec
from validators.evidence import show
from validators.findings import Finding, emits, rule

_REF = "SPEC §5.1"

PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey]
CertificateInput = Union[x509.Certificate, bytes, str]

_UTF8_STRING, _PRINTABLE_STRING, _IA5_STRING = 0x0C, 0x13, 0x16
_STRING_TAGS = (_UTF8_STRING, _PRINTABLE_STRING, _IA5_STRING)


@dataclass(frozen=True)
class UziName:
    """The fields of an UZI otherName value."""

    ca_oid: str
    version: str
    uzi_number: str
    card_type: str
    ura: str
    role: str
    agb: str


# --- reading ---------------------------------------------------------------------------------------

def load_certificate(data: CertificateInput) -> x509.Certificate | None:
    """A certificate from an object, PEM (bytes or text) or DER; None when it is none of these."""
    if isinstance(data, x509.Certificate):
        return data
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if not isinstance(raw, bytes):
        return None
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        return None


UNREADABLE = rule("CERT-004", "error", "certificate is not a readable X.509 certificate (PEM or DER)", _REF)


@emits(UNREADABLE)
def read_certificate(data: CertificateInput, what: str, location: str) -> tuple[x509.Certificate | None,
                                                                                   list[Finding]]:
    """The certificate, or None and the finding that `what` cannot be read."""
    cert = load_certificate(data)
    if cert is None:
        return None, [UNREADABLE.finding(f"{what} is neither PEM nor DER X.509", location)]
    return cert, []


def load_certificates_pem(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (the trusted CA file may hold a root and intermediates)."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def decode_der_string(value: bytes) -> str | None:
    """The text of a DER UTF8String, PrintableString or IA5String TLV; None for anything else."""
    if len(value) < 2 or value[0] not in _STRING_TAGS:
        return None
    length, offset = value[1], 2
    if length & 0x80:  # long form: the low bits count the length octets that follow
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        length, offset = int.from_bytes(value[2:2 + count], "big"), 2 + count
    if len(value) != offset + length:
        return None
    try:
        return value[offset:].decode("utf-8" if value[0] == _UTF8_STRING else "ascii")
    except UnicodeDecodeError:
        return None


def encode_der_ia5_string(text: str) -> bytes:
    """DER IA5String TLV of ASCII `text`, as the otherName value of an UZI certificate."""
    body = text.encode("ascii")
    if len(body) < 0x80:
        return bytes([_IA5_STRING, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([_IA5_STRING, 0x80 | len(size)]) + size + body


def parse_uzi_name(text: str) -> UziName | None:
    """`<CA OID>-<version>-<UZI nr>-<card type>-<URA>-<role>-<AGB>`; None when the text has another shape."""
    parts = text.split("-")
    if len(parts) != 7 or not all(parts[:6]):
        return None
    return UziName(*parts)


def uzi_other_name(uzi_number: str, ura: str, agb: str = "00000000", role: str = "00.000") -> x509.OtherName:
    """The subjectAltName otherName an UZI server certificate (and the test CA) uses to carry the URA."""
    text = "-".join((spec.UZI_SERVER_CA_OID, "1", uzi_number, spec.UZI_SERVER_CARD_TYPE, ura, role, agb))
    return x509.OtherName(ObjectIdentifier(spec.UZI_OTHER_NAME_OID), encode_der_ia5_string(text))


def uzi_names(cert: x509.Certificate) -> list[str]:
    """The decoded text of every otherName 2.5.5.5 in the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    texts = []
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id.dotted_string == spec.UZI_OTHER_NAME_OID:
            text = decode_der_string(name.value)
            if text is not None:
                texts.append(text)
    return texts


def ura_from_certificate(cert: x509.Certificate) -> str | None:
    """The URA of the first UZI otherName in the certificate's subjectAltName, or None."""
    for text in uzi_names(cert):
        parsed = parse_uzi_name(text)
        if parsed is not None:
            return parsed.ura
    return None


def ura_mismatch(cert: x509.Certificate, expected_ura: str) -> str | None:
    """`names URA x` or `names no URA` when a certificate does not carry the organization's URA (SPEC §5.1: the
    URA in the UZI certificate, server or client); None when it does. Callers put it in their own sentence."""
    found = ura_from_certificate(cert)
    if found == expected_ura:
        return None
    return f"names URA {found}" if found else "names no URA"


def describe(cert: x509.Certificate) -> str:
    """Evidence for a certificate: subject, serial and validity, never the whole certificate."""
    return (f"subject {cert.subject.rfc4514_string()!r}, serial {cert.serial_number:x}, valid "
            f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}..{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


# --- checks ------------------------------------------------------------------------------------------

URA_MISMATCH = rule("CERT-001", "error", "URA in the certificate differs from the authorization assertion's sub",
                    "SPEC §5.1, §5.2")
NO_URA = rule("CERT-002", "warning", "certificate carries no readable UZI otherName (2.5.5.5) with a URA", _REF)


@emits(URA_MISMATCH, NO_URA)
def check_certificate_ura(certificate: CertificateInput, sub: object, *, location: str = "certificate") -> \
        list[Finding]:
    """The URA in the client's certificate must equal the authorization assertion's `sub` (SPEC §5.2)."""
    cert, unreadable = read_certificate(certificate, "certificate", location)
    if cert is None:
        return unreadable
    names = uzi_names(cert)
    ura = ura_from_certificate(cert)
    if ura is None:
        seen = f"otherName 2.5.5.5 value(s) {show(names, 120)} not of the form " \
               f"{spec.UZI_SERVER_CA_OID}-1-<UZI nr>-S-<URA>-00.000-<AGB>" if names else "no otherName 2.5.5.5"
        return [NO_URA.finding(f"{seen} in subjectAltName of {describe(cert)}", f"{location}.subjectAltName")]
    if ura != sub:
        return [URA_MISMATCH.finding(f"certificate URA {ura!r} differs from the assertion's sub {show(sub)}",
                                     f"{location}.subjectAltName.otherName")]
    return []


def public_key_der(key: Any) -> bytes | None:
    """SubjectPublicKeyInfo DER of a JWK (dict), a public or private key, or a certificate; None when unusable."""
    if isinstance(key, dict):
        key = _jwk_public_key(key)
    elif isinstance(key, (bytes, str)):
        key = load_certificate(key)
    if isinstance(key, x509.Certificate):
        try:
            key = key.public_key()
        except ValueError:
            return None
    if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        key = key.public_key()
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _jwk_public_key(jwk: dict) -> PublicKey | None:
    import jwt  # PyJWT turns JWKs into cryptography keys

    try:
        key = jwt.PyJWK(jwk).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    return key if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) else None


SIGNING_KEY_IS_TLS_KEY = rule("CERT-003", "warning", "JWT signing key is the TLS certificate's key", "SPEC §5.2")


@emits(SIGNING_KEY_IS_TLS_KEY)
def check_signing_key_not_tls(signing_key: Any, tls_cert_pem: CertificateInput, *,
                              location: str = "jwt.header") -> list[Finding]:
    """The JWT signing key (JWK, key or certificate) must not be the key of the TLS certificate (SPEC §5.2)."""
    tls, unreadable = read_certificate(tls_cert_pem, "TLS certificate", "tls.certificate")
    if tls is None:
        return unreadable
    signing, tls_key = public_key_der(signing_key), public_key_der(tls)
    if signing is None or tls_key is None or signing != tls_key:
        return []
    return [SIGNING_KEY_IS_TLS_KEY.finding(f"the JWT is signed with the public key of the TLS certificate "
                                           f"({describe(tls)}); use a separate signing key", location)]


# --- chains ----------------------------------------------------------------------------------------

@dataclass
class ChainResult:
    """The outcome of checking an x5c chain: the leaf when it could be read, and what is wrong."""

    leaf: x509.Certificate | None
    malformed: str | None = None  # x5c is not a list of base64 DER certificates
    untrusted: str | None = None  # the chain does not reach a trusted CA
    expired: str | None = None  # a certificate is outside its validity period at `now`

    @property
    def ok(self) -> bool:
        return self.leaf is not None and not (self.malformed or self.untrusted or self.expired)


def decode_x5c(x5c: object) -> tuple[list[x509.Certificate], str | None]:
    """Certificates of an x5c header (RFC 7515 §4.1.6: standard base64 DER, leaf first), or why not."""
    if not isinstance(x5c, list) or not x5c:
        return [], f"x5c is {show(x5c, 40)}; expected a non-empty array of base64 DER certificates"
    certs = []
    for index, item in enumerate(x5c):
        if not isinstance(item, str):
            return [], f"x5c[{index}] is JSON {type(item).__name__}; expected a base64 string"
        try:
            der = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            return [], f"x5c[{index}] ({len(item)} characters) is not standard base64 (RFC 7515 §4.1.6)"
        cert = load_certificate(der)
        if cert is None or b"-----BEGIN" in der:
            return [], f"x5c[{index}] ({len(der)} bytes) is not a DER X.509 certificate"
        certs.append(cert)
    return certs, None


def check_chain(chain: list[x509.Certificate], trusted: list[x509.Certificate], now: datetime) -> ChainResult:
    """Each certificate signed by the next, the last by (or equal to) a trusted CA, all valid at `now`."""
    result = ChainResult(chain[0] if chain else None)
    if not chain:
        result.malformed = "empty chain"
        return result
    for index, (cert, issuer) in enumerate(zip(chain, chain[1:])):
        problem = _issued_by(cert, issuer)
        if problem:
            result.untrusted = f"x5c[{index}] is not issued by x5c[{index + 1}]: {problem}"
            return result
    last = chain[-1]
    anchor = next((ca for ca in trusted if ca == last), None)
    if anchor is None:
        anchor = next((ca for ca in trusted if _issued_by(last, ca) is None), None)
    if anchor is None:
        names = ", ".join(repr(ca.subject.rfc4514_string()) for ca in trusted) or "none"
        result.untrusted = f"x5c[{len(chain) - 1}] (issuer {last.issuer.rfc4514_string()!r}) is not issued by " \
                           f"the trusted CA ({names})"
        return result
    for index, cert in enumerate([*chain, anchor] if anchor != last else chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            which = f"x5c[{index}]" if index < len(chain) else "the trusted CA"
            state = "expired" if now > cert.not_valid_after_utc else "not yet valid"
            result.expired = f"{which} is {state} at {now:%Y-%m-%dT%H:%M:%SZ} ({describe(cert)})"
            return result
    return result


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when `issuer` is a CA that signed `cert`; otherwise what is wrong."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    if not is_ca:
        return f"{issuer.subject.rfc4514_string()!r} is not a CA certificate (basicConstraints cA)"
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError as exc:  # issuer name mismatch or unsupported signature algorithm
        return str(exc)
    except (InvalidSignature, TypeError):
        return f"signature does not verify with the key of {issuer.subject.rfc4514_string()!r}"
    return None


def as_utc(now: float | datetime) -> datetime:
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(now, tz=timezone.utc)
