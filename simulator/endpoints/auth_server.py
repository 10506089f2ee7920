"""The token endpoint (AS-S for pull tokens, AS-R for notification tokens), SPEC §5.2-§5.3."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt
from flask import Blueprint, Response, request

from simulator import faults, provocations
from simulator.endpoints.http_errors import oauth_error
from simulator.lenient import hmac_secret, latest_live_notification
from simulator.runtime import Runtime, runtime
from speeltuin.records import NotificationOrigin, Role, Session
from validators.findings import Finding, errors
from validators.rules import jwt_assertion as jwt_rules
from validators.rules.jwt_assertion import AssertionCheck, check_assertion
from validators.rules.token_request import (
    CONTENT_TYPE,
    DUPLICATE,
    GRANT_UNSUPPORTED,
    MALFORMED_FORM,
    check_token_request,
)
from validators.spec import GRANT_JWT_BEARER

auth_server = Blueprint("auth_server", __name__)

MAX_TOKEN_REQUEST_BYTES = 64 * 1024
_FRAMING_RULES = {CONTENT_TYPE.id, DUPLICATE.id, MALFORMED_FORM.id}


class TokenRefusal(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@auth_server.post("/s/<session_id>/token")
def token(session_id: str) -> Response:
    rt = runtime()
    session = rt.store.get_session(session_id)
    if session is None:
        return oauth_error("invalid_client", f"unknown session {session_id!r}")
    if (request.content_length or 0) > MAX_TOKEN_REQUEST_BYTES:
        return oauth_error("invalid_request", "token request too large")
    try:
        return _issue(rt, session)
    except TokenRefusal as refusal:
        return oauth_error(refusal.error, refusal.description)


def _issue(rt: Runtime, session: Session) -> Response:
    pull = session.simulator_role == Role.SENDER
    findings, form = check_token_request(request.get_data(cache=False), request.content_type,
                                         purpose="pull" if pull else "notification")
    grant_type = form.get("grant_type")
    bad = errors(findings)
    # RFC 6749 §5.2: a malformed request is invalid_request even when its grant type is also unknown.
    framing = [f for f in bad if f.rule in _FRAMING_RULES]
    if framing:
        raise TokenRefusal("invalid_request", _describe(framing))
    if any(f.rule == GRANT_UNSUPPORTED.id for f in bad):
        raise TokenRefusal("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    if bad:
        raise TokenRefusal("invalid_request", _describe(bad))
    token_url = f"{rt.public_base()}/s/{session.id}/token"
    now = time.time()
    trusted = rt.config.trusted_ca_pem
    vendor_keys = rt.vendor_keys.keys_for(session)
    # The sending side's assertion faults (simulator.faults) bend only the pull-token checks.
    active = rt.faults_for(session) if pull else frozenset()
    client = check_assertion(form["client_assertion"], kind="client", audience=token_url,
                             jwks=vendor_keys, now=now, trusted_ca_pem=trusted,
                             expected_client_id=session.config.vendor_client_id, location="client_assertion")
    client_errors, client_verified = _judged(form["client_assertion"], client, vendor_keys, active)
    if client_errors or not client_verified:
        raise TokenRefusal("invalid_client", _describe(client_errors) or _unverified(rt, session, vendor_keys))
    _use_jti(rt, session, client.claims, "invalid_client", active)

    if grant_type == GRANT_JWT_BEARER:
        grant = check_assertion(form["assertion"], kind="authorization", audience=token_url,
                                jwks=vendor_keys, now=now, trusted_ca_pem=trusted,
                                purpose="pull" if pull else "notification", location="assertion")
        grant_errors, grant_verified = _judged(form["assertion"], grant, vendor_keys, active)
        if grant_errors or not grant_verified:
            raise TokenRefusal("invalid_grant", _describe(grant_errors) or "assertion not verified")
        _use_jti(rt, session, grant.claims, "invalid_grant", active)
        ura = str((grant.claims or {}).get("sub"))
        authorization_base = (grant.claims or {}).get("authorization_base")
    else:  # client_credentials variant: the base travels as a form parameter
        ura = session.config.vendor_ura
        authorization_base = form.get("authorization_base")

    other_organisation = faults.GRANTS_OTHER_ORGANISATION in active
    if ura != session.config.vendor_ura and not other_organisation:
        raise TokenRefusal("invalid_grant", f"URA {ura} is not the URA registered for this session")
    if pull:
        return _pull_token(rt, session, ura, authorization_base, now, any_organisation=other_organisation)
    return _token_response(rt, session, "notification", ura, None, now + rt.config.token_lifetime_s)


def _pull_token(rt: Runtime, session: Session, ura: str, authorization_base: Any, now: float, *,
                any_organisation: bool = False) -> Response:
    """A pull token for the notification of `authorization_base`, to its owner only (`any_organisation`: the fault
    grants-other-organisation, to whoever asks)."""
    if provocations.REFUSE_PULL_TOKENS in session.config.provoke:
        # On purpose (RCV-12): a request that is fine in every other respect is refused as a grant the AS will not
        # honour; the vendor must give up after a bounded number of tries.
        raise TokenRefusal("invalid_grant", "pull tokens are refused in this session (provocation "
                                            f"{provocations.REFUSE_PULL_TOKENS})")
    if not isinstance(authorization_base, str) or not authorization_base:
        raise TokenRefusal("invalid_grant", "authorization_base is required for a pull token")
    notification = rt.store.find_notification(session.id, NotificationOrigin.SENT, authorization_base=authorization_base)
    if notification is None and rt.has_fault(session, faults.ACCEPTS_UNKNOWN_AUTHORIZATION_BASE):
        notification = latest_live_notification(rt.store, session.id)
    if notification is None:
        raise TokenRefusal("invalid_grant", "unknown authorization_base")
    if notification.status != "requested" and not rt.has_fault(session, faults.GRANTS_AFTER_CANCELLATION):
        raise TokenRefusal("invalid_grant", f"the notification is {notification.status}")
    if notification.period_end <= now:
        raise TokenRefusal("invalid_grant", "the notification's availability period has ended")
    if notification.owner_ura != ura and not any_organisation:
        raise TokenRefusal("invalid_grant", f"URA {ura} is not the owner of this notification")
    expires_at = min(now + rt.config.token_lifetime_s, notification.period_end)
    return _token_response(rt, session, "pull", ura, notification.id, expires_at)


def _token_response(rt: Runtime, session: Session, kind: str, ura: str, notification_id: str | None,
                    expires_at: float) -> Response:
    access_token = secrets.token_urlsafe(32)
    rt.store.add_token(access_token, session_id=session.id, kind=kind, subject_ura=ura,
                       expires_at=expires_at, notification_id=notification_id)
    body = {"access_token": access_token, "token_type": "Bearer", "expires_in": int(expires_at - time.time())}
    response = Response(json.dumps(body), status=200, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _use_jti(rt: Runtime, session: Session, claims: dict[str, Any] | None, error: str,
             active: frozenset[str]) -> None:
    if faults.ACCEPTS_REPLAYED_JTI in active:
        return
    claims = claims or {}
    if not rt.store.use_jti(session.id, str(claims.get("iss")), str(claims.get("jti")),
                            float(claims.get("exp", 0))):
        raise TokenRefusal(error, f"jti {claims.get('jti')!r} was used before by {claims.get('iss')!r}")


def _judged(token: str, check: AssertionCheck, jwks: dict | None, active: frozenset[str]) -> tuple[list[Finding], bool]:
    """The error findings that refuse an assertion, and whether its signature counts as verified.

    Faultless: as check_assertion found them. Each sending-side fault of simulator.faults overlooks one defect.
    """
    found, verified = errors(check.findings), check.verified
    alg = str((check.header or {}).get("alg", ""))
    overlooked: set[str] = set()
    if faults.ACCEPTS_WRONG_AUD in active:
        overlooked.add(jwt_rules.AUD.id)
    if faults.ACCEPTS_EXPIRED_ASSERTION in active:
        overlooked.add(jwt_rules.EXPIRED.id)
    if faults.ACCEPTS_UNKNOWN_CLIENT in active:
        overlooked.add(jwt_rules.CLIENT_ID.id)
    if faults.ACCEPTS_LONG_LIVED_ASSERTION in active:
        overlooked.add(jwt_rules.LIFETIME.id)
    if faults.ACCEPTS_UNKNOWN_KEY in active and any(f.rule == jwt_rules.KID_UNKNOWN.id for f in found):
        overlooked.add(jwt_rules.KID_UNKNOWN.id)
        verified = True  # nothing to verify with: taken on trust
    if faults.ACCEPTS_ALG_NONE in active and alg.lower() == "none":
        overlooked.add(jwt_rules.ALG.id)
        verified = True
    if faults.ACCEPTS_ALG_HMAC in active and alg.upper().startswith("HS") and _hmac_with_public_key(token, check, jwks):
        overlooked.add(jwt_rules.ALG.id)
        verified = True
    return [f for f in found if f.rule not in overlooked], verified


_HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _hmac_with_public_key(token: str, check: AssertionCheck, jwks: dict | None) -> bool:
    """The key-confusion bug: an HS* signature checked with the registered public key (PEM) as the secret."""
    header = check.header or {}
    digest = _HMAC_DIGESTS.get(str(header.get("alg", "")).upper())
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == header.get("kid")), None) \
        if isinstance(keys, list) else None
    if digest is None or jwk is None:
        return False
    try:
        secret = hmac_secret(jwk)
    except (ValueError, TypeError, KeyError, jwt.PyJWTError):
        return False
    signing_input, _, signature = token.rpartition(".")
    expected = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), digest).digest()).rstrip(b"=")
    return hmac.compare_digest(expected, signature.encode())


def _unverified(rt: Runtime, session: Session, vendor_keys: dict | None) -> str:
    """Why an assertion without other faults was not verified: most often, no keys to verify it with."""
    url = session.config.vendor_jwks_url
    if vendor_keys is None and url:
        return f"client assertion not verified: the session's vendor_jwks_url {url} gave no keys: " \
               f"{rt.vendor_keys.problem(url) or 'nothing usable'}"
    return "client assertion not verified"


def _describe(found: list) -> str:
    return "; ".join(f"{f.rule} {f.message}" for f in found[:3])
