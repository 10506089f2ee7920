"""JSON from outside, read so that no input can crash the reader or what walks the result after it.

Python's json reads numbers and nesting without limits: a document nested a few thousand levels deep raises
RecursionError (not ValueError), and one a few hundred deep parses but breaks every recursive walk over it
afterwards. FHIR resources, JWT headers and the admin API's bodies are nowhere near MAX_DEPTH levels deep, so
anything deeper is refused as malformed, with a ValueError like any other malformed JSON.
"""
from __future__ import annotations

import json
from typing import Any, Callable

MAX_DEPTH = 100  # levels of objects and arrays; the deepest FHIR seen in practice is about 20


class JsonTooDeep(ValueError):
    """The document nests objects and arrays deeper than allowed."""


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH,
          object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """json.loads, refusing nesting deeper than `max_depth` with JsonTooDeep (a ValueError)."""
    try:
        value = json.loads(data, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested too deep (more than {max_depth} levels)") from None
    if isinstance(value, (dict, list)) and _brackets(data) > max_depth:
        check_depth(value, max_depth)
    return value


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """JsonTooDeep when objects and arrays in `value` nest deeper than `max_depth`. Iterative: no input is too
    deep for it."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise JsonTooDeep(f"JSON nested too deep (more than {max_depth} levels)")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _brackets(data: str | bytes | bytearray) -> int:
    """How many objects and arrays the text opens at most (a document with fewer cannot be too deep)."""
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")
