"""JSON values in messages and checks: their kind, a short repr, integer tests."""

from __future__ import annotations

from typing import Any


def is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def brief(value: Any, limit: int = 60) -> str:
    """repr() cut to `limit` characters: a message stays one short line whatever the file."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
