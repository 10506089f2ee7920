"""Names what a flow is, from its method and path alone (no session knowledge needed)."""
from __future__ import annotations

import re

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_SESSION_PATH = re.compile(r"^/s/([a-z0-9][a-z0-9-]{2,63})/")

TAGS = ("token-request", "notification", "cancellation", "search", "read", "binary", "capability", "other")


def classify(method: str, path: str) -> str:
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    last = segments[-1] if segments else ""
    before = segments[-2] if len(segments) > 1 else ""
    method = method.upper()
    if method == "POST" and last == "token":
        return "token-request"
    if last == "Task" and method == "POST":
        return "notification"
    if last == "Task" and method == "PUT":
        return "cancellation"
    if method != "GET":
        return "other"
    if last == "metadata":
        return "capability"
    if before == "Binary":
        return "binary"
    if last == "$lastn" or _TYPE.match(last):
        return "search"
    if _TYPE.match(before):
        return "read"
    return "other"


def session_in_path(path: str) -> str | None:
    match = _SESSION_PATH.match(path)
    return match.group(1) if match else None


def search_target(path: str) -> tuple[str, bool] | None:
    """(resource type, is $lastn) of a search path."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if segments and segments[-1] == "$lastn" and len(segments) > 1:
        return segments[-2], True
    if segments and _TYPE.match(segments[-1]):
        return segments[-1], False
    return None
