"""Pydantic's validation errors as one line each: what is wrong, at which key path, how to fix it."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic_core import ErrorDetails

_BOUNDS = {
    "greater_than_equal": ("≥", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("≤", "le"),
    "less_than": ("<", "lt"),
}
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "dataclass_type": "a mapping of keys",
}


def show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _what(value: Any) -> str:
    """``int 1``, ``str 'a'``, ``null``: a value as the file gave it, with its type."""
    return f"{type(value).__name__} {show(value)}" if value is not None else "null"


def _got(value: Any) -> str:
    return f"got {_what(value)}"


def key_path(*parts: Any) -> str:
    """``("search", "ipc", "grid", 1)`` → ``search.ipc.grid[1]``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def did_you_mean(value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1) if isinstance(value, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_error(e: ErrorDetails, model: type | None = None) -> tuple[list[Any], str]:
    """(key path parts, message) of one pydantic error; ``model`` lists known keys for unknown ones."""
    loc = [p for p in e["loc"] if p != "[key]"]
    kind = e["type"]
    value = e.get("input")
    msg = str(e["msg"])
    ctx = e.get("ctx") or {}
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    if "[key]" in e["loc"]:  # a mapping's key failed: a name check says why, anything else is the key's type
        if kind in ("value_error", "assertion_error"):
            return loc, msg  # the path ends with the key (a string: a name that is not known)
        # the key is not a string (``1:``, ``null:``, ``true:``): the path is the mapping's, whose
        # last part would otherwise read like a list index (``arch_epochs[1]``)
        return loc[:-1], f"every key here must be a name (a string); got {_what(value)} as a key"
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc[:-1]) if model is not None else []
        hint = did_you_mean(loc[-1], fields)
        known = f"; known: {', '.join(fields)}" if fields else ""
        return loc, f"unknown key{hint}{known}"
    if kind == "missing":
        return loc, "required"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return loc, f"must be {ctx.get('expected')}{did_you_mean(value, options)} ({_got(value)})"
    if kind in _BOUNDS:
        op, bound = _BOUNDS[kind]
        return loc, f"must be {op} {ctx.get(bound)} (got {show(value)})"
    if kind == "finite_number":
        return loc, f"must be a finite number (got {show(value)})"
    if kind in ("too_short", "too_long"):
        which = "at least" if kind == "too_short" else "at most"
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        return loc, f"needs {which} {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    if kind == "string_pattern_mismatch":
        return loc, f"must match the pattern {ctx.get('pattern')} (letters, digits, _ . -; got {show(value)})"
    if kind in _EXPECTED:
        return loc, f"expected {_EXPECTED[kind]} ({_got(value)})"
    return loc, msg if kind in ("value_error", "assertion_error") else f"{msg} ({_got(value)})"


def _fields_at(model: Any, loc: list[Any]) -> list[str]:
    """Field names of the model found at ``loc`` (dict keys and list indices are stepped over)."""
    current: Any = model
    skip_key = False
    for part in loc:
        if skip_key or isinstance(part, int):
            skip_key = False
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            current = ann
            continue
        inner = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and hasattr(a, "model_fields")]
        if not inner:
            return []
        current, skip_key = inner[0], getattr(ann, "__origin__", None) is dict  # dict[str, Model]: skip the key
    return sorted(getattr(current, "model_fields", {}).keys())


__all__ = ["describe_error", "did_you_mean", "key_path", "show"]
