from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from validators.rules.jwt_assertion import check_assertion, check_assertion_file, check_jti_replay

from . import test_certificates as pki
from ._cases import check_case, fires, quiet

# Fresh keys per test run: nothing here depends on a fixed key.
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(private_key: Any, kid: str, **extra: str) -> dict:
    algorithm = jwt.algorithms.ECAlgorithm if isinstance(private_key, ec.EllipticCurvePrivateKey) \
        else jwt.algorithms.RSAAlgorithm
    return {**algorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, **extra}


JWKS = {"keys": [
    _jwk(EC_KEY, "ec-1"),
    _jwk(RSA_KEY, "rsa-1"),
    _jwk(RSA_KEY, "rsa-pinned-ps256", alg="PS256"),
    {"kid": "broken", "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB"},
]}
AUD = "https://speeltuin.test/s/s-1/token"
NOW = 1_700_000_000
CLIENT = "vendor-gtk"
URA = "12345678"
DROP = object()


def claims(**changes: Any) -> dict:
    base = {"iss": CLIENT, "sub": CLIENT, "aud": AUD, "iat": NOW, "exp": NOW + 60, "jti": "jti-1"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def auth_claims(**changes: Any) -> dict:
    return claims(**{"sub": URA, "authorization_base": "ab-123", **changes})


def sign(payload: dict, *, key: Any = EC_KEY, alg: str = "ES256", kid: str | None = "ec-1",
         **header: Any) -> str:
    headers = {"typ": "JWT", **header}
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: Any, payload: Any, signature: bytes = b"") -> str:
    return ".".join((b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)))


def hs256_with_public_key(payload: dict, kid: str = "rsa-1") -> str:
    """The classic key-confusion attack: HMAC keyed with the RSA public key as published."""
    secret = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"typ": "JWT", "alg": "HS256", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def client(token: str, **kw: Any) -> list:
    return check_assertion(token, kind="client", audience=AUD, jwks=kw.pop("jwks", JWKS), now=NOW, **kw).findings


def authz(token: str, purpose: Any = "pull", **kw: Any) -> list:
    return check_assertion(token, kind="authorization", audience=AUD, jwks=kw.pop("jwks", JWKS), now=NOW,
                           purpose=purpose, **kw).findings


GOOD = sign(claims())
GOOD_RSA = sign(claims(), key=RSA_KEY, alg="RS256", kid="rsa-1")
GOOD_PS = sign(claims(), key=RSA_KEY, alg="PS256", kid="rsa-pinned-ps256")
GOOD_AUTH = sign(auth_claims())
header_ok, payload_ok, signature_ok = GOOD.split(".")
TAMPERED = f"{header_ok}.{b64(json.dumps(claims(sub='someone-else', iss='someone-else')).encode())}.{signature_ok}"

def x5c_sign(payload: dict, *chain: Any, key: Any = pki.LEAF_KEY, **header: Any) -> str:
    """Signed with the leaf key, the chain in x5c (leaf first) and no kid unless given."""
    return sign(payload, key=key, kid=header.pop("kid", None), x5c=pki.x5c(*(chain or (pki.LEAF, pki.INTERMEDIATE))),
                **header)


def with_ca(token: str, kind: str = "client", **kw: Any) -> list:
    return check_x5c(token, kind, **kw).findings


def check_x5c(token: str, kind: str = "client", **kw: Any) -> Any:
    return check_assertion(token, kind=kind, audience=AUD, jwks=kw.pop("jwks", None), now=NOW,  # type: ignore[arg-type]
                           purpose="pull" if kind == "authorization" else None,
                           trusted_ca_pem=kw.pop("trusted_ca_pem", pki.CA_PEM), **kw)


GOOD_X5C = x5c_sign(claims())
# The leaf carries URA 90000101 in its otherName; an authorization assertion for that organization.
X5C_AUTH = x5c_sign(auth_claims(sub=pki.URA))
TLS_PEM = pki.pem(pki.TLS_CERT)

