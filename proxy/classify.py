"""Names what a flow is, from its method and path alone (no session knowledge needed)."""
from __future__ import annotations

import re

from speeltuin.records import Tag
from validators.query import LASTN

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_SESSION_PATH = re.compile(r"^/s/([a-z0-9][a-z0-9-]{2,63})/")


def classify(method: str, path: str) -> Tag:
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    last = segments[-1] if segments else ""
    before = segments[-2] if len(segments) > 1 else ""
    method = method.upper()
    if method == "POST" and last == "token":
        return Tag.TOKEN_REQUEST
    if last == "Task" and method == "POST":
        return Tag.NOTIFICATION
    if last == "Task" and method == "PUT":
        return Tag.CANCELLATION
    if method != "GET":
        return Tag.OTHER
    if last == "metadata":
        return Tag.CAPABILITY
    if before == "Binary":
        return Tag.BINARY
    if last == LASTN or _TYPE.match(last):
        return Tag.SEARCH
    if _TYPE.match(before):
        return Tag.READ
    return Tag.OTHER


def session_in_path(path: str) -> str | None:
    match = _SESSION_PATH.match(path)
    return match.group(1) if match else None
