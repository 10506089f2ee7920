"""Keeps secrets out of recorded exchanges, in bodies as they were received: access tokens shortened and JWT
signatures dropped wherever they appear, whatever content type the body claims (a token request sent as text/plain,
a token response in XML), and nothing else changed.
"""
from __future__ import annotations

import re
from typing import Mapping

from speeltuin.records import body_from_bytes

MAX_STORED_BODY = 256 * 1024  # characters of a text body
MAX_STORED_BYTES = 4 * 1024 * 1024  # bytes of a body that is not text (a referral letter's PDF)
SECRET_HEADERS = ("authorization", "proxy-authorization", "x-admin-key", "x-session-key", "cookie", "set-cookie")
_SECRET_KEYS = r"(?:access_token|refresh_token|id_token|access_key)"  # access_key: a session's own key

_JWT = re.compile(r"\b(eyJ[A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)")
_JSON_SECRET = re.compile(r'("' + _SECRET_KEYS + r'"\s*:\s*")((?:[^"\\]|\\.)*)(")')
_FORM_SECRET = re.compile(r"((?:^|[&\s])" + _SECRET_KEYS + r"=)([^&\s]*)")
_XML_SECRET = re.compile(r"(<(?:[\w.-]+:)?" + _SECRET_KEYS + r"\b[^>]*?(?:\bvalue\s*=\s*\"|>))([^\"<]*)")
_NEXT_SET_COOKIE = re.compile(r",\s*(?=[^;,=\s]+=)")  # Set-Cookie values joined by ", " (not the one in Expires)
_BEARER = re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/-]{7,}=*)")


def shorten_secret(value: str) -> str:
    """The first characters of a secret, enough to tell two apart; a value shortened already stays as it is."""
    if value.endswith("[redacted]"):
        return value
    return f"{value[:6]}…[redacted]" if len(value) > 6 else "[redacted]"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in ("cookie", "set-cookie"):
            value = redact_cookies(value, attributes=lowered == "set-cookie")
        elif lowered in SECRET_HEADERS:
            scheme, _, secret = value.partition(" ")
            value = f"{scheme} {shorten_secret(secret)}" if secret else shorten_secret(value)
        out[name] = value
    return out


def redact_cookies(value: str, *, attributes: bool) -> str:
    """Every cookie's value shortened, its name kept. Of a Set-Cookie (`attributes`; several may be joined by
    ", ") only the first pair of each is a cookie; the rest (Path, Expires, HttpOnly, ...) is kept as it is."""
    if attributes:
        return ", ".join(_redact_pairs(one, first_only=True) for one in _NEXT_SET_COOKIE.split(value))
    return _redact_pairs(value, first_only=False)


def _redact_pairs(value: str, *, first_only: bool) -> str:
    shown = []
    for n, pair in enumerate(value.split(";")):
        key, sep, secret = pair.partition("=")
        shown.append(f"{key}={shorten_secret(secret.strip())}" if sep and (n == 0 or not first_only) else pair)
    return ";".join(shown)


def redact_body(body: bytes) -> str:
    """The body as received, fit to store: text with its secrets redacted in place (long ones cut); a body that is
    not UTF-8 text (a PDF) kept as its bytes (speeltuin.records.body_from_bytes), up to MAX_STORED_BYTES."""
    if not body:
        return ""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body_from_bytes(body[:MAX_STORED_BYTES])
    return _cap(redact_text(text))


def redact_text(text: str) -> str:
    """Every secret in a text, whatever its format: JWTs (signature dropped), token values of JSON, form and XML
    bodies, and bearer tokens (shortened)."""
    text = _JWT.sub(lambda m: f"{m.group(1)}.{m.group(2)}.[signature redacted]", text)
    text = _JSON_SECRET.sub(lambda m: m.group(1) + shorten_secret(m.group(2)) + m.group(3), text)
    text = _FORM_SECRET.sub(lambda m: m.group(1) + shorten_secret(m.group(2)), text)
    text = _XML_SECRET.sub(lambda m: m.group(1) + shorten_secret(m.group(2)), text)
    return _BEARER.sub(lambda m: m.group(1) + shorten_secret(m.group(2)), text)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_STORED_BODY else text[:MAX_STORED_BODY] + "\n…[truncated]"
