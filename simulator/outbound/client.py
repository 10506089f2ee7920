"""HTTP client for the simulator's own calls to the vendor (notify, token, pull).

Over TLS the vendor's server certificate must chain to the CA the simulator trusts for vendors (`serve --vendor-ca`,
else the test CA of `--tls-ca`, else the system's CAs), and, when that is a test CA, carry the session's vendor URA
(SPEC §5.1): the connection is checked before anything is sent on it, so no BSN and no authorization base reach a
server that is not the vendor's. A TLS failure names the setting that decides.
"""
from __future__ import annotations

import html
import re
import ssl
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

from speeltuin.records import SESSION_HEADER, Session, TlsFiles
from validators.rules.certificates import load_certificate, ura_mismatch


@dataclass(frozen=True)
class Transport:
    """How the simulator reaches vendors: its TLS files (a client certificate of the test CA for mTLS sessions) and
    the validating proxy its calls to http:// vendors go through (the service), if any."""

    tls: TlsFiles | None = None
    proxy: str | None = None
    proxy_ca: str | None = None  # the proxy's own CA (PEM): it speaks TLS to us for https:// vendors, and verifies them
    vendor_ca: str | None = None  # what vendors' server certificates must chain to (default: tls.ca)

    @property
    def trust(self) -> str | None:
        """The CA bundle vendors' server certificates are checked against; None: the system's CAs."""
        return self.vendor_ca or (str(self.tls.ca) if self.tls else None)

    @property
    def fetch_trust(self) -> str | None:
        """What a vendor's server met directly (not through the proxy) must chain to: the vendors' CA, else the
        bundle the proxy is trusted with (the service writes the test CA into it too)."""
        return self.trust or self.proxy_ca

    @property
    def trust_setting(self) -> str:
        """Where that trust comes from, for messages."""
        if self.vendor_ca:
            return f"--vendor-ca {self.vendor_ca}"
        return f"--tls-ca {self.tls.ca}" if self.tls else "the system's CAs (give the test CA with --vendor-ca)"


DIRECT = Transport()


class OutboundError(Exception):
    """The vendor could not be reached or answered something unusable; the message says which."""


def client_for(session: Session, transport: Transport = DIRECT) -> requests.Session:
    """An HTTP client for calls to this session's vendor; with mTLS, presenting our certificate."""
    http = requests.Session()
    http.trust_env = False  # never wander off to an environment proxy: the session's URLs (and ours) are the route
    http.headers.update({SESSION_HEADER: session.id, "User-Agent": "speeltuin-simulator"})
    http.hooks["response"].append(_unreached_through_proxy)
    if transport.proxy:  # the proxy records and judges the call (and removes the mark)
        http.proxies = {"http": transport.proxy}
        if transport.proxy_ca:  # https:// too: the proxy checks the vendor's certificate and presents ours
            http.proxies["https"] = transport.proxy
            http.verify = transport.proxy_ca
            return http
    tls = transport.tls
    if session.config.mtls and tls is not None:
        http.cert = (str(tls.cert), str(tls.key))
    if transport.trust:  # a test CA: the server certificate must chain to it and name the session's vendor
        http.verify = transport.trust
        http.mount("https://", VendorCheck(session.config.vendor_ura, transport.trust_setting))
    return http


def _unreached_through_proxy(response: requests.Response, *_args: object, **_kwargs: object) -> None:
    """The validating proxy's own error page (mitmproxy's 502 when it cannot connect to the vendor behind it, its
    504 when the vendor does not answer) is no answer of the vendor's: raised as the connection error it stands
    for, so a delivery says "no answer" and why, as it does without a proxy between."""
    if response.status_code in (502, 504) and response.headers.get("Server", "").startswith("mitmproxy"):
        reason = re.search(r"<p>(.*?)</p>", response.text, re.S)  # the page's one paragraph says why
        why = html.unescape(reason.group(1)).strip() if reason else said_by(response)
        raise requests.ConnectionError(f"the validating proxy could not reach the system behind {response.url} "
                                       f"({why})", response=response)


def server_certificate_problem(der: bytes | None, vendor_ura: str) -> str | None:
    """Why a server certificate is not the session's vendor's (SPEC §5.1: the URA in the UZI server certificate);
    None when it is."""
    cert = load_certificate(der) if der else None
    if cert is None:
        return "the server presented no certificate"
    mismatch = ura_mismatch(cert, vendor_ura)
    if mismatch:
        return f"the server's certificate {mismatch}, not the session's vendor {vendor_ura}: nothing was sent to it"
    return None


class VendorCheck(HTTPAdapter):
    """Checks each TLS connection to the vendor right after the handshake, before a request is written on it."""

    def __init__(self, vendor_ura: str, trust_setting: str) -> None:
        self.vendor_ura, self.trust_setting = vendor_ura, trust_setting
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        vendor_ura, trust_setting = self.vendor_ura, self.trust_setting

        class Connection(HTTPSConnection):
            def connect(self) -> None:
                try:
                    super().connect()
                except ssl.SSLError as exc:
                    raise ssl.SSLError(f"{exc} (vendors' server certificates are checked against {trust_setting})"
                                       ) from exc
                problem = server_certificate_problem(self.sock.getpeercert(binary_form=True), vendor_ura)
                if problem:
                    self.close()
                    raise ssl.SSLError(problem)

        class Pool(HTTPSConnectionPool):
            ConnectionCls = Connection

        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme, "https": Pool}


def require(session: Session, key: str) -> str:
    """A vendor URL of the session's config that this call needs."""
    value = getattr(session.config, key)
    if not value:
        raise OutboundError(f"session {session.id} has no {key}; set it when creating the session")
    return value


def said_by(response: requests.Response, limit: int = 300) -> str:
    """What an error answer says, for a person: the text of an HTML page (a proxy's or gateway's 502 page) without
    its markup, anything else as it came; at most `limit` characters."""
    text = response.text
    looks_like_a_page = text.lstrip()[:9].lower().startswith(("<html", "<!doctype"))
    if "html" in response.headers.get("Content-Type", "") or looks_like_a_page:
        text = html.unescape(re.sub(r"<(script|style)\b.*?</\1>|<[^>]*>", " ", text, flags=re.S | re.I))
        text = " ".join(text.split())
    return text[:limit]


def fetch_token(http: requests.Session, token_url: str, form: dict[str, str], timeout: float) -> str:
    """POST a token request; the access token, or OutboundError saying what the AS answered."""
    try:
        response = http.post(token_url, data=form, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise OutboundError(f"token endpoint {token_url} unreachable: {exc}") from exc
    if response.status_code != 200:
        raise OutboundError(f"token endpoint answered {response.status_code}: {said_by(response)}")
    try:
        token = response.json()["access_token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OutboundError("token response has no access_token") from exc
    if not isinstance(token, str) or not token:
        raise OutboundError("token response has an empty access_token")
    return token
