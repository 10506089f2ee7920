"""Reading untrusted JSON without crashing: one helper for every module that looks into resources."""
from __future__ import annotations

from typing import Any


def dig(node: object, *keys: str) -> Any:
    """Follow object keys; None as soon as a step is missing or not an object."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
