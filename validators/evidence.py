"""How a finding shows what it saw: short, so a message never carries a whole payload or a secret's full text."""
from __future__ import annotations


def show(value: object, limit: int = 60) -> str:
    """Evidence text for a seen value: its repr, shortened to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
