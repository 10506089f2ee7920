"""Signed JWT assertions (RFC 7523, TA NP §3.2.1/§3.2.2; SPEC §5.2): our signing key, signing, verifying.

Signing uses authlib's RFC 7523 helpers; verifying uses authlib's JOSE with an algorithm allow-list
(RS/PS/ES 256-512: never `none`, never HMAC) and the checks of SPEC §5.2 done here by hand so every
refusal names its reason: `typ=JWT`, key by `kid` in the issuer's JWKS (refetched once on an unknown
`kid`), exact `aud`, `iat`/`exp` present, lifetime at most 300 s, 60 s clock skew, optional `nbf`,
`jti` unique per issuer.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import requests
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.jose.errors import JoseError
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from authlib.oauth2.rfc7523.assertion import sign_jwt_bearer_assertion
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALLOWED_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
MAX_LIFETIME = 300  # SPEC §5.2 [choice]: reject a lifetime over 5 minutes
CLOCK_SKEW = 60  # SPEC §5.2 [choice]
OUR_LIFETIME = 60  # what we put in our own assertions
KEY_FILE = "signing-key.pem"

_verifier = JsonWebToken(ALLOWED_ALGS)


class AssertionRejected(Exception):
    """An assertion that fails a check; the message is the reason given to the client."""


class SigningKey:
    """Our EC P-256 signing key (generated once into the state dir, loaded afterwards)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / KEY_FILE
        if path.exists():
            pem = path.read_bytes()
        else:
            private = ec.generate_private_key(ec.SECP256R1())
            pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pem)
            tmp.chmod(0o600)
            tmp.replace(path)
        self.path = path
        self.jwk = JsonWebKey.import_key(pem, {"kty": "EC"})
        private_key = serialization.load_pem_private_key(pem, password=None)
        numbers = private_key.public_key().public_numbers()  # type: ignore[union-attr]
        # RFC 7518 §6.2.1.2: x and y are the full 32 octets (authlib's as_dict drops leading zero octets)
        self._public = {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x.to_bytes(32, "big")),
                        "y": _b64(numbers.y.to_bytes(32, "big"))}
        canonical = json.dumps(self._public, separators=(",", ":"), sort_keys=True).encode()
        self.kid = _b64(hashlib.sha256(canonical).digest())  # RFC 7638 thumbprint
        self.alg = "ES256"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._public, kid=self.kid, use="sig", alg=self.alg)]}

    def header(self) -> dict[str, str]:
        return {"typ": "JWT", "kid": self.kid}

    def client_assertion(self, client_id: str, token_url: str) -> str:
        """RFC 7523 §2.2 client assertion: iss = sub = client id, aud = the exact token endpoint."""
        token = private_key_jwt_sign(self.jwk, client_id, token_url, alg=self.alg, header=self.header(),
                                     claims={"jti": secrets.token_urlsafe(24)}, expires_in=OUR_LIFETIME)
        return token.decode() if isinstance(token, bytes) else token

    def authorization_assertion(self, client_id: str, ura: str, token_url: str,
                                authorization_base: str | None = None) -> str:
        """TA NP authorization assertion (RFC 7523 §2.1 grant): sub = our organisation's URA."""
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(24)}
        if authorization_base is not None:
            claims["authorization_base"] = authorization_base
        token = sign_jwt_bearer_assertion(self.jwk, issuer=client_id, audience=token_url, subject=ura,
                                          claims=claims, header=self.header(), alg=self.alg,
                                          expires_in=OUR_LIFETIME)
        return token.decode() if isinstance(token, bytes) else token


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64json(part: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims WITHOUT verifying (to choose the key and the notification). Raises AssertionRejected."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise AssertionRejected("not a compact JWS (three dot-separated parts)")
    head, body, _sig = token.split(".")
    try:
        return _b64json(head), _b64json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AssertionRejected(f"undecodable JWS: {exc}") from exc


class JwksCache:
    """The peer's JWKS by URL, kept 60 s, refetched once when a `kid` is unknown."""

    def __init__(self, ttl: float = 60.0) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, timeout=5, headers={"Accept": "application/json"})
            response.raise_for_status()
            jwks = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise AssertionRejected(f"cannot fetch the issuer's JWKS from {url}: {exc}") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise AssertionRejected(f"the issuer's JWKS at {url} has no 'keys' list")
        with self._lock:
            self._cache[url] = (time.monotonic(), jwks)
        return jwks

    def _get(self, url: str) -> dict[str, Any]:
        with self._lock:
            cached = self._cache.get(url)
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return self._fetch(url)

    @staticmethod
    def _pick(jwks: dict[str, Any], kid: str | None) -> dict[str, Any] | None:
        keys = [k for k in jwks["keys"] if isinstance(k, dict)]
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.get("kid") == kid), None)

    def find(self, url: str, kid: str | None) -> dict[str, Any]:
        key = self._pick(self._get(url), kid)
        if key is None:
            key = self._pick(self._fetch(url), kid)
        if key is None:
            raise AssertionRejected(f"no key with kid {kid!r} in the issuer's JWKS ({url})")
        return key


