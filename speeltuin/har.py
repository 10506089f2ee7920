"""A session's recorded exchanges as an HTTP Archive (HAR 1.2), for the tools people already read traffic with.

Pure: exchanges in, HAR entries (dicts) and the document's JSON text out, a piece at a time (`har_pieces`), so a
session of tens of thousands of exchanges is written without holding it. What the store does not know stays
unknown the way HAR says: `headersSize` -1, `bodySize` -1, the optional timings -1, `httpVersion` "". Each entry
carries what speeltuin made of the exchange in the custom field `_speeltuin` (tag, direction, findings, with the
reason of a rule suppressed for the session); a failed exchange (no answer) has status 0 and the error in
`response._error`; a response body recorded as bytes (a PDF) is base64 text with `encoding` "base64".

The stored exchanges were redacted by the proxy when it recorded them; what may still hold a secret (credential
headers of older records, cookies) is redacted here with the proxy's own rule, handed in as a `Redaction`: the
kernel does not import the proxy.
"""
from __future__ import annotations

import base64
import json
import re
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from speeltuin.records import Exchange, stored_bytes

HAR_VERSION = "1.2"
CREATOR = "speeltuin"
FORM = "application/x-www-form-urlencoded"
# How the proxy recorded a body that is not text before it kept its bytes, and how it marks one it cut short.
_NOT_RECORDED = re.compile(r"\[(\d+) bytes of ([^\]]*)\]")
_TRUNCATED = "…[truncated]"
_COOKIE_PAIR = re.compile(r"(^|[;,]\s*)([^=;,\s]+)=([^;,]*)")  # Cookie: a=1; b=2 (several joined by ", ")
_NEXT_SET_COOKIE = re.compile(r",\s*(?=[^;,=\s]+=)")  # Set-Cookie values joined by ", " (not inside Expires)
_SIZE_UNKNOWN = -1


@dataclass(frozen=True)
class Redaction:
    """The project's redaction rule, from proxy/redaction.py: `headers` shortens the credential headers and every
    cookie's value (redact_headers)."""

    headers: Callable[[Mapping[str, str]], dict[str, str]]


def har_pieces(exchanges: Iterable[Exchange], *, version: str, redaction: Redaction,
               suppressions: Mapping[str, str] | None = None, comment: str = "",
               about: Mapping[str, Any] | None = None) -> Iterator[str]:
    """The HAR document of `exchanges` as JSON text, piece by piece (each entry made when it is reached); joined,
    the pieces are `json.dumps(document, indent=2, ensure_ascii=False)`. `version`: speeltuin's, for the creator;
    `suppressions`: rule -> reason for the session; `about`: the log's `_speeltuin` field (the session)."""
    log: dict[str, Any] = {"version": HAR_VERSION, "creator": {"name": CREATOR, "version": version}, "pages": []}
    if comment:
        log["comment"] = comment
    if about is not None:
        log["_speeltuin"] = dict(about)
    log["entries"] = []  # last: the entries are written in its place
    head, tail = json.dumps({"log": log}, indent=2, ensure_ascii=False).rsplit("[]", 1)
    yield head + "["
    separator = "\n"
    for ex in exchanges:
        entry = json.dumps(har_entry(ex, redaction, suppressions or {}), indent=2, ensure_ascii=False)
        yield separator + textwrap.indent(entry, " " * 6)
        separator = ",\n"
    yield ("]" if separator == "\n" else "\n    ]") + tail + "\n"


def har_entry(ex: Exchange, redaction: Redaction, suppressions: Mapping[str, str]) -> dict[str, Any]:
    """One exchange as a HAR entry."""
    request_headers = redacted_headers(ex.request_headers, redaction)
    response_headers = redacted_headers(ex.response_headers, redaction)
    timings, total = _timings(ex.duration_ms)
    return {
        "startedDateTime": datetime.fromtimestamp(ex.started_at, timezone.utc).isoformat(timespec="milliseconds"),
        "time": total,
        "request": _request(ex, request_headers),
        "response": _response(ex, response_headers),
        "cache": {},
        "timings": timings,
        "_speeltuin": {"id": ex.id, "source": ex.source, "tag": str(ex.tag), "direction": str(ex.direction),
                       "findings": [{**f.to_dict(), "suppressed": suppressions.get(f.rule)} for f in ex.findings]},
    }


def redacted_headers(headers: Mapping[str, str], redaction: Redaction) -> dict[str, str]:
    """The headers as stored, with what may still hold a secret redacted by the proxy's rule (credential headers
    and every cookie's value; it leaves a value it shortened before as it is)."""
    return redaction.headers(headers)


def _timings(duration_ms: float | None) -> tuple[dict[str, Any], float]:
    """The store keeps the whole round trip only; HAR wants send, wait and receive (never negative), summing to
    the entry's time. The round trip goes in `wait`; what was not measured is -1."""
    total = round(max(duration_ms, 0.0), 3) if duration_ms is not None else 0
    return {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": total, "receive": 0,
            "comment": "only the whole round trip was recorded; it is given as wait"
                       if duration_ms is not None else "no answer was recorded"}, total


