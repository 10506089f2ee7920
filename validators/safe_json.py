"""JSON from outside, read so that no input can crash the reader or what walks the result after it.

Python's json reads numbers and nesting without limits: a document nested a few thousand levels deep raises
RecursionError (not ValueError), and one a few hundred deep parses but breaks every recursive walk over it
afterwards. FHIR resources, JWT headers and the admin API's bodies are nowhere near MAX_DEPTH levels deep, so
anything deeper is refused as malformed, with a ValueError like any other malformed JSON.

It also reads `"\\ud800"` (an escaped half of a UTF-16 surrogate pair, or its UTF-8-like bytes) into a str that no
UTF-8 writer can write: whoever answers, stores or shows it afterwards crashes. No UTF-8 text can hold one (I-JSON,
RFC 7493 §2.1), so a document with a lone surrogate is refused as malformed too (JsonLoneSurrogate).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

MAX_DEPTH = 100  # levels of objects and arrays; the deepest FHIR seen in practice is about 20


class JsonTooDeep(ValueError):
    """The document nests objects and arrays deeper than allowed."""


class JsonLoneSurrogate(ValueError):
    """A string in the document holds half a UTF-16 surrogate pair, which no UTF-8 text can carry."""


# What a lone surrogate can come from: an escape \ud800-\udfff (a valid pair is read as one character), a raw one
# in a str, and in bytes its UTF-8-like encoding (json reads bytes with surrogatepass) or UTF-16/32 text.
_SURROGATE_TEXT = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH,
          object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """json.loads, refusing nesting deeper than `max_depth` with JsonTooDeep and a string holding a lone surrogate
    with JsonLoneSurrogate (both ValueErrors)."""
    try:
        value = json.loads(data, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested too deep (more than {max_depth} levels)") from None
    check_decoded(data, value, max_depth)
    return value


def check_decoded(data: str | bytes | bytearray, value: Any, max_depth: int = MAX_DEPTH) -> None:
    """The checks `loads` makes after json has read `data` into `value`, for readers with hooks of their own:
    JsonTooDeep or JsonLoneSurrogate (ValueErrors). Cheap when the text cannot hold either."""
    if isinstance(value, (dict, list)) and might_be_deep(data, max_depth):
        check_depth(value, max_depth)
    if _might_hold_surrogates(data):
        check_surrogates(value)


def check_surrogates(value: Any) -> None:
    """JsonLoneSurrogate when a string (a key or a value) in `value` holds a lone surrogate. Iterative."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise JsonLoneSurrogate("JSON string holds a lone UTF-16 surrogate (such as \\ud800), which no UTF-8 "
                                        "text can carry")
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _might_hold_surrogates(data: str | bytes | bytearray) -> bool:
    if isinstance(data, str):
        return _SURROGATE_TEXT.search(data) is not None
    # json reads bytes that start with a NUL or a UTF-16/32 byte order mark as UTF-16/32: look at those always
    return _SURROGATE_BYTES.search(data) is not None or b"\x00" in data[:4] or data[:2] in (b"\xff\xfe", b"\xfe\xff")


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


def might_be_deep(data: str | bytes | bytearray, max_depth: int = MAX_DEPTH) -> bool:
    """False when the text opens too few objects and arrays to nest deeper than `max_depth` (cheap: counted in C);
    True means check_depth must look."""
    if isinstance(data, str):
        return data.count("{") + data.count("[") > max_depth
    return data.count(b"{") + data.count(b"[") > max_depth
