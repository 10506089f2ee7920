"""One reader of FHIR search requests: a relative query (`Type?params`, `Type/$lastn?params`, as a Task offers
it) or the path and query of a URL (as a client sent it).

Percent-escapes are decoded; `+` stays `+` (FHIR URLs are not form-encoded: dateTimes carry `+01:00`).
`parse_relative_query` is strict (the simulator's FHIR server refuses what it cannot read); the other readers
are lenient and never raise (validators, proxy and scenarios judge what they are given).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

LASTN = "$lastn"
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")
_SEARCH_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


class QueryError(ValueError):
    """A query that cannot be read; the message names the offending part."""


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    lastn: bool  # Observation/$lastn
    params: tuple[tuple[str, str], ...]  # decoded (name, value) pairs, in request order


def decode_component(text: str, what: str = "query", *, strict: bool = True) -> str:
    """Percent-decode one query component; strictly, a broken escape such as ``%hl`` is a QueryError."""
    if not strict:
        return unquote(text, errors="replace")
    bad = _BROKEN_ESCAPE.search(text)
    if bad:
        raise QueryError(f"broken percent-encoding {text[bad.start():bad.start() + 3]!r} in {what}")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise QueryError(f"percent-encoding in {what} is not valid UTF-8: {text!r}") from None


def parse_params(query_string: str, *, strict: bool = True) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs; strictly, a parameter without `=` is a QueryError, else its value is ""."""
    params: list[tuple[str, str]] = []
    for pair in query_string.split("&"):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        name = decode_component(name, "parameter name", strict=strict)
        if not eq and strict:
            raise QueryError(f"parameter {name!r} has no value")
        params.append((name, decode_component(value, f"parameter {name!r}", strict=strict)))
    return params


def parse_relative_query(query: str) -> SearchQuery:
    """A relative query (possibly percent-encoded) read strictly: `Type` or `Type/$lastn`, then parameters."""
    path, _, raw_params = query.strip().lstrip("/").partition("?")
    segments = path.split("/")
    resource_type = segments[0]
    lastn = False
    if len(segments) == 2 and decode_component(segments[1], "path") == LASTN:
        lastn = True
    elif len(segments) != 1:
        raise QueryError(f"unsupported query path {path!r}: expected 'Type' or 'Type/$lastn'")
    if not _TYPE_NAME.match(resource_type):
        raise QueryError(f"invalid resource type {resource_type!r} in query")
    return SearchQuery(resource_type, lastn, tuple(parse_params(raw_params)))


def read_relative_query(query: str) -> SearchQuery:
    """A relative query read leniently (never raises): type, whether it is $lastn, decoded parameters."""
    path, _, raw_params = query.partition("?")
    resource_type, _, operation = path.strip("/").partition("/")
    return SearchQuery(resource_type, operation == LASTN, tuple(parse_params(raw_params, strict=False)))


def search_target(path: str) -> tuple[str, str | None] | None:
    """(resource type, `$operation` or None) of a search path `[base]/Type` or `[base]/Type/$operation`."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    operation = segments.pop() if len(segments) > 1 and segments[-1].startswith("$") else None
    if segments and _SEARCH_TYPE.match(segments[-1]):
        return segments[-1], operation
    return None


def read_search_url(url: str) -> SearchQuery | None:
    """The search a URL (absolute or relative) asks, read leniently; None when its path names no resource type."""
    parts = urlsplit(url)
    target = search_target(parts.path)
    if target is None or target[1] not in (None, LASTN):  # other operations are not searches
        return None
    return SearchQuery(target[0], target[1] == LASTN, tuple(parse_params(parts.query, strict=False)))


def same_request(url: str, relative: str) -> bool:
    """Whether a recorded URL asks what a Task's relative query or read asks (encoding-insensitive)."""
    recorded, wanted = urlsplit(url), urlsplit(relative)
    return (unquote(recorded.path).endswith("/" + unquote(wanted.path).strip("/"))
            and sorted(parse_params(recorded.query, strict=False))
            == sorted(parse_params(wanted.query, strict=False)))
