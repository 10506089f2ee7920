"""Client and authorization assertions: signed JWTs in the token request (SPEC §5.2, §5.3).

Claims are checked here, not by PyJWT, so every defect becomes its own finding with evidence.
PyJWT is used only to verify the signature, with a registered public key and that key's algorithm.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

import jwt

from validators import spec
from validators.findings import Finding, rule
from validators.identifiers import check_ura, show

_REF = "SPEC §5.2"
MALFORMED = rule("JWT-001", "error", "assertion is not a compact JWS with JSON header and claims", _REF)
TYP = rule("JWT-002", "error", "header typ is not JWT", _REF)
ALG = rule("JWT-003", "error", "header alg is missing or not an allowed asymmetric algorithm", _REF)
KID_MISSING = rule("JWT-004", "error", "header has no kid to find the signing key", _REF)
KID_UNKNOWN = rule("JWT-005", "error", "kid not found in the issuer's registered JWKS", _REF)
NOT_CHECKED = rule("JWT-006", "info", "signature not checked: no keys registered", _REF)
KEY_CONFUSION = rule("JWT-007", "error", "alg does not match the registered key (key confusion)", _REF)
BAD_SIGNATURE = rule("JWT-008", "error", "signature does not verify with the registered key", _REF)
ISS = rule("JWT-009", "error", "iss claim missing", _REF)
SUB = rule("JWT-010", "error", "sub claim missing", _REF)
CLIENT_ISS_SUB = rule("JWT-011", "error", "client assertion iss differs from sub", "SPEC §5.2; RFC 7523 §3")
CLIENT_ID = rule("JWT-012", "error", "client assertion iss is not the registered client id", _REF)
AUD = rule("JWT-013", "error", "aud is not the exact token endpoint URL", _REF)
EXP = rule("JWT-014", "error", "exp claim missing or not numeric", _REF)
EXPIRED = rule("JWT-015", "error", "assertion expired", _REF)
IAT = rule("JWT-016", "error", "iat claim missing, not numeric or in the future", _REF)
LIFETIME = rule("JWT-017", "error", "lifetime exp - iat not positive or longer than allowed", _REF)
NBF = rule("JWT-018", "error", "nbf not numeric or in the future", _REF)
JTI = rule("JWT-019", "error", "jti claim missing or empty", _REF)
AUTH_BASE = rule("JWT-020", "error", "pull authorization assertion lacks the authorization_base claim", "SPEC §5.3")
PATIENT_CLAIM = rule("JWT-021", "warning", "pull authorization assertion names the patient instead of an "
                     "authorization_base (variant)", "SPEC §5.3")
BAD_KEY = rule("JWT-022", "error", "registered key cannot be used to verify", _REF)
X5C_NOT_CHECKED = rule("JWT-023", "info", "signature not checked: x5c certificate chain is evaluated elsewhere", _REF)
# Stateful: the token endpoint remembers (iss, jti) pairs and emits this; nothing here uses it.
JTI_REPLAYED = rule("JWT-024", "error", "jti used before by this issuer", _REF)

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


def check_assertion(token: str, *, kind: Literal["client", "authorization"], audience: str, jwks: dict | None,
                    now: float, expected_client_id: str | None = None,
                    purpose: Literal["pull", "notification"] | None = None, location: str = "") -> AssertionCheck:
    """Check one assertion. `location` prefixes every finding's path (e.g. `form.client_assertion`)."""
    def at(path: str) -> str:
        return f"{location}.{path}" if location else path

    header, claims, problem = _split(token)
    if problem:
        return AssertionCheck([MALFORMED.finding(problem, at("jwt"))], None, None, False)
    assert header is not None and claims is not None
    findings: list[Finding] = []
    verified = _check_header_and_signature(token, header, jwks, at, findings)
    _check_common_claims(claims, audience, now, at, findings)
    if kind == "client":
        _check_client_claims(claims, expected_client_id, at, findings)
    else:
        _check_authorization_claims(claims, purpose, at, findings)
    return AssertionCheck(findings, header, claims, verified)


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
            decoded.append(json.loads(raw))
        except ValueError:  # includes JSONDecodeError and undecodable UTF-8
            return None, None, f"{name} part ({len(part)} characters) does not decode to JSON"
        if not isinstance(decoded[-1], dict):
            return None, None, f"{name} is JSON {type(decoded[-1]).__name__}; expected a JSON object"
    try:
        _b64decode(parts[2])
    except (ValueError, binascii.Error):
        return None, None, f"signature part ({len(parts[2])} characters) is not unpadded base64url"
    return decoded[0], decoded[1], None


def _check_header_and_signature(token: str, header: dict, jwks: dict | None, at: _At,
                                findings: list[Finding]) -> bool:
    typ = header.get("typ")
    if typ != "JWT":
        findings.append(TYP.finding(f"saw typ {show(typ)}; expected 'JWT'", at("jwt.header.typ")))
    alg = header.get("alg")
    alg_ok = alg in spec.ALLOWED_JWT_ALGS
    if not alg_ok:
        findings.append(ALG.finding(_describe_bad_alg(alg), at("jwt.header.alg")))
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        if "x5c" in header:
            findings.append(X5C_NOT_CHECKED.finding("header carries x5c and no kid; the chain to the test CA "
                                                    "is not evaluated by this check", at("jwt.header.x5c")))
            return False
        findings.append(KID_MISSING.finding(f"saw kid {show(kid)}; expected the id of a registered key",
                                            at("jwt.header.kid")))
        return False
    if jwks is None:
        findings.append(NOT_CHECKED.finding(f"no JWKS registered for this issuer; kid {show(kid)} not looked up",
                                            at("jwt.header.kid")))
        return False
    registered = jwks.get("keys") if isinstance(jwks, dict) else None
    registered = [k for k in registered if isinstance(k, dict)] if isinstance(registered, list) else []
    keys = [k for k in registered if k.get("kid") == kid]
    if not keys:
        known = sorted(str(k.get("kid")) for k in registered)
        findings.append(KID_UNKNOWN.finding(f"kid {show(kid)} not among registered kids {known}",
                                            at("jwt.header.kid")))
        return False
    if not alg_ok:  # never verify with none or HMAC, whatever the key
        return False
    jwk = next((k for k in keys if _fits(k, alg)), None)
    if jwk is None:
        seen = ", ".join(_describe_key(k) for k in keys)
        findings.append(KEY_CONFUSION.finding(f"alg {alg} cannot be used with the key registered as kid "
                                              f"{show(kid)} ({seen})", at("jwt.header.alg")))
        return False
    return _verify(token, jwk, alg, at, findings)


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


def _number(value: object) -> bool:
    # Python's json accepts NaN and Infinity; neither is a NumericDate.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


def _check_client_claims(claims: dict, expected_client_id: str | None, at: _At, findings: list[Finding]) -> None:
    iss, sub = claims.get("iss"), claims.get("sub")
    if iss is not None and sub is not None and iss != sub:
        findings.append(CLIENT_ISS_SUB.finding(f"iss {show(iss)} differs from sub {show(sub)}; both must be the "
                                               "client id", at("jwt.claims.sub")))
    if expected_client_id is not None and iss is not None and iss != expected_client_id:
        findings.append(CLIENT_ID.finding(f"saw iss {show(iss)}; expected the registered client id "
                                          f"{expected_client_id!r}", at("jwt.claims.iss")))


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
