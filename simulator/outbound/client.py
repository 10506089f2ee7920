"""HTTP client for the simulator's own calls to the vendor (notify, token, pull)."""
from __future__ import annotations

from dataclasses import dataclass

import requests

from speeltuin.records import SESSION_HEADER, Session, TlsFiles


@dataclass(frozen=True)
class Transport:
    """How the simulator reaches vendors: its TLS files (a client certificate of the test CA for mTLS sessions) and
    the validating proxy its calls to http:// vendors go through (the service), if any."""

    tls: TlsFiles | None = None
    proxy: str | None = None
    proxy_ca: str | None = None  # the proxy's own CA (PEM): it speaks TLS to us for https:// vendors, and verifies them


DIRECT = Transport()


class OutboundError(Exception):
    """The vendor could not be reached or answered something unusable; the message says which."""


def client_for(session: Session, transport: Transport = DIRECT) -> requests.Session:
    """An HTTP client for calls to this session's vendor; with mTLS, presenting our certificate."""
    http = requests.Session()
    http.trust_env = False  # never wander off to an environment proxy: the session's URLs (and ours) are the route
    http.headers.update({SESSION_HEADER: session.id, "User-Agent": "speeltuin-simulator"})
    if transport.proxy:  # the proxy records and judges the call (and removes the mark)
        http.proxies = {"http": transport.proxy}
        if transport.proxy_ca:  # https:// too: the proxy checks the vendor's certificate and presents ours
            http.proxies["https"] = transport.proxy
            http.verify = transport.proxy_ca
            return http
    tls = transport.tls
    if session.config.mtls and tls is not None:
        http.cert = (str(tls.cert), str(tls.key))
        http.verify = str(tls.ca)  # the vendor's server certificate must come from the test CA too
    return http


def require(session: Session, key: str) -> str:
    """A vendor URL of the session's config that this call needs."""
    value = getattr(session.config, key)
    if not value:
        raise OutboundError(f"session {session.id} has no {key}; set it when creating the session")
    return value


def fetch_token(http: requests.Session, token_url: str, form: dict[str, str], timeout: float) -> str:
    """POST a token request; the access token, or OutboundError saying what the AS answered."""
    try:
        response = http.post(token_url, data=form, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise OutboundError(f"token endpoint {token_url} unreachable: {exc}") from exc
    if response.status_code != 200:
        raise OutboundError(f"token endpoint answered {response.status_code}: {response.text[:300]}")
    try:
        token = response.json()["access_token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OutboundError("token response has no access_token") from exc
    if not isinstance(token, str) or not token:
        raise OutboundError("token response has an empty access_token")
    return token