def _request(ex: Exchange, headers: dict[str, str]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": ex.method,
        "url": ex.url.split("#", 1)[0],
        "httpVersion": "",  # not recorded
        "cookies": _request_cookies(headers),
        "headers": _pairs(headers.items()),
        "queryString": _pairs(parse_qsl(urlsplit(ex.url).query, keep_blank_values=True)),
        "headersSize": _SIZE_UNKNOWN,
        "bodySize": _body_size(headers, ex.request_body),
    }
    if ex.request_body:
        request["postData"] = _post_data(_header(headers, "Content-Type"), ex.request_body)
    return request


def _post_data(mime_type: str, body: str) -> dict[str, Any]:
    counted = _bytes_recorded(body)
    if counted is not None:  # HAR 1.2 posts text only
        return {"mimeType": mime_type, "text": "", "comment": f"{counted} bytes that are not text, left out"}
    posted: dict[str, Any] = {"mimeType": mime_type, "text": body}
    if mime_type.split(";")[0].strip().lower() == FORM:
        # Older records keep a form decoded, one parameter a line: given here as it was sent.
        older = "\n" in body
        pairs = ([(name, value) for name, _, value in (line.partition("=") for line in body.splitlines())]
                 if older else parse_qsl(body, keep_blank_values=True))
        posted["params"] = _pairs(pairs)
        posted["text"] = urlencode(pairs) if older else body
    if body.endswith(_TRUNCATED):
        posted["comment"] = "cut short when it was recorded"
    return posted


def _response(ex: Exchange, headers: dict[str, str]) -> dict[str, Any]:
    answered = ex.status is not None
    response: dict[str, Any] = {
        "status": ex.status if answered else 0,
        "statusText": _status_text(ex.status),
        "httpVersion": "",  # not recorded
        "cookies": _response_cookies(headers),
        "headers": _pairs(headers.items()),
        "content": _content(headers, ex.response_body) if answered else {"size": 0, "mimeType": ""},
        "redirectURL": _header(headers, "Location"),
        "headersSize": _SIZE_UNKNOWN,
        "bodySize": _body_size(headers, ex.response_body) if answered else _SIZE_UNKNOWN,
    }
    if ex.error is not None:
        response["_error"] = ex.error
    return response


def _content(headers: Mapping[str, str], body: str) -> dict[str, Any]:
    content: dict[str, Any] = {"size": _content_size(headers, body), "mimeType": _header(headers, "Content-Type")}
    data = stored_bytes(body)
    if data is not None:
        content.update(text=base64.b64encode(data).decode("ascii"), encoding="base64")
    elif _NOT_RECORDED.fullmatch(body):
        content["comment"] = f"not recorded: {body[1:-1]}"
    else:
        content["text"] = body
        if body.endswith(_TRUNCATED):
            content["comment"] = "cut short when it was recorded"
    return content


def _content_size(headers: Mapping[str, str], body: str) -> int:
    """The decoded body's length in bytes: Content-Length when the body was not encoded on the way, else the
    length of what was recorded."""
    length = _header(headers, "Content-Length")
    if length.isdigit() and not _header(headers, "Content-Encoding"):
        return int(length)
    counted = _bytes_recorded(body)
    return len(body.encode("utf-8")) if counted is None else counted


def _body_size(headers: Mapping[str, str], body: str) -> int:
    """The body's length on the wire: Content-Length, else known only for an empty body or one recorded as bytes
    (when it was not encoded on the way)."""
    length = _header(headers, "Content-Length")
    if length.isdigit():
        return int(length)
    if not body:
        return 0
    counted = _bytes_recorded(body)
    return counted if counted is not None and not _header(headers, "Content-Encoding") else _SIZE_UNKNOWN


def _bytes_recorded(body: str) -> int | None:
    """How many bytes a body that is not text has: kept whole (speeltuin.records.body_from_bytes), or only
    counted in older records; None for a text body."""
    data = stored_bytes(body)
    if data is not None:
        return len(data)
    counted = _NOT_RECORDED.fullmatch(body)
    return int(counted.group(1)) if counted else None


def _request_cookies(headers: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": m.group(2), "value": m.group(3).strip()}
            for m in _COOKIE_PAIR.finditer(_header(headers, "Cookie"))]


def _response_cookies(headers: Mapping[str, str]) -> list[dict[str, Any]]:
    cookies = []
    value = _header(headers, "Set-Cookie")
    for one in _NEXT_SET_COOKIE.split(value) if value else []:
        pair, *attributes = [part.strip() for part in one.split(";")]
        name, _, cookie_value = pair.partition("=")
        cookie: dict[str, Any] = {"name": name, "value": cookie_value}
        for attribute in attributes:
            key, _, given = attribute.partition("=")
            key = key.strip().lower()
            if key in ("path", "domain"):
                cookie[key] = given
            elif key == "expires" and (expires := _http_date(given)):
                cookie["expires"] = expires
            elif key in ("httponly", "secure"):
                cookie["httpOnly" if key == "httponly" else "secure"] = True
        cookies.append(cookie)
    return cookies


def _http_date(value: str) -> str | None:
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError):
        return None


def _status_text(status: int | None) -> str:
    try:
        return HTTPStatus(status).phrase if status else ""
    except ValueError:
        return ""


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


def _pairs(items: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in items]
