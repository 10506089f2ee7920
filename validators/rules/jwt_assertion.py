"""Client and authorization assertions: signed JWTs in the token request (SPEC §5.2, §5.3).

Claims are checked here, not by PyJWT, so every defect becomes its own finding with evidence.
PyJWT is used only to verify the signature, with a registered public key and that key's algorithm, or with the
key of an `x5c` leaf certificate whose chain reaches the test CA.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from validators import safe_json, spec
from validators.evidence import show
from validators.findings import Finding, emits, rule
from validators.rules.certificates import (
    as_utc,
    check_certificate_ura,
    check_chain,
    check_signing_key_not_tls,
    decode_x5c,
    describe,
    load_certificates_pem,
    ura_from_certificate,
)
from validators.rules.identifiers import check_ura

_REF = "SPEC §5.2"

_At = Callable[[str], str]  # turns a jwt.* path into a finding location
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# kty (and curve) each allowed alg needs; an alg from another family means key confusion.
_KEY_FAMILY: dict[str, tuple[str, str | None]] = {
    **{a: ("RSA", None) for a in spec.ALLOWED_JWT_ALGS if a[:2] in ("RS", "PS")},
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
}
# PyJWT must not judge claims: we report each claim defect ourselves.
_SIGNATURE_ONLY = {"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                   "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False}


@dataclass
class AssertionCheck:
    findings: list[Finding]
    header: dict | None
    claims: dict | None
    verified: bool
    # The x5c leaf certificate when the header carried a readable chain (trusted or not: see `verified`).
    certificate: x509.Certificate | None = None


@dataclass
class _Signer:
    """What the signature was checked with: a registered JWK or an x5c leaf certificate."""

    verified: bool = False
    jwk: dict | None = None
    certificate: x509.Certificate | None = None


MALFORMED = rule("JWT-001", "error", "assertion is not a compact JWS with JSON header and claims", _REF)


@emits(MALFORMED)
def check_assertion(token: str, *, kind: Literal["client", "authorization"], audience: str, jwks: dict | None,
                    now: float, expected_client_id: str | None = None,
                    purpose: Literal["pull", "notification"] | None = None, location: str = "",
                    trusted_ca_pem: bytes | None = None, tls_cert_pem: bytes | None = None) -> AssertionCheck:
    """Check one assertion. `location` prefixes every finding's path (e.g. `form.client_assertion`).

    With `trusted_ca_pem` (the test CA, PEM, may hold several certificates) an `x5c` header is checked when no
    registered key is found by `kid`: chain to the CA, validity at `now`, signature with the leaf's key. With
    `tls_cert_pem` the signing key is compared with the key of the caller's TLS certificate.
    Raises ValueError when `trusted_ca_pem` holds no certificate: that is configuration, not input.
    """
    trusted: list[x509.Certificate] | None = None
    if trusted_ca_pem is not None:
        trusted = load_certificates_pem(trusted_ca_pem)
        if not trusted:
            raise ValueError("trusted_ca_pem holds no PEM certificate")

    def at(path: str) -> str:
        return f"{location}.{path}" if location else path

    header, claims, problem = _split(token)
    if problem:
        return AssertionCheck([MALFORMED.finding(problem, at("jwt"))], None, None, False)
    assert header is not None and claims is not None
    findings: list[Finding] = []
    signer = _check_header_and_signature(token, header, jwks, trusted, now, at, findings)
    _check_common_claims(claims, audience, now, at, findings)
    if kind == "client":
        _check_client_claims(claims, expected_client_id, at, findings)
    else:
        _check_authorization_claims(claims, purpose, at, findings)
        # The URA in the signing certificate speaks for the same organization as sub (SPEC §5.2).
        if signer.certificate is not None and ura_from_certificate(signer.certificate) is not None:
            findings.extend(check_certificate_ura(signer.certificate, claims.get("sub"),
                                                  location=at("jwt.header.x5c[0]")))
    if tls_cert_pem is not None:
        key = signer.certificate if signer.certificate is not None else signer.jwk
        if key is not None:
            findings.extend(check_signing_key_not_tls(key, tls_cert_pem, location=at("jwt.header")))
    return AssertionCheck(findings, header, claims, signer.verified, signer.certificate)


def _b64decode(part: str) -> bytes:
    if not _B64URL.fullmatch(part):  # RFC 7515 §2: base64url without padding
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _split(token: object) -> tuple[dict | None, dict | None, str | None]:
    """Header and claims of a compact JWS, or a description of why it is not one (never the token)."""
    if not isinstance(token, str) or not token:
        seen = "an empty string" if token == "" else type(token).__name__
        return None, None, f"saw {seen}; expected a compact JWS header.payload.signature"
    parts = token.split(".")
    if len(parts) != 3:
        return None, None, f"saw {len(parts)} dot-separated part(s); expected 3 (header.payload.signature)"
    decoded: list[Any] = []
    for name, part in zip(("header", "payload"), parts[:2]):
        try:
            raw = _b64decode(part)
        except (ValueError, binascii.Error):
            return None, None, f"{name} part ({len(part)} characters) is not unpadded base64url"
        try:
            decoded.append(safe_json.loads(raw))
        except ValueError:  # includes JSONDecodeError and undecodable UTF-8
            return None, None, f"{name} part ({len(part)} characters) does not decode to JSON"
        if not isinstance(decoded[-1], dict):
            return None, None, f"{name} is JSON {type(decoded[-1]).__name__}; expected a JSON object"
    try:
        _b64decode(parts[2])
    except (ValueError, binascii.Error):
        return None, None, f"signature part ({len(parts[2])} characters) is not unpadded base64url"
    return decoded[0], decoded[1], None


TYP = rule("JWT-002", "error", "header typ is not JWT", _REF)
ALG = rule("JWT-003", "error", "header alg is missing or not an allowed asymmetric algorithm", _REF)
KID_MISSING = rule("JWT-004", "error", "header has no kid to find the signing key", _REF)
KID_UNKNOWN = rule("JWT-005", "error", "kid not found in the issuer's registered JWKS", _REF)
NOT_CHECKED = rule("JWT-006", "info", "signature not checked: no keys registered", _REF)
KEY_CONFUSION = rule("JWT-007", "error", "alg does not match the registered key (key confusion)", _REF)
X5C_NOT_CHECKED = rule("JWT-023", "info", "signature not checked: x5c given but no trusted CA configured", _REF)


@emits(TYP, ALG, KID_MISSING, KID_UNKNOWN, NOT_CHECKED, KEY_CONFUSION, X5C_NOT_CHECKED)
def _check_header_and_signature(token: str, header: dict, jwks: dict | None, trusted: list[x509.Certificate] | None,
                                now: float, at: _At, findings: list[Finding]) -> _Signer:
    typ = header.get("typ")
    if typ != "JWT":
        findings.append(TYP.finding(f"saw typ {show(typ)}; expected 'JWT'", at("jwt.header.typ")))
    alg = header.get("alg")
    alg_ok = alg in spec.ALLOWED_JWT_ALGS
    if not alg_ok:
        findings.append(ALG.finding(_describe_bad_alg(alg), at("jwt.header.alg")))
    kid = header.get("kid")
    # x5c is the way in when kid finds no registered key and a trusted CA is configured (SPEC §5.2).
    use_x5c = "x5c" in header and trusted is not None
    if not isinstance(kid, str) or not kid:
        if use_x5c:
            return _check_x5c(token, header, alg if alg_ok else None, trusted or [], now, at, findings)
        if "x5c" in header:
            findings.append(X5C_NOT_CHECKED.finding("header carries x5c and no kid, and no trusted CA is "
                                                    "configured to evaluate the chain", at("jwt.header.x5c")))
            return _Signer()
        findings.append(KID_MISSING.finding(f"saw kid {show(kid)}; expected the id of a registered key",
                                            at("jwt.header.kid")))
        return _Signer()
    registered = jwks.get("keys") if isinstance(jwks, dict) else None
    registered = [k for k in registered if isinstance(k, dict)] if isinstance(registered, list) else []
    keys = [k for k in registered if k.get("kid") == kid]
    if not keys and use_x5c:
        return _check_x5c(token, header, alg if alg_ok else None, trusted or [], now, at, findings)
    if jwks is None:
        findings.append(NOT_CHECKED.finding(f"no JWKS registered for this issuer; kid {show(kid)} not looked up",
                                            at("jwt.header.kid")))
        return _Signer()
    if not keys:
        known = sorted(str(k.get("kid")) for k in registered)
        findings.append(KID_UNKNOWN.finding(f"kid {show(kid)} not among registered kids {known}",
                                            at("jwt.header.kid")))
        return _Signer()
    if not alg_ok:  # never verify with none or HMAC, whatever the key
        return _Signer(jwk=keys[0])
    jwk = next((k for k in keys if _fits(k, alg)), None)
    if jwk is None:
        seen = ", ".join(_describe_key(k) for k in keys)
        findings.append(KEY_CONFUSION.finding(f"alg {alg} cannot be used with the key registered as kid "
                                              f"{show(kid)} ({seen})", at("jwt.header.alg")))
        return _Signer(jwk=keys[0])
    return _Signer(_verify(token, jwk, alg, at, findings), jwk=jwk)


X5C_MALFORMED = rule("JWT-025", "error", "x5c is not a non-empty array of base64 DER certificates",
                     "SPEC §5.2; RFC 7515 §4.1.6")
X5C_UNTRUSTED = rule("JWT-026", "error", "x5c certificate chain does not reach the test CA", "SPEC §5.1, §5.2")
X5C_EXPIRED = rule("JWT-027", "error", "x5c certificate expired or not yet valid", "SPEC §5.1, §5.2")


@emits(X5C_MALFORMED, X5C_UNTRUSTED, X5C_EXPIRED)
def _check_x5c(token: str, header: dict, alg: str | None, trusted: list[x509.Certificate], now: float, at: _At,
               findings: list[Finding]) -> _Signer:
    """Chain leaf-first to the trusted CA, every certificate valid at `now`, then the signature with the leaf's key."""
    certs, problem = decode_x5c(header.get("x5c"))
    if problem:
        findings.append(X5C_MALFORMED.finding(problem, at("jwt.header.x5c")))
        return _Signer()
    chain = check_chain(certs, trusted, as_utc(now))
    if chain.untrusted:
        findings.append(X5C_UNTRUSTED.finding(chain.untrusted, at("jwt.header.x5c")))
    if chain.expired:
        findings.append(X5C_EXPIRED.finding(chain.expired, at("jwt.header.x5c")))
    leaf = certs[0]
    if alg is None:  # none and HMAC are reported already; never verify with them
        return _Signer(certificate=leaf)
    signature_ok = _verify_with_certificate(token, leaf, alg, at, findings)
    return _Signer(signature_ok and chain.ok, certificate=leaf)


