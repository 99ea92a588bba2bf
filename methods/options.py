"""Typed option blocks for methods, filled from a flat dict of hyper-parameters.

A sweep names hyper-parameters in one flat namespace (``ipc``, ``beta``, ``nf_width``…).
Each component (objective, parameterization, distillation loop) declares the keys it reads
as a dataclass; :func:`take` picks them out, and :func:`known_keys` lets the sweep validator
reject keys no component reads.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def take(cls: type[T], values: dict[str, Any]) -> T:
    """Instantiate dataclass ``cls`` from the entries of ``values`` it declares, coercing numbers."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in values:
            continue
        v = values[f.name]
        hint = hints.get(f.name)
        if hint is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif hint is int and isinstance(v, float) and v.is_integer():
            v = int(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def check_types(cls: type, values: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, problem) for every entry of ``values`` whose type does not fit ``cls``'s field."""
    hints = typing.get_type_hints(cls)
    problems = []
    for name, v in values.items():
        hint = hints.get(name)
        if hint is None:
            continue
        ok = _fits(hint, v)
        if not ok:
            problems.append((name, f"expected {_hint_name(hint)}, got {type(v).__name__} {v!r}"))
    return problems


def _fits(hint: Any, v: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_fits(h, v) for h in typing.get_args(hint))
    if hint is type(None):
        return v is None
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if hint is int:
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if hint is bool:
        return isinstance(v, bool)
    if hint is str:
        return isinstance(v, str)
    if origin is tuple:
        return isinstance(v, (list, tuple))
    return True


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)).replace("typing.", "")