CASES = [
    quiet("JWT-001", "good", lambda: client(GOOD)),
    fires("JWT-001", "two-parts", lambda: client("abc.def")),
    fires("JWT-001", "not-a-string", lambda: client(None)),  # type: ignore[arg-type]
    fires("JWT-001", "header-not-base64", lambda: client(f"!!.{payload_ok}.{signature_ok}")),
    fires("JWT-001", "padded-base64", lambda: client(f"{header_ok}==.{payload_ok}.{signature_ok}")),
    fires("JWT-001", "payload-not-json", lambda: client(f"{header_ok}.{b64(b'not json')}.{signature_ok}")),
    fires("JWT-001", "header-is-array", lambda: client(compact(["JWT"], claims()))),
    quiet("JWT-002", "good", lambda: client(GOOD)),
    fires("JWT-002", "no-typ", lambda: client(compact({"alg": "ES256", "kid": "ec-1"}, claims()))),
    fires("JWT-002", "other-typ", lambda: client(sign(claims(), typ="at+jwt"))),
    quiet("JWT-003", "es256", lambda: client(GOOD)),
    quiet("JWT-003", "rs256", lambda: client(GOOD_RSA)),
    quiet("JWT-003", "ps256", lambda: client(GOOD_PS)),
    fires("JWT-003", "none", lambda: client(compact({"typ": "JWT", "alg": "none", "kid": "ec-1"}, claims()))),
    fires("JWT-003", "hs256-public-key", lambda: client(hs256_with_public_key(claims()))),
    fires("JWT-003", "no-alg", lambda: client(compact({"typ": "JWT", "kid": "ec-1"}, claims(), b"x"))),
    fires("JWT-003", "unknown-alg", lambda: client(compact({"typ": "JWT", "alg": "EdDSA", "kid": "ec-1"},
                                                           claims(), b"x"))),
    quiet("JWT-004", "good", lambda: client(GOOD)),
    fires("JWT-004", "no-kid", lambda: client(sign(claims(), kid=None))),
    quiet("JWT-005", "good", lambda: client(GOOD)),
    fires("JWT-005", "wrong-kid", lambda: client(sign(claims(), kid="not-registered"))),
    fires("JWT-005", "malformed-jwks", lambda: client(GOOD, jwks={"keys": {"kid": "ec-1"}})),
    quiet("JWT-006", "keys-registered", lambda: client(GOOD)),
    fires("JWT-006", "no-keys", lambda: client(GOOD, jwks=None)),
    quiet("JWT-007", "matching-key", lambda: client(GOOD_RSA)),
    fires("JWT-007", "es256-with-rsa-kid", lambda: client(sign(claims(), kid="rsa-1"))),
    fires("JWT-007", "rs256-with-key-pinned-to-ps256",
          lambda: client(sign(claims(), key=RSA_KEY, alg="RS256", kid="rsa-pinned-ps256"))),
    fires("JWT-007", "es384-with-p256-key", lambda: client(compact({"typ": "JWT", "alg": "ES384", "kid": "ec-1"},
                                                                   claims(), b"x" * 96))),
    quiet("JWT-008", "good", lambda: client(GOOD)),
    fires("JWT-008", "other-key", lambda: client(sign(claims(), key=OTHER_EC_KEY))),
    fires("JWT-008", "tampered-claims", lambda: client(TAMPERED)),
    quiet("JWT-009", "good", lambda: client(GOOD)),
    fires("JWT-009", "no-iss", lambda: client(sign(claims(iss=DROP)))),
    quiet("JWT-010", "good", lambda: client(GOOD)),
    fires("JWT-010", "no-sub", lambda: client(sign(claims(sub=DROP)))),
    fires("JWT-010", "empty-sub", lambda: authz(sign(auth_claims(sub="")))),
    quiet("JWT-011", "good", lambda: client(GOOD)),
    quiet("JWT-011", "authorization-sub-is-ura", lambda: authz(GOOD_AUTH)),
    fires("JWT-011", "iss-differs-from-sub", lambda: client(sign(claims(sub="other")))),
    quiet("JWT-012", "expected-client", lambda: client(GOOD, expected_client_id=CLIENT)),
    fires("JWT-012", "other-client", lambda: client(GOOD, expected_client_id="registered-client")),
    quiet("JWT-013", "exact", lambda: client(GOOD)),
    quiet("JWT-013", "list-containing", lambda: client(sign(claims(aud=["https://other", AUD])))),
    fires("JWT-013", "other-url", lambda: client(sign(claims(aud="https://speeltuin.test/token")))),
    fires("JWT-013", "trailing-slash", lambda: client(sign(claims(aud=AUD + "/")))),
    fires("JWT-013", "missing", lambda: client(sign(claims(aud=DROP)))),
    quiet("JWT-014", "good", lambda: client(GOOD)),
    fires("JWT-014", "missing", lambda: client(sign(claims(exp=DROP)))),
    fires("JWT-014", "string", lambda: client(compact({"typ": "JWT", "alg": "ES256", "kid": "ec-1"},
                                                      claims(exp=str(NOW + 60)), b"x"))),
    fires("JWT-014", "nan", lambda: client(compact({"typ": "JWT", "alg": "ES256", "kid": "ec-1"},
                                                   claims(exp=float("nan")), b"x"))),
    quiet("JWT-015", "within-skew", lambda: client(sign(claims(iat=NOW - 100, exp=NOW - 30)))),
    fires("JWT-015", "expired", lambda: client(sign(claims(iat=NOW - 200, exp=NOW - 61)))),
    quiet("JWT-016", "iat-within-skew", lambda: client(sign(claims(iat=NOW + 30, exp=NOW + 90)))),
    fires("JWT-016", "missing", lambda: client(sign(claims(iat=DROP)))),
    fires("JWT-016", "future", lambda: client(sign(claims(iat=NOW + 120, exp=NOW + 180)))),
    quiet("JWT-017", "five-minutes", lambda: client(sign(claims(exp=NOW + 300)))),
    fires("JWT-017", "too-long", lambda: client(sign(claims(exp=NOW + 301)))),
    fires("JWT-017", "one-hour", lambda: client(sign(claims(exp=NOW + 3600)))),
    fires("JWT-017", "exp-before-iat", lambda: client(sign(claims(iat=NOW, exp=NOW - 5)))),
    quiet("JWT-018", "nbf-past", lambda: client(sign(claims(nbf=NOW - 10)))),
    fires("JWT-018", "nbf-future", lambda: client(sign(claims(nbf=NOW + 120)))),
    fires("JWT-018", "nbf-string", lambda: client(compact({"typ": "JWT", "alg": "ES256", "kid": "ec-1"},
                                                          claims(nbf="soon"), b"x"))),
    quiet("JWT-019", "good", lambda: client(GOOD)),
    fires("JWT-019", "missing", lambda: client(sign(claims(jti=DROP)))),
    fires("JWT-019", "empty", lambda: client(sign(claims(jti="")))),
    quiet("JWT-020", "pull-with-base", lambda: authz(GOOD_AUTH)),
    quiet("JWT-020", "notification-needs-no-base", lambda: authz(sign(auth_claims(authorization_base=DROP)),
                                                                 purpose="notification")),
    fires("JWT-020", "pull-without-base", lambda: authz(sign(auth_claims(authorization_base=DROP)))),
    fires("JWT-020", "pull-empty-base", lambda: authz(sign(auth_claims(authorization_base="")))),
    quiet("JWT-021", "pull-with-base", lambda: authz(GOOD_AUTH)),
    fires("JWT-021", "patient-claim-instead",
          lambda: authz(sign(auth_claims(authorization_base=DROP, patient="999993653")))),
    quiet("JWT-022", "usable-key", lambda: client(GOOD)),
    fires("JWT-022", "broken-registered-key", lambda: client(sign(claims(), kid="broken"))),
    quiet("JWT-023", "kid", lambda: client(GOOD)),
    fires("JWT-023", "x5c-without-kid", lambda: client(sign(claims(), kid=None, x5c=["MIIB"]))),
    fires("JWT-005", "x5c-with-unknown-kid-and-no-ca", lambda: client(x5c_sign(claims(), kid="not-registered"))),
    quiet("JWT-023", "x5c-with-trusted-ca", lambda: with_ca(GOOD_X5C)),
    quiet("JWT-025", "chain", lambda: with_ca(GOOD_X5C)),
    fires("JWT-025", "string", lambda: with_ca(sign(claims(), key=pki.LEAF_KEY, kid=None, x5c="MIIB"))),
    fires("JWT-025", "not-base64", lambda: with_ca(sign(claims(), key=pki.LEAF_KEY, kid=None, x5c=["***"]))),
    fires("JWT-025", "not-der", lambda: with_ca(sign(claims(), key=pki.LEAF_KEY, kid=None,
                                                     x5c=[base64.b64encode(b"certificate").decode()]))),
    fires("JWT-025", "empty", lambda: with_ca(sign(claims(), key=pki.LEAF_KEY, kid=None, x5c=[]))),
    quiet("JWT-026", "leaf-intermediate", lambda: with_ca(GOOD_X5C)),
    quiet("JWT-026", "unknown-kid-falls-back-to-x5c", lambda: with_ca(x5c_sign(claims(), kid="not-registered"),
                                                                      jwks=JWKS)),
    quiet("JWT-026", "intermediate-trusted", lambda: with_ca(x5c_sign(claims(), pki.LEAF),
                                                             trusted_ca_pem=pki.pem(pki.INTERMEDIATE, pki.CA))),
    fires("JWT-026", "intermediate-missing", lambda: with_ca(x5c_sign(claims(), pki.LEAF))),
    fires("JWT-026", "other-ca", lambda: with_ca(x5c_sign(claims(), pki.FOREIGN_LEAF, pki.OTHER_CA))),
    fires("JWT-026", "wrong-order", lambda: with_ca(x5c_sign(claims(), pki.INTERMEDIATE, pki.LEAF))),
    fires("JWT-026", "self-signed", lambda: with_ca(x5c_sign(claims(), pki.OTHER_CA, key=pki.OTHER_CA_KEY))),
    quiet("JWT-027", "valid", lambda: with_ca(GOOD_X5C)),
    fires("JWT-027", "expired", lambda: with_ca(x5c_sign(claims(), pki.EXPIRED_LEAF))),
    fires("JWT-027", "not-yet-valid", lambda: with_ca(x5c_sign(claims(), pki.FUTURE_LEAF))),
    quiet("JWT-028", "leaf-key", lambda: with_ca(GOOD_X5C)),
    fires("JWT-028", "other-key", lambda: with_ca(x5c_sign(claims(), key=OTHER_EC_KEY))),
    fires("JWT-028", "rs256-with-ec-leaf", lambda: with_ca(compact(
        {"typ": "JWT", "alg": "RS256", "x5c": pki.x5c(pki.LEAF, pki.INTERMEDIATE)}, claims(), b"x" * 256))),
    fires("JWT-028", "tampered", lambda: with_ca(".".join((GOOD_X5C.split(".")[0], TAMPERED.split(".")[1],
                                                           GOOD_X5C.split(".")[2])))),
    quiet("CERT-001", "leaf-ura-is-sub", lambda: with_ca(X5C_AUTH, "authorization")),
    quiet("CERT-001", "leaf-without-ura-not-judged", lambda: with_ca(
        x5c_sign(auth_claims(), pki.LEAF_NO_URA), "authorization")),
    fires("CERT-001", "leaf-ura-is-not-sub", lambda: with_ca(x5c_sign(auth_claims(sub="90000202")), "authorization")),
    quiet("CERT-003", "jwk-not-tls-key", lambda: client(GOOD, tls_cert_pem=TLS_PEM)),
    quiet("CERT-003", "x5c-not-tls-key", lambda: with_ca(GOOD_X5C, tls_cert_pem=TLS_PEM)),
    fires("CERT-003", "jwk-is-tls-key", lambda: client(
        sign(claims(), key=pki.TLS_KEY, kid="tls"), jwks={"keys": [pki.jwk(pki.TLS_KEY, "tls")]},
        tls_cert_pem=TLS_PEM)),
    fires("CERT-003", "x5c-leaf-is-tls-cert", lambda: with_ca(GOOD_X5C, tls_cert_pem=pki.pem(pki.LEAF))),
    quiet("ID-URA-001", "authorization-sub-ura", lambda: authz(GOOD_AUTH)),
    fires("ID-URA-001", "authorization-sub-not-ura", lambda: authz(sign(auth_claims(sub=CLIENT)))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(case) -> None:
    check_case(case)


@pytest.mark.parametrize("token", [GOOD, GOOD_RSA, GOOD_PS])
def test_good_client_assertions_verify_cleanly(token: str) -> None:
    result = check_assertion(token, kind="client", audience=AUD, jwks=JWKS, now=NOW, expected_client_id=CLIENT)
    assert result.findings == []
    assert result.verified is True
    assert result.claims is not None and result.claims["iss"] == CLIENT
    assert result.header is not None and result.header["typ"] == "JWT"


def test_good_authorization_assertion() -> None:
    result = check_assertion(GOOD_AUTH, kind="authorization", audience=AUD, jwks=JWKS, now=NOW, purpose="pull")
    assert (result.findings, result.verified) == ([], True)


@pytest.mark.parametrize("token,jwks", [
    (GOOD, None),
    (hs256_with_public_key(claims()), JWKS),
    (compact({"typ": "JWT", "alg": "none", "kid": "ec-1"}, claims()), JWKS),
    (sign(claims(), key=OTHER_EC_KEY), JWKS),
    (sign(claims(), kid="rsa-1"), JWKS),
])
def test_not_verified(token: str, jwks: dict | None) -> None:
    assert check_assertion(token, kind="client", audience=AUD, jwks=jwks, now=NOW).verified is False


def test_malformed_stops_with_one_finding() -> None:
    result = check_assertion("abc.def", kind="client", audience=AUD, jwks=JWKS, now=NOW, location="form.assertion")
    assert [f.rule for f in result.findings] == ["JWT-001"]
    assert result.findings[0].location == "form.assertion.jwt"
    assert (result.header, result.claims, result.verified) == (None, None, False)


def test_locations_are_claim_paths_under_the_prefix() -> None:
    result = check_assertion(sign(claims(aud="https://wrong")), kind="client", audience=AUD, jwks=JWKS, now=NOW,
                             location="client_assertion")
    [finding] = result.findings
    assert finding.location == "client_assertion.jwt.claims.aud"
    assert "https://wrong" in finding.message and AUD in finding.message


@pytest.mark.parametrize("token", [
    sign(claims(), key=OTHER_EC_KEY), hs256_with_public_key(claims()), TAMPERED, GOOD + "x",
    sign(claims(exp=NOW + 3600, aud="x", jti="")), "abc.def",
])
def test_messages_never_carry_the_token_or_its_signature(token: str) -> None:
    findings = check_assertion(token, kind="client", audience=AUD, jwks=JWKS, now=NOW).findings
    assert findings
    signature = token.rsplit(".", 1)[-1]
    for finding in findings:
        assert token not in finding.message
        assert len(signature) < 8 or signature not in finding.message


def remembering() -> Callable[[str, str, float], bool]:
    """A jti memory as the proxy keeps one: True for a pair seen before."""
    seen: set[tuple[str, str]] = set()

    def seen_before(iss: str, jti: str, _exp: float) -> bool:
        known = (iss, jti) in seen
        seen.add((iss, jti))
        return known
    return seen_before


def twice(claims_: dict) -> list:
    memory = remembering()
    return check_jti_replay(claims_, memory, "client_assertion") + check_jti_replay(claims_, memory, "assertion")


REPLAY_CASES = [
    quiet("JWT-024", "first-use", lambda: check_jti_replay(claims(), remembering(), "client_assertion")),
    quiet("JWT-024", "other-issuer", lambda: check_jti_replay(claims(), remembering(), "c")
          + check_jti_replay(claims(iss="other", sub="other"), remembering(), "c")),
    fires("JWT-024", "replayed", lambda: twice(claims())),
    quiet("VAL-001", "audience-given", lambda: check_assertion_file(GOOD, AUD, JWKS, NOW)),
    fires("VAL-001", "no-audience", lambda: check_assertion_file(GOOD, None, JWKS, NOW)),
]


@pytest.mark.parametrize("case", REPLAY_CASES, ids=[c.id for c in REPLAY_CASES])
def test_replay_and_audience_case(case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)


def test_without_audience_the_exact_aud_rule_is_not_judged() -> None:
    found = check_assertion_file(sign(claims(aud="https://elsewhere.example/token")), None, JWKS, NOW)
    assert "JWT-013" not in {f.rule for f in found} and "VAL-001" in {f.rule for f in found}


def test_good_x5c_assertions_verify() -> None:
    result = check_x5c(GOOD_X5C)
    assert (result.findings, result.verified) == ([], True)
    assert result.certificate == pki.LEAF
    result = check_x5c(X5C_AUTH, "authorization")
    assert (result.findings, result.verified) == ([], True)


@pytest.mark.parametrize("token", [
    x5c_sign(claims(), pki.LEAF), x5c_sign(claims(), pki.EXPIRED_LEAF), x5c_sign(claims(), key=OTHER_EC_KEY),
    compact({"typ": "JWT", "alg": "none", "x5c": pki.x5c(pki.LEAF, pki.INTERMEDIATE)}, claims()),
])
def test_x5c_not_verified(token: str) -> None:
    assert check_x5c(token).verified is False


def test_registered_kid_wins_over_x5c() -> None:
    token = sign(claims(), kid="ec-1", x5c=pki.x5c(pki.EXPIRED_LEAF))
    result = check_x5c(token, jwks=JWKS)
    assert (result.findings, result.verified, result.certificate) == ([], True, None)


def test_unusable_trusted_ca_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        check_assertion(GOOD_X5C, kind="client", audience=AUD, jwks=None, now=NOW, trusted_ca_pem=b"no pem")


def test_x5c_messages_never_carry_the_signature() -> None:
    token = x5c_sign(claims(), key=OTHER_EC_KEY)
    [finding] = with_ca(token)
    assert finding.rule == "JWT-028" and finding.location == "jwt.signature"
    assert token.rsplit(".", 1)[1] not in finding.message
    assert "gtk.vendor.test" in finding.message