X5C_SIGNATURE = rule("JWT-028", "error", "signature does not verify with the x5c leaf certificate's key",
                     "SPEC §5.2")


@emits(X5C_SIGNATURE)
def _verify_with_certificate(token: str, leaf: x509.Certificate, alg: str, at: _At, findings: list[Finding]) -> bool:
    try:
        key = leaf.public_key()
    except ValueError:  # e.g. an unsupported key algorithm
        key = None
    kty, crv = _KEY_FAMILY[alg]
    fits = (kty == "RSA" and isinstance(key, rsa.RSAPublicKey)) or (
        kty == "EC" and isinstance(key, ec.EllipticCurvePublicKey) and _CURVES.get(key.curve.name) == crv)
    if not fits:
        findings.append(X5C_SIGNATURE.finding(f"alg {alg} cannot be used with the leaf certificate's key "
                                              f"({_describe_public_key(key)}; {describe(leaf)})",
                                              at("jwt.header.alg")))
        return False
    try:
        jwt.decode(token, key=key, algorithms=[alg], options=_SIGNATURE_ONLY)  # type: ignore[arg-type]
    except jwt.PyJWTError as exc:
        signature_len = len(token.rsplit(".", 1)[1])
        findings.append(X5C_SIGNATURE.finding(f"{alg} signature ({signature_len} base64url characters) does not "
                                              f"verify with the leaf certificate's key ({describe(leaf)}): "
                                              f"{type(exc).__name__}", at("jwt.signature")))
        return False
    return True


