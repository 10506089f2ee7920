"""Keeps secrets out of recorded exchanges: access tokens shortened, JWT signatures dropped."""
from __future__ import annotations

import json
import re
from typing import Mapping
from urllib.parse import parse_qsl

MAX_STORED_BODY = 256 * 1024
_TOKEN_KEYS = {"access_token", "refresh_token", "id_token", "access_key"}  # access_key: a session's own key
_ASSERTION_KEYS = {"assertion", "client_assertion"}


def shorten_secret(value: str) -> str:
    return f"{value[:6]}…[redacted]" if len(value) > 6 else "[redacted]"


def redact_jwt(value: str) -> str:
    """Header and claims stay readable as evidence; the signature is not stored."""
    parts = value.split(".")
    return f"{parts[0]}.{parts[1]}.[signature redacted]" if len(parts) == 3 else shorten_secret(value)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if name.lower() in ("authorization", "proxy-authorization", "x-admin-key", "x-session-key"):
            scheme, _, secret = value.partition(" ")
            value = f"{scheme} {shorten_secret(secret)}" if secret else shorten_secret(value)
        out[name] = value
    return out


def redact_body(body: bytes, content_type: str) -> str:
    """A text form of the body fit to store and show."""
    mimetype = content_type.split(";")[0].strip().lower()
    if not body:
        return ""
    if mimetype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        # Decoded, one parameter a line: the report is read by people comparing it with the spec.
        return "\n".join(f"{k}={redact_jwt(v) if k in _ASSERTION_KEYS else v}" for k, v in pairs)
    if "json" in mimetype:
        try:
            data = json.loads(body)
        except ValueError:
            return _cap(body.decode("utf-8", "replace"))
        if isinstance(data, dict):
            data = {k: shorten_secret(v) if k in _TOKEN_KEYS and isinstance(v, str) else v for k, v in data.items()}
        return _cap(json.dumps(data, indent=2, ensure_ascii=False))
    if mimetype.startswith("text/") or mimetype.endswith("xml"):
        return _cap(body.decode("utf-8", "replace"))
    return f"[{len(body)} bytes of {mimetype or 'unknown type'}]"


def _cap(text: str) -> str:
    return text if len(text) <= MAX_STORED_BODY else text[:MAX_STORED_BODY] + "\n…[truncated]"


_BEARER = re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/-]{7,})")


def redact_text(text: str) -> str:
    """For free text such as error messages that may quote a header."""
    return _BEARER.sub(lambda m: m.group(1) + shorten_secret(m.group(2)), text)
