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
    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, dict[str, Any] | None]] = {}

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
        fetched = self._fetch(url)
        with self._lock:
            # a failure is cached too, briefly, so a dead URL cannot slow every token request
            self._cached[url] = (time.monotonic() + (CACHE_SECONDS if fetched else 10), fetched)
        return fetched

    def _fetch(self, url: str) -> dict[str, Any] | None:
        http = requests.Session()
        http.trust_env = False
        try:
            response = http.get(url, timeout=self._timeout, headers={"Accept": "application/json"}, stream=True)
            body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            if response.status_code != 200 or len(body) > MAX_JWKS_BYTES:
                return None
            data = safe_json.loads(body)
        except (requests.RequestException, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("keys"), list) else None
