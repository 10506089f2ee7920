"""Probes: requests the simulator (as receiving node) makes on purpose to see the vendor's authorization server and
resource server refuse them (SPEC §5.2-§5.4). Each returns what was asked, what came back, and the findings.

They run after a notification was received in the session, so there is a real authorization base and real queries
to build on; everything goes through the session's normal route (and so through the proxy, which records them).

- Resource server: `no-token`, `bad-token` (a token of the wrong shape), `unknown-token` (a well-formed random
  token it never issued), `other-patient`, `malformed-query` and `accept-xml` (both built from a query the vendor's
  own Task offered). An *expired* token cannot be made in reasonable time (the vendor decides how long its tokens
  live), so `unknown-token` stands in for it.
- Authorization server, each a pull-token request with the notification's authorization base and one defect in
  both assertions: `wrong-aud`, `expired-assertion`, `unknown-key`, `alg-none`, `alg-hmac`; `replayed-jti` (a
  good request sent twice: the second must be refused); `unknown-authorization-base`; and
  `token-after-cancellation`. Refused means 400 invalid_grant or 401 invalid_client (RFC 6749 §5.2, SPEC §5.2).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any, Callable
from urllib.parse import urljoin

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from simulator.lenient import hmac_secret
from simulator.outbound.client import DIRECT, OutboundError, Transport, client_for, fetch_token, require
from speeltuin.keys import ASSERTION_LIFETIME_S, Signer
from speeltuin.records import PROBE_HEADER, Notification, NotificationOrigin, Role, Session
from speeltuin.store import Store
from validators import safe_json
from validators.findings import Finding, errors
from validators.probe_verdict import oauth_error, probe_mark, probe_verdict, refused
from validators.rules.http import check_accept_honoured, check_fhir_response
from validators.rules.jwt_assertion import check_assertion, check_jti_replay
from validators.rules.token_request import check_grant_refused, check_token_response
from validators.spec import BSN_SYSTEM, CLIENT_ASSERTION_TYPE, GRANT_JWT_BEARER
from validators.stu3 import FHIR_JSON, FHIR_XML
from validators.task_reader import pull_targets

# Assertion probes: one defect in both assertions of an otherwise good pull-token request.
ASSERTION_PROBES = ("wrong-aud", "expired-assertion", "unknown-key", "alg-none", "alg-hmac", "unknown-client",
                    "long-lived-assertion", "other-ura")
PROBES = ("no-token", "bad-token", "unknown-token", "other-patient", "malformed-query", "accept-xml",
          "token-after-cancellation", *ASSERTION_PROBES, "replayed-jti", "unknown-authorization-base")
# The rule a probe reports when the vendor does not refuse it properly (the main one; a probe also reports the form
# of the answer: HTTP-003/HTTP-004 on FHIR errors, TOKR-* on token responses).
PROBE_RULES: dict[str, str] = {
    "no-token": "HTTP-006", "bad-token": "HTTP-007", "unknown-token": "HTTP-007", "other-patient": "HTTP-008",
    "malformed-query": "HTTP-009", "accept-xml": "HTTP-005", "token-after-cancellation": "TOK-015",
    # a token granted: the defect the AS overlooked, as validators.rules.jwt_assertion.check_assertion names it
    # (answered otherwise than 400 invalid_grant / 401 invalid_client: TOK-015)
    "wrong-aud": "JWT-013", "expired-assertion": "JWT-015", "unknown-key": "JWT-005", "alg-none": "JWT-003",
    "alg-hmac": "JWT-003", "replayed-jti": "JWT-024", "unknown-authorization-base": "TOK-015",
    "unknown-client": "JWT-012", "long-lived-assertion": "JWT-017",
    "other-ura": "TOK-015",  # nothing wrong in the assertions themselves: a grant for an organisation not the owner
}
UNKNOWN_CLIENT_ID = "not-a-registered-client"
OTHER_URA = "90000999"  # a URA of the right form that is not the owner of any notification in the test
OTHER_PATIENT_BSN = "999990639"  # a valid test BSN that the notification does not name
OTHER_PATIENT_BSN_ALT = "999993653"
WRONG_AUDIENCE_PATH = "/not-the-token-endpoint/token"

Sign = Callable[[dict[str, Any]], str]


class ProbeError(Exception):
    """The probe cannot be made in this session; the message says why."""


def probe(store: Store, signer: Signer, session: Session, kind: str, *, timeout: float = 15.0,
          transport: Transport = DIRECT) -> dict[str, Any]:
    if kind not in PROBES:
        raise ProbeError(f"unknown probe {kind!r}; known: {', '.join(PROBES)}")
    if session.is_chain:
        raise ProbeError(session.not_simulated)
    if session.simulator_role != Role.RECEIVER:
        raise ProbeError("probes test the vendor's servers: the vendor must be the sender in this session")
    received = [n for n in store.list_notifications(session.id) if n.origin == NotificationOrigin.RECEIVED]
    if not received:
        raise ProbeError("no notification received in this session yet; let the vendor notify first")
    try:
        fhir_base = require(session, "vendor_fhir_base") + "/"
        token_url = require(session, "vendor_token_url")
    except OutboundError as exc:
        raise ProbeError(str(exc)) from exc
    notification = received[-1]
    other = OTHER_PATIENT_BSN if notification.patient_bsn != OTHER_PATIENT_BSN else OTHER_PATIENT_BSN_ALT
    http = client_for(session, transport)
    # the proxy removes the mark and judges the answer as this probe's, so the session's evidence says it too
    http.headers[PROBE_HEADER] = probe_mark(kind, other_bsn=other if kind == "other-patient" else None)
    asker = _Asker(http, signer, session, token_url, timeout)
    try:
        if kind == "token-after-cancellation":
            return asker.after_cancellation(notification)
        if kind == "unknown-authorization-base":
            return asker.unknown_base()
        if kind in ("no-token", "bad-token", "unknown-token"):
            token = {"no-token": None, "bad-token": "not-a-valid-token-" + secrets.token_hex(8),
                     "unknown-token": secrets.token_urlsafe(32)}[kind]
            return _search(http, kind, urljoin(fhir_base, "Patient"), token, timeout)
        if notification.status != "requested":
            raise ProbeError(f"the last notification is {notification.status}; these probes need a valid one")
        if kind in ASSERTION_PROBES:
            return asker.defective_assertions(kind, notification.authorization_base)
        if kind == "replayed-jti":
            return asker.replay(notification.authorization_base)
        token = fetch_token(http, token_url, asker.good_form(notification.authorization_base), timeout)
        if kind == "malformed-query":
            return _search(http, kind, urljoin(fhir_base, _malformed(_offered_query(notification))), token, timeout)
        if kind == "accept-xml":
            return _search(http, kind, urljoin(fhir_base, _offered_query(notification)), token, timeout,
                           accept=FHIR_XML)
        return _search(http, kind, urljoin(fhir_base, f"Patient?identifier={BSN_SYSTEM}%7C{other}"), token, timeout,
                       other_bsn=other)
    except requests.RequestException as exc:
        raise ProbeError(f"the vendor could not be reached: {exc}") from exc
    except OutboundError as exc:
        raise ProbeError(f"no pull token for the probe: {exc}") from exc


# --- the resource server (SPEC §5.4) ---------------------------------------------------------------------------

def _offered_query(notification: Notification) -> str:
    """The first search query the vendor's Task offered (relative, as the Task wrote it)."""
    query = next((path for kind, path in pull_targets(notification.task) if kind == "search"), None)
    if query is None:
        raise ProbeError("the vendor's Task offers no search query to build the probe on")
    return query


