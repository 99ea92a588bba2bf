"""Typed option blocks for methods, filled from a flat dict of hyper-parameters.

A sweep names hyper-parameters in one flat namespace (``ipc``, ``beta``, ``nf_width``…).
Each component (objective, parameterization, distillation loop) declares the keys it reads
as a dataclass; :func:`take` picks them out, and the sweep validator rejects keys no
component reads.

Option dataclasses are the **one source of truth** for every setting: their field types say
what a value may be, and the sweep validator (``orchestrator/spec/sweep_file.py``) checks every value
against them with pydantic before anything runs. So declare them precisely:

* vocabularies as ``Literal[...]`` (``optimizer: Literal["sgd", "adam"]``);
* bounds with :mod:`annotated_types` (``Annotated[int, Ge(1)]``, ``Annotated[float, Gt(0)]``);
* names from a catalog kind with :class:`Named` (``Annotated[str, Named("network")]``) and
  values a function must accept with :class:`Checked`;
* cross-field rules in ``__post_init__`` (raise ``ValueError``).

Option dataclasses live in modules that import no torch (``*_options.py`` / ``options.py``
next to the implementation), so ``ddx validate`` reads them without loading PyTorch.
This module imports nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from annotated_types import Ge, Gt, Le, Lt

T = TypeVar("T")

#: common bounded types (``annotated_types`` constraints, enforced by the sweep validator)
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
Momentum = Annotated[float, Ge(0), Lt(1)]
#: the largest side (px) a dataset is loaded at or a student evaluated at: 4× the largest in DD
#: benchmarks (512 px). One CIFAR-10 test split at 100,000 px takes 1.2 EB: a larger value only
#: failed later, in a worker. (``ddx export`` decodes a set at any size that fits memory.)
MAX_RESOLUTION = 2048
Resolution = Annotated[int, Ge(1), Le(MAX_RESOLUTION)]


@dataclass(frozen=True)
class Checked:
    """``Annotated`` metadata: the value must pass ``check(value)``, which raises ``ValueError``
    with a message saying what is wrong (the sweep validator turns it into a one-line error)."""

    check: Callable[[Any], Any]


@dataclass(frozen=True)
class Named(Checked):
    """``Annotated`` metadata: the value is a registered name of catalog kind ``kind``
    (``network``, ``dataset``, ``objective``, ``parameterization``, ``prerequisite``)."""

    kind: str = ""


def named(kind: str) -> Named:
    """Metadata for ``Annotated[str, named("network")]``: a name :mod:`methods.catalog` knows."""

    def check(value: Any) -> Any:
        from methods.catalog import check_name

        return check_name(kind, value)

    return Named(check, kind)


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
