"""What the fault switches (simulator/faults.py) need to misbehave: kept apart so the switches stay a plain list."""
from __future__ import annotations

import json
import time

import jwt
from cryptography.hazmat.primitives import serialization

from speeltuin.records import Notification, NotificationOrigin
from speeltuin.store import Store


def latest_live_notification(store: Store, session_id: str) -> Notification | None:
    """The newest notification this node sent in the session that is still live: what a lenient fault binds to."""
    now = time.time()
    live = [n for n in store.list_notifications(session_id)
            if n.origin == NotificationOrigin.SENT and n.status == "requested" and n.period_end > now]
    return live[-1] if live else None


def hmac_secret(jwk: dict) -> bytes:
    """The public key of a JWK as PEM (SubjectPublicKeyInfo): the "secret" of the HS256 key-confusion attack.

    The alg-hmac probe signs with it and a server with the accepts-alg-hmac fault verifies with it.
    Raises ValueError (or a PyJWT error) for a JWK that is not an EC or RSA public key.
    """
    kty = jwk.get("kty")
    algorithm = {"EC": jwt.algorithms.ECAlgorithm, "RSA": jwt.algorithms.RSAAlgorithm}.get(kty)
    if algorithm is None:
        raise ValueError(f"no public key in a JWK of kty {kty!r}")
    key = algorithm.from_jwk(json.dumps(jwk))
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
