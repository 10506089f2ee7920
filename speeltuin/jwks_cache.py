"""The vendor's public keys: registered with the session, or fetched from its JWKS URL (cached briefly)."""
from __future__ import annotations

import threading
import time
from typing import Any

import requests

from speeltuin.records import Session
from validators import safe_json

CACHE_SECONDS = 300
MAX_JWKS_BYTES = 256 * 1024


class JwksCache:
    def __init__(self, timeout: float = 10.0, verify: str | bool = True) -> None:
        """`verify`: the CA bundle an https:// JWKS URL's server must chain to (the test CA); True: the system's."""
        self._timeout = timeout
        self._verify = verify
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._problems: dict[str, str] = {}  # url -> why its last fetch gave no JWKS

    def keys_for(self, session: Session) -> dict[str, Any] | None:
        """The session's registered JWKS, else the one at its vendor_jwks_url; None when neither is usable."""
        return self.keys(session.config.vendor_jwks, session.config.vendor_jwks_url)

    def keys(self, registered: dict[str, Any] | None, url: str | None) -> dict[str, Any] | None:
        """The registered JWKS, else the one at `url`; None when neither is usable."""
        if registered is not None:
            return registered
        if not url:
            return None
        with self._lock:
            hit = self._cached.get(url)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        fetched, problem = self._fetch(url)
        with self._lock:
            if problem:
                self._problems[url] = problem
            else:
                self._problems.pop(url, None)
            # a failure is cached too, briefly, so a dead URL cannot slow every token request
            self._cached[url] = (time.monotonic() + (CACHE_SECONDS if fetched else 10), fetched)
        return fetched

    def problem(self, url: str | None) -> str | None:
        """Why the JWKS at `url` could not be used when last fetched; None when it could (or was never fetched)."""
        with self._lock:
            return self._problems.get(url) if url else None

    def _fetch(self, url: str) -> tuple[dict[str, Any] | None, str | None]:
        http = requests.Session()
        http.trust_env = False
        http.verify = self._verify
        try:
            response = http.get(url, timeout=self._timeout, headers={"Accept": "application/json"}, stream=True)
            body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            if response.status_code != 200:
                return None, f"it answered {response.status_code}"
            if len(body) > MAX_JWKS_BYTES:
                return None, f"it is larger than {MAX_JWKS_BYTES // 1024} kB"
            data = safe_json.loads(body)
        except requests.exceptions.SSLError as exc:
            return None, f"TLS failed ({_reason(exc)}): its server certificate must chain to the CA the simulator " \
                         "trusts for vendors (the test CA)"
        except requests.RequestException as exc:
            return None, f"it could not be reached ({_reason(exc)})"
        except ValueError:
            return None, "it is not JSON"
        if isinstance(data, dict) and isinstance(data.get("keys"), list):
            return data, None
        return None, 'it is not a JWKS ({"keys": [...]})'


def _reason(exc: Exception) -> str:
    """The innermost reason of a requests error, short."""
    while exc.__context__ is not None and not str(exc):
        exc = exc.__context__  # type: ignore[assignment]
    text = str(exc.args[0] if exc.args else exc)
    return text[-200:]
