"""The vocabulary of option dataclasses: the one source of truth for every setting.

Every component declares the settings it reads as a dataclass (its ``Options``). A sweep file's
blocks and flat ``method:``/``search:`` keys are validated against those dataclasses — once,
strictly, by ``ddx validate`` (:mod:`orchestrator.spec.schema`) — and the resulting *instances*
are what every process receives: nothing downstream re-reads a dict of hyper-parameters. So
declare them precisely:

* vocabularies as ``Literal[...]`` (``optimizer: Literal["sgd", "adam"]``);
* bounds with :mod:`annotated_types` (``Annotated[int, Ge(1)]``, ``Annotated[float, Gt(0)]``);
* names of registered components with :func:`named` (``Annotated[str, named("network")]``) and
  values a function must accept with :class:`Checked`;
* rules between fields of one dataclass in ``__post_init__`` (raise ``ValueError``);
* rules between a dataclass and the rest of the trial (another block, the dataset) in a
  ``check_trial(self, trial)`` method (:class:`~methods.distill.trial.TrialConfig`), raising
  :class:`OptionError` with the sweep key to blame.

Option modules import no torch, so ``ddx validate`` reads them without loading PyTorch; this
module imports only the standard library and ``annotated_types``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, Lt

from methods.records import OptionValues

#: common bounded types (``annotated_types`` constraints, enforced by the sweep validator)
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
Momentum = Annotated[float, Ge(0), Lt(1)]
Fraction = Annotated[float, Ge(0), Le(1)]
#: the largest side (px) a dataset is loaded at or a student evaluated at: 4× the largest in DD
#: benchmarks (512 px). One CIFAR-10 test split at 100,000 px takes 1.2 EB: a larger value only
#: failed later, in a worker. (``ddx export`` decodes a set at any size that fits memory.)
MAX_RESOLUTION = 2048
Resolution = Annotated[int, Ge(1), Le(MAX_RESOLUTION)]


class OptionError(ValueError):
    """A rule between options failed; ``key`` is the sweep key path to blame (``experts.keep_epochs``),
    None for the first key of the options that raised it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Checked:
    """``Annotated`` metadata: the value must pass ``check(value)``, which raises ``ValueError``
    with a message saying what is wrong (the sweep validator turns it into a one-line error)."""

    check: Callable[[Any], Any]


@dataclass(frozen=True)
class Named(Checked):
    """``Annotated`` metadata: the value is the name of a registered component of ``kind``
    (``network``, ``dataset``, ``objective``, ``parameterization``, ``prerequisite``, ``preset``)."""

    kind: str = ""


def named(kind: str) -> Named:
    """Metadata for ``Annotated[str, named("network")]``: a name some plugin registers (:mod:`methods.registry`)."""

    def check(value: Any) -> Any:
        from methods.registry import registry  # the registry imports no option module: no circle

        return registry(kind).check(value)

    return Named(check, kind)


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def option_values(options: Any) -> OptionValues:
    """An options instance's fields as plain values (its own fields only; nested dataclasses as dicts)."""
    return dataclasses.asdict(options)


__all__ = [
    "MAX_RESOLUTION",
    "Checked",
    "Fraction",
    "Momentum",
    "Named",
    "NonNegativeFloat",
    "NonNegativeInt",
    "OptionError",
    "PositiveFloat",
    "PositiveInt",
    "Resolution",
    "field_names",
    "named",
    "option_values",
]