def _malformed(query: str) -> str:
    """The offered query (same resource type and parameters) with one broken parameter: a _count that is no number."""
    path, _, params = query.partition("?")
    return f"{path}?{params + '&' if params else ''}_count=not-a-number"


def _search(http: requests.Session, kind: str, url: str, token: str | None, timeout: float, *,
            other_bsn: str | None = None, accept: str = FHIR_JSON) -> dict[str, Any]:
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = http.get(url, headers=headers, timeout=timeout)
    findings = check_fhir_response(response.status_code, response.headers, response.content)
    if kind == "accept-xml":
        # SPEC §3 step 5: the search in XML; a server that cannot write XML says so with 406
        if response.status_code != 406:
            findings += check_accept_honoured(accept, None, response.headers.get("Content-Type"))
    else:  # other-patient: search narrowing may answer 200 with nothing of theirs; anything of theirs is a leak
        findings += probe_verdict(kind, response.status_code, response.headers, response.content,
                                  other_bsn=other_bsn)
    return _result(kind, "GET", url, response, findings)


# --- the authorization server (SPEC §5.2-§5.3) -----------------------------------------------------------------

class _Asker:
    """Pull-token requests to the vendor's AS as this session's client, good or with one defect."""

    def __init__(self, http: requests.Session, signer: Signer, session: Session, token_url: str,
                 timeout: float) -> None:
        self.http, self.signer, self.session, self.token_url, self.timeout = http, signer, session, token_url, timeout
        self.client_id, self.ura = session.config.own_client_id, session.config.own_ura
        self.audience = session.config.vendor_token_aud or token_url  # what the token endpoint knows itself by

    def post(self, form: dict[str, str]) -> requests.Response:
        return self.http.post(self.token_url, data=form, timeout=self.timeout, headers={"Accept": "application/json"})

    def good_form(self, authorization_base: str) -> dict[str, str]:
        return self.signer.token_request_form(self.client_id, self.ura, self.audience, authorization_base)

    def after_cancellation(self, notification: Notification) -> dict[str, Any]:
        if notification.status != "cancelled":
            raise ProbeError("the last notification is not cancelled; let the vendor cancel it first")
        response = self.post(self.good_form(notification.authorization_base))
        findings = check_token_response(response.status_code, response.headers, response.content)
        findings += probe_verdict("token-after-cancellation", response.status_code, response.headers,
                                  response.content)
        return _result("token-after-cancellation", "POST", self.token_url, response, findings)

    def unknown_base(self) -> dict[str, Any]:
        response = self.post(self.good_form(secrets.token_urlsafe(24)))
        findings = check_token_response(response.status_code, response.headers, response.content)
        findings += probe_verdict("unknown-authorization-base", response.status_code, response.headers,
                                  response.content)
        return _result("unknown-authorization-base", "POST", self.token_url, response, findings)

    def defective_assertions(self, kind: str, authorization_base: str) -> dict[str, Any]:
        now = int(time.time())
        override: dict[str, Any] = {}
        sign: Sign = self.signer.sign
        if kind == "wrong-aud":
            override["aud"] = urljoin(self.audience, WRONG_AUDIENCE_PATH)
        elif kind == "expired-assertion":  # a short lifetime that ended well beyond the clock skew
            override.update(iat=now - 400, exp=now - 400 + ASSERTION_LIFETIME_S)
        elif kind == "unknown-key":
            sign = _sign_with_unknown_key()
        elif kind == "alg-none":
            sign = _sign_none(self.signer.kid)
        elif kind == "alg-hmac":  # the key-confusion attack, HS256 keyed with our registered public key
            sign = _sign_hmac(self.signer)
        elif kind == "long-lived-assertion":  # a lifetime well over the 300 s SPEC §5.2 allows
            override.update(iat=now, exp=now + 12 * ASSERTION_LIFETIME_S)
        client_override, grant_override = dict(override), dict(override)
        if kind == "unknown-client":  # a client the vendor never registered, signing with a key it knows
            client_override.update(iss=UNKNOWN_CLIENT_ID, sub=UNKNOWN_CLIENT_ID)
            grant_override.update(iss=UNKNOWN_CLIENT_ID)
        elif kind == "other-ura":  # asks for the notification's data for an organisation that is not its owner
            grant_override.update(sub=OTHER_URA)
        form = self.form(sign, authorization_base, client=client_override, grant=grant_override)
        response = self.post(form)
        return _result(kind, "POST", self.token_url, response, self.judge(response, lambda: self.overlooked(form)))

    def replay(self, authorization_base: str) -> dict[str, Any]:
        form = self.good_form(authorization_base)
        first = self.post(form)
        if first.status_code != 200:
            raise ProbeError(f"the first, good token request was answered {first.status_code} "
                             f"({oauth_error(first.content) or 'no OAuth error'}); a replay cannot be judged")
        response = self.post(form)

        def replayed() -> list[Finding]:
            found: list[Finding] = []
            for key in ("client_assertion", "assertion"):
                claims = jwt.decode(form[key], options={"verify_signature": False})  # our own, signed above
                found += check_jti_replay(claims, lambda *_: True, key)  # we sent it before: it is a replay
            return found

        result = _result("replayed-jti", "POST", self.token_url, response, self.judge(response, replayed))
        result["first_status"] = first.status_code
        return result

    def form(self, sign: Sign, authorization_base: str, *, client: dict[str, Any] | None = None,
             grant: dict[str, Any] | None = None) -> dict[str, str]:
        """A pull-token request signed with `sign`; `client`, `grant`: claims that replace the good ones."""
        client = {**self.claims(self.client_id), **(client or {})}
        grant = {**self.claims(self.ura), "authorization_base": authorization_base, **(grant or {})}
        return {"grant_type": GRANT_JWT_BEARER, "assertion": sign(grant),
                "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": sign(client)}

    def claims(self, sub: str) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.client_id, "sub": sub, "aud": self.audience, "iat": now,
                "exp": now + ASSERTION_LIFETIME_S, "jti": secrets.token_urlsafe(16)}

    def judge(self, response: requests.Response, granted: Callable[[], list[Finding]]) -> list[Finding]:
        """Refused as RFC 6749 §5.2 says: nothing to report; granted: what it overlooked; else TOK-015."""
        findings = check_token_response(response.status_code, response.headers, response.content)
        if refused(response.status_code, response.content):
            return findings
        if response.status_code == 200:
            return findings + (granted() or check_grant_refused(response.status_code, response.content))
        return findings + check_grant_refused(response.status_code, response.content)

    def overlooked(self, form: dict[str, str]) -> list[Finding]:
        """The defects of the assertions the vendor granted a token to, as our own AS would judge them."""
        found: list[Finding] = []
        for key, kind in (("client_assertion", "client"), ("assertion", "authorization")):
            found += errors(check_assertion(form[key], kind=kind, audience=self.audience,  # type: ignore[arg-type]
                                            jwks=self.signer.jwks(), now=time.time(), expected_client_id=self.client_id,
                                            purpose="pull" if kind == "authorization" else None,
                                            location=key).findings)
        return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _sign_with_unknown_key() -> Sign:
    key = ec.generate_private_key(ec.SECP256R1())
    kid = "unknown-" + secrets.token_hex(6)
    return lambda claims: jwt.encode(claims, key, algorithm="ES256", headers={"typ": "JWT", "kid": kid})


def _sign_none(kid: str) -> Sign:
    return lambda claims: _signing_input({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."


def _sign_hmac(signer: Signer) -> Sign:
    jwk = next(k for k in signer.jwks()["keys"] if k.get("kid") == signer.kid)
    secret = hmac_secret(jwk)

    def sign(claims: dict[str, Any]) -> str:
        signing_input = _signing_input({"alg": "HS256", "typ": "JWT", "kid": signer.kid}, claims)
        return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"

    return sign


def _result(kind: str, method: str, url: str, response: requests.Response, findings: list[Finding]) -> dict[str, Any]:
    return {"probe": kind, "method": method, "url": url, "status": response.status_code,
            "www_authenticate": response.headers.get("WWW-Authenticate"),
            "body": _redacted(response.text)[:2000], "findings": [f.to_dict() for f in findings]}


def _redacted(text: str) -> str:
    """A token response without its access token (a granted probe token is a live credential)."""
    try:
        document = safe_json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and "access_token" in document:
        return json.dumps({**document, "access_token": "<redacted>"})
    return text
