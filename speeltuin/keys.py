"""The instance signing key, its JWKS, and the signed assertions this node sends (SPEC §5.2)."""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from speeltuin.store import Store
from validators.spec import CLIENT_ASSERTION_TYPE, GRANT_JWT_BEARER

ASSERTION_LIFETIME_S = 120


class Signer:
    """Signs this node's JWTs with an EC P-256 key (ES256) kept in the store across restarts."""

    def __init__(self, kid: str, private_pem: str) -> None:
        self.kid = kid
        self._key = serialization.load_pem_private_key(private_pem.encode(), password=None)

    @classmethod
    def load_or_create(cls, store: Store) -> "Signer":
        found = store.load_instance_key()
        if found:
            return cls(*found)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        kid = "sim-" + secrets.token_hex(6)
        store.save_instance_key(kid, pem)
        # Another process may have raced us; whichever key was stored first wins.
        return cls(*store.load_instance_key())  # type: ignore[misc]

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return {"keys": [public]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "JWT", "kid": self.kid})

    def client_assertion(self, client_id: str, token_url: str) -> str:
        return self.sign(_base_claims(client_id, client_id, token_url))

    def authorization_assertion(self, client_id: str, ura: str, token_url: str,
                                authorization_base: str | None = None) -> str:
        claims = _base_claims(client_id, ura, token_url)
        if authorization_base is not None:
            claims["authorization_base"] = authorization_base
        return self.sign(claims)

    def token_request_form(self, client_id: str, ura: str, token_url: str,
                           authorization_base: str | None = None) -> dict[str, str]:
        """The form of a jwt-bearer token request carrying both assertions."""
        return {
            "grant_type": GRANT_JWT_BEARER,
            "assertion": self.authorization_assertion(client_id, ura, token_url, authorization_base),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(client_id, token_url),
        }


def _base_claims(iss: str, sub: str, aud: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(16)}