class ReplayGuard:
    """`jti` values seen per issuer, kept until their assertion has expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}

    def check_and_add(self, issuer: str, jti: str, expires: float) -> None:
        now = time.time()
        with self._lock:
            for key in [k for k, exp in self._seen.items() if exp + CLOCK_SKEW < now]:
                del self._seen[key]
            if (issuer, jti) in self._seen:
                raise AssertionRejected(f"jti {jti!r} of issuer {issuer!r} was already used (replay)")
            self._seen[(issuer, jti)] = expires


def _number(claims: dict[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise AssertionRejected(f"claim '{name}' is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AssertionRejected(f"claim '{name}' is not a NumericDate")
    return float(value)


def verify(token: str, *, what: str, jwks_url: str, jwks: JwksCache, audiences: set[str], replay: ReplayGuard,
           issuer: str | None = None, subject: str | None = None) -> dict[str, Any]:
    """Verify one assertion; returns its claims or raises AssertionRejected('<what>: reason')."""
    try:
        header, _ = peek(token)
        if header.get("typ") != "JWT":
            raise AssertionRejected(f"header typ must be 'JWT', not {header.get('typ')!r}")
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise AssertionRejected(f"alg {alg!r} is not allowed (RS/PS/ES 256-512 only)")
        if "kid" not in header and "x5c" in header:
            raise AssertionRejected("keys by x5c are not supported by this node: name the key by kid")
        key = jwks.find(jwks_url, header.get("kid"))
        try:
            claims = dict(_verifier.decode(token, JsonWebKey.import_key(key)))
        except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise AssertionRejected(f"signature does not verify with the issuer's key: {exc}") from exc
        for name in ("iss", "sub", "aud", "jti"):
            if not claims.get(name):
                raise AssertionRejected(f"claim '{name}' is missing")
        if issuer is not None and claims["iss"] != issuer:
            raise AssertionRejected(f"iss {claims['iss']!r} is not the registered client {issuer!r}")
        if subject is not None and claims["sub"] != subject:
            raise AssertionRejected(f"sub {claims['sub']!r} must be {subject!r}")
        aud = claims["aud"]
        auds = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a in audiences for a in auds):
            raise AssertionRejected(f"aud {aud!r} is not this token endpoint ({' or '.join(sorted(audiences))})")
        now = time.time()
        iat = _number(claims, "iat", True)
        exp = _number(claims, "exp", True)
        nbf = _number(claims, "nbf", False)
        assert iat is not None and exp is not None
        if exp <= now - CLOCK_SKEW:
            raise AssertionRejected("the assertion has expired (exp)")
        if iat > now + CLOCK_SKEW:
            raise AssertionRejected("iat lies in the future")
        if nbf is not None and nbf > now + CLOCK_SKEW:
            raise AssertionRejected("the assertion is not valid yet (nbf)")
        if exp <= iat:
            raise AssertionRejected("exp is not after iat")
        if exp - iat > MAX_LIFETIME:
            raise AssertionRejected(f"lifetime exp - iat = {int(exp - iat)} s exceeds {MAX_LIFETIME} s")
        if not isinstance(claims["jti"], str):
            raise AssertionRejected("claim 'jti' is not a string")
        replay.check_and_add(str(claims["iss"]), claims["jti"], exp)
        return claims
    except AssertionRejected as exc:
        raise AssertionRejected(f"{what}: {exc}") from exc
