"""One trial's configuration, typed end to end (torch-free).

A sweep names its hyper-parameters in one flat namespace (``ipc``, ``lr_images``, ``beta``,
``nf_width``…): every key belongs to the option dataclass of the component that reads it —
:class:`TrialOptions` (which components, the budget), the loop's
:class:`~methods.distill.options.DistillSettings`, the objective's and the parameterization's
``options`` (their registry entries'). :func:`option_classes` says which classes a trial with
given components reads, :func:`split_values` hands each class its keys.

A :class:`TrialConfig` is the result: one instance of each of those classes, the options of every
prerequisite the objective requires, and the distillation seed. It is built once (the sweep
validator builds it strictly, :mod:`orchestrator.spec.trials`; :meth:`TrialConfig.build` builds
one in code), the trial key hashes :meth:`TrialConfig.identity`, and it is what the distillation
workers receive — no dict of hyper-parameters travels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from methods.datasets.options import DatasetOptions
from methods.distill.options import DistillSettings
from methods.options import OptionError, PositiveInt, field_names, named
from methods.records import OptionValues
from methods.registry import OBJECTIVES, PARAMETERIZATIONS, PREREQUISITES


@dataclass(frozen=True)
class TrialOptions:
    """``objective`` and ``parameterization`` name the components; ``ipc`` is the storage budget in
    real images per class."""

    objective: Annotated[str, named("objective")]
    ipc: PositiveInt
    parameterization: Annotated[str, named("parameterization")] = "pixels"


#: the roles of a trial's option classes, in the order their keys are listed
ROLES = ("trial", "loop", "objective", "parameterization")


def option_classes(objective: str, parameterization: str) -> dict[str, type]:
    """Role → the option dataclass a trial with these components reads (each key belongs to one or more)."""
    return {
        "trial": TrialOptions,
        "loop": DistillSettings,
        "objective": OBJECTIVES.get(objective).options,
        "parameterization": PARAMETERIZATIONS.get(parameterization).options,
    }


def owners(objectives: list[str], parameterizations: list[str]) -> dict[str, list[type]]:
    """Flat key → the option classes (of any of these components) that read it."""
    out: dict[str, list[type]] = {}
    classes = [TrialOptions, DistillSettings]
    classes += [OBJECTIVES.get(o).options for o in objectives]
    classes += [PARAMETERIZATIONS.get(p).options for p in parameterizations]
    for cls in dict.fromkeys(classes):
        for key in field_names(cls):
            out.setdefault(key, []).append(cls)
    return out


def split_values(values: Mapping[str, object], classes: Mapping[str, type]) -> dict[str, dict[str, object]]:
    """Role → the entries of the flat ``values`` its class declares (a key may feed several classes)."""
    return {role: {k: v for k, v in values.items() if k in field_names(cls)} for role, cls in classes.items()}


@dataclass(frozen=True)
class TrialConfig:
    """Everything a trial's distillation reads, as typed option objects.

    ``prerequisites``: ``(name, options)`` of every prerequisite the objective requires, in its
    entry's order. ``seed``: the distillation's seed (the sweep's seed plus the trial's repeat).
    """

    trial: TrialOptions
    loop: DistillSettings
    objective: Any
    parameterization: Any
    dataset: DatasetOptions
    prerequisites: tuple[tuple[str, Any], ...] = ()
    seed: int = 0

    @property
    def objective_name(self) -> str:
        return self.trial.objective

    @property
    def parameterization_name(self) -> str:
        return self.trial.parameterization

    @property
    def ipc(self) -> int:
        return self.trial.ipc

    def prerequisite(self, name: str) -> Any:
        """The options of prerequisite ``name`` (one the objective requires)."""
        for n, options in self.prerequisites:
            if n == name:
                return options
        raise KeyError(f"{self.objective_name} requires no prerequisite {name!r}")

    def options(self) -> dict[str, Any]:
        """Role → options instance (:data:`ROLES`)."""
        return {role: getattr(self, role) for role in ROLES}

    def columns(self) -> dict[str, object]:
        """The flat hyper-parameters as result-row columns: every field of every option object,
        under its sweep key (defaults included: a row records what ran)."""
        out: dict[str, object] = {}
        for options in self.options().values():
            out.update(_plain(dataclasses.asdict(options)))
        return out

    def identity(self) -> dict[str, object]:
        """What determines the distilled set (JSON-able): the trial key hashes this."""
        return {
            **{role: _plain(dataclasses.asdict(o)) for role, o in self.options().items()},
            "dataset": self.dataset.identity(),
            "prerequisites": {n: _plain(dataclasses.asdict(o)) for n, o in self.prerequisites},
            "seed": self.seed,
        }

    def check(self) -> None:
        """The rules between an option object and the rest of the trial: each option class's
        ``check_trial(self, trial)`` (raising :class:`~methods.options.OptionError`), objective first."""
        for options in (self.objective, self.parameterization, *(o for _, o in self.prerequisites)):
            rule = getattr(options, "check_trial", None)
            if callable(rule):
                rule(self)

    @classmethod
    def build(
        cls,
        objective: str,
        ipc: int,
        dataset: DatasetOptions,
        parameterization: str = "pixels",
        seed: int = 0,
        prerequisites: Mapping[str, Any] | None = None,
        **values: object,
    ) -> TrialConfig:
        """A config from keyword values in code (benchmarks, notebooks, tests): each keyword goes to
        the option classes that declare it, built with their own constructors (their ``__post_init__``
        rules run; nothing is coerced). ``prerequisites``: options by name (defaults otherwise)."""
        classes = option_classes(objective, parameterization)
        known = {k for c in classes.values() for k in field_names(c)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise OptionError(f"no option of {objective}/{parameterization} is named {', '.join(unknown)}")
        flat = {"objective": objective, "ipc": ipc, "parameterization": parameterization, **values}
        parts = split_values(flat, classes)
        built = {role: classes[role](**parts[role]) for role in ROLES}
        given = dict(prerequisites or {})
        needs = tuple((n, given.get(n) or PREREQUISITES.get(n).options()) for n in OBJECTIVES.get(objective).requires)
        config = cls(**built, dataset=dataset, prerequisites=needs, seed=seed)
        config.check()
        return config


def _plain(values: OptionValues) -> dict[str, object]:
    """Option values as JSON-able scalars (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


__all__ = ["ROLES", "TrialConfig", "TrialOptions", "option_classes", "owners", "split_values"]