_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _describe_public_key(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVES.get(key.curve.name, key.curve.name)}"
    return type(key).__name__ if key is not None else "unreadable key"


def _describe_bad_alg(alg: object) -> str:
    if alg is None:
        return f"no alg; expected one of {', '.join(spec.ALLOWED_JWT_ALGS)}"
    if isinstance(alg, str) and alg.lower() == "none":
        return "alg 'none' (unsigned JWT) is never accepted"
    if isinstance(alg, str) and alg.upper().startswith("HS"):
        return f"HMAC alg {alg!r} is never accepted (no shared secrets; a public key used as HMAC secret is " \
               "key confusion)"
    return f"saw alg {show(alg)}; expected one of {', '.join(spec.ALLOWED_JWT_ALGS)}"


def _describe_key(jwk: dict) -> str:
    parts = [f"kty={jwk.get('kty')}"]
    parts += [f"{name}={jwk[name]}" for name in ("crv", "alg") if name in jwk]
    return " ".join(parts)


def _fits(jwk: dict, alg: str) -> bool:
    """True when the registered key is of the family `alg` needs and does not pin another alg."""
    kty, crv = _KEY_FAMILY[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    return jwk.get("alg") in (None, alg)


BAD_SIGNATURE = rule("JWT-008", "error", "signature does not verify with the registered key", _REF)
BAD_KEY = rule("JWT-022", "error", "registered key cannot be used to verify", _REF)


@emits(BAD_SIGNATURE, BAD_KEY)
def _verify(token: str, jwk: dict, alg: str, at: _At, findings: list[Finding]) -> bool:
    try:
        key = jwt.PyJWK(jwk, algorithm=jwk.get("alg") or alg)
    except jwt.PyJWTError as exc:
        findings.append(BAD_KEY.finding(f"registered key ({_describe_key(jwk)}) is unusable: {exc}",
                                        at("jwt.header.kid")))
        return False
    try:
        jwt.decode(token, key=key, algorithms=[key.algorithm_name], options=_SIGNATURE_ONLY)  # type: ignore[arg-type]
    except jwt.InvalidSignatureError:
        signature_len = len(token.rsplit(".", 1)[1])
        findings.append(BAD_SIGNATURE.finding(f"{alg} signature ({signature_len} base64url characters) does not "
                                              f"verify with key kid={jwk.get('kid')!r} ({_describe_key(jwk)})",
                                              at("jwt.signature")))
        return False
    except jwt.PyJWTError as exc:
        findings.append(BAD_SIGNATURE.finding(f"signature not verified: {type(exc).__name__}: {exc}",
                                              at("jwt.signature")))
        return False
    return True


MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z: beyond it no clock or calendar can follow


def _number(value: object) -> bool:
    # Python's json accepts NaN, Infinity and integers of any size; none of them is a NumericDate one can use.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE if isinstance(value, int) else \
        math.isfinite(value) and abs(value) <= MAX_NUMERIC_DATE


ISS = rule("JWT-009", "error", "iss claim missing", _REF)
SUB = rule("JWT-010", "error", "sub claim missing", _REF)
AUD = rule("JWT-013", "error", "aud is not the exact token endpoint URL", _REF)
EXP = rule("JWT-014", "error", "exp claim missing or not numeric", _REF)
EXPIRED = rule("JWT-015", "error", "assertion expired", _REF)
IAT = rule("JWT-016", "error", "iat claim missing, not numeric or in the future", _REF)
LIFETIME = rule("JWT-017", "error", "lifetime exp - iat not positive or longer than allowed", _REF)
NBF = rule("JWT-018", "error", "nbf not numeric or in the future", _REF)
JTI = rule("JWT-019", "error", "jti claim missing or empty", _REF)


@emits(ISS, SUB, AUD, EXP, EXPIRED, IAT, LIFETIME, NBF, JTI)
def _check_common_claims(claims: dict, audience: str, now: float, at: _At, findings: list[Finding]) -> None:
    for name, missing_rule in (("iss", ISS), ("sub", SUB)):
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            findings.append(missing_rule.finding(f"saw {name} {show(value)}; expected a non-empty string",
                                                 at(f"jwt.claims.{name}")))
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        findings.append(AUD.finding(f"saw aud {show(aud, 200)}; expected exactly {audience!r}", at("jwt.claims.aud")))

    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    skew = spec.CLOCK_SKEW_S
    if not _number(exp):
        findings.append(EXP.finding(f"saw exp {show(exp)}; expected NumericDate seconds", at("jwt.claims.exp")))
    elif now > exp + skew:
        findings.append(EXPIRED.finding(f"exp {exp} is {now - exp:.0f} s before now {now:.0f} "
                                        f"(allowed skew {skew} s)", at("jwt.claims.exp")))
    if not _number(iat):
        findings.append(IAT.finding(f"saw iat {show(iat)}; expected NumericDate seconds", at("jwt.claims.iat")))
    elif iat > now + skew:
        findings.append(IAT.finding(f"iat {iat} is {iat - now:.0f} s in the future (allowed skew {skew} s)",
                                    at("jwt.claims.iat")))
    if _number(exp) and _number(iat):
        lifetime = exp - iat
        if lifetime <= 0 or lifetime > spec.MAX_ASSERTION_LIFETIME_S:
            findings.append(LIFETIME.finding(f"exp - iat = {lifetime:g} s; expected more than 0 and at most "
                                             f"{spec.MAX_ASSERTION_LIFETIME_S} s", at("jwt.claims.exp")))
    if "nbf" in claims:
        if not _number(nbf):
            findings.append(NBF.finding(f"saw nbf {show(nbf)}; expected NumericDate seconds", at("jwt.claims.nbf")))
        elif nbf > now + skew:
            findings.append(NBF.finding(f"nbf {nbf} is {nbf - now:.0f} s in the future (allowed skew {skew} s)",
                                        at("jwt.claims.nbf")))
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        findings.append(JTI.finding(f"saw jti {show(jti)}; expected a unique non-empty string", at("jwt.claims.jti")))


CLIENT_ISS_SUB = rule("JWT-011", "error", "client assertion iss differs from sub", "SPEC §5.2; RFC 7523 §3")
CLIENT_ID = rule("JWT-012", "error", "client assertion iss is not the registered client id", _REF)


@emits(CLIENT_ISS_SUB, CLIENT_ID)
def _check_client_claims(claims: dict, expected_client_id: str | None, at: _At, findings: list[Finding]) -> None:
    iss, sub = claims.get("iss"), claims.get("sub")
    if iss is not None and sub is not None and iss != sub:
        findings.append(CLIENT_ISS_SUB.finding(f"iss {show(iss)} differs from sub {show(sub)}; both must be the "
                                               "client id", at("jwt.claims.sub")))
    if expected_client_id is not None and iss is not None and iss != expected_client_id:
        findings.append(CLIENT_ID.finding(f"saw iss {show(iss)}; expected the registered client id "
                                          f"{expected_client_id!r}", at("jwt.claims.iss")))


AUTH_BASE = rule("JWT-020", "error", "pull authorization assertion lacks the authorization_base claim", "SPEC §5.3")
PATIENT_CLAIM = rule("JWT-021", "warning", "pull authorization assertion names the patient instead of an "
                     "authorization_base (variant)", "SPEC §5.3")


@emits(AUTH_BASE, PATIENT_CLAIM)
def _check_authorization_claims(claims: dict, purpose: str | None, at: _At, findings: list[Finding]) -> None:
    if claims.get("sub") not in (None, ""):  # a missing sub is already reported
        findings.extend(check_ura(claims["sub"], at("jwt.claims.sub")))
    if purpose != "pull":
        return
    base = claims.get("authorization_base")
    if isinstance(base, str) and base:
        return
    if base is None and "patient" in claims:
        findings.append(PATIENT_CLAIM.finding("no authorization_base claim; a patient claim names the patient "
                                              "instead (accepted variant)", at("jwt.claims.patient")))
        return
    findings.append(AUTH_BASE.finding(f"saw authorization_base {show(base)}; expected the non-empty value from "
                                      "the notification", at("jwt.claims.authorization_base")))


AUD_NOT_COMPARED = rule("VAL-001", "info", "assertion aud not compared: no token endpoint URL given (--audience)",
                        "SPEC §5.2")


@emits(AUD_NOT_COMPARED)
def check_assertion_file(token: str, audience: str | None, jwks: dict | None, now: float, *,
                         kind: Literal["client", "authorization"] = "client", location: str = "") -> list[Finding]:
    """An assertion judged on its own (`speeltuin validate`), where the token endpoint URL may be unknown."""
    result = check_assertion(token, kind=kind, audience=audience or "", jwks=jwks, now=now, location=location)
    if audience is not None:
        return result.findings
    where = f"{location}.jwt.claims.aud" if location else "jwt.claims.aud"
    # Without the token endpoint URL the exact-aud rule cannot be judged: say so instead of a false error.
    return [f for f in result.findings if f.rule != AUD.id] + [AUD_NOT_COMPARED.finding(
        f"aud is {(result.claims or {}).get('aud')!r}; give --audience to compare it with the token URL", where)]


# Stateful: the token endpoint remembers (iss, jti) pairs and emits this; nothing here uses it.
JTI_REPLAYED = rule("JWT-024", "error", "jti used before by this issuer", _REF)


@emits(JTI_REPLAYED)
def check_jti_replay(claims: dict | None, seen: Callable[[str, str, float], bool], location: str) -> list[Finding]:
    """JWT-024: whether this issuer used the jti before; `seen` remembers (iss, jti) pairs and says so."""
    iss, jti, exp = (claims or {}).get("iss"), (claims or {}).get("jti"), (claims or {}).get("exp")
    if not isinstance(iss, str) or not isinstance(jti, str):
        return []
    if seen(iss, jti, float(exp) if isinstance(exp, (int, float)) and math.isfinite(exp) else 0.0):
        return [JTI_REPLAYED.finding(f"jti {jti!r} of issuer {iss!r} was used in an earlier assertion",
                                     f"{location}.jwt.claims.jti")]
    return []
