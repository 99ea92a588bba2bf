"""The flat hyper-parameters of a sweep → one typed :class:`~methods.distill.trial.TrialConfig` per trial.

``method:`` fixes hyper-parameters and ``search:`` sweeps others; each key belongs to the option
dataclasses of the components a trial uses (:func:`methods.distill.trial.owners`). This module
checks every given value against the fields that read it, then builds each trial's configuration
with :func:`orchestrator.spec.schema.resolve_options` — the one rule set: strict types, the
classes' own ``__post_init__`` rules and their ``check_trial`` rules against the rest of the trial.
``ddx validate`` builds the configuration of every grid combination; the trial driver builds its
own from its sample with the same function, and its key is the hash of that configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from methods.distill.trial import ROLES, TrialConfig, TrialOptions, option_classes, owners, split_values
from methods.evaluation.options import LABEL_MODE_REQUIRES
from methods.options import OptionError
from methods.records import OptionValues
from methods.registry import OBJECTIVES, PARAMETERIZATIONS
from orchestrator.errors import SpecError
from orchestrator.spec.messages import describe_error, did_you_mean, key_path, show
from orchestrator.spec.model import DOMAIN_KINDS, MAX_COMBINATIONS, SweepBase
from orchestrator.spec.schema import accepts_list, check_value, resolve_options

#: hidden grid axis that turns ``num_samples`` repeats of a grid into distinct trials
REPEAT_KEY = "repeat"

#: a point of the search space as Tune hands it to a trial: hyper-parameter name → value, plus the
#: repeat index; :func:`trial_config` makes it the trial's typed :class:`TrialConfig` at once
Sample = OptionValues


def component_names(spec: SweepBase) -> tuple[list[str], list[str]]:
    """The objectives and parameterizations the sweep names (each registered, or one line naming the known)."""
    objectives = spec.hyper_values("objective")
    params = spec.hyper_values("parameterization") or [TrialOptions.parameterization]
    if not objectives:
        raise SpecError("required: name an objective (method.objective or search.objective)", key="method")
    for key, registry, names in (
        ("objective", OBJECTIVES, objectives),
        ("parameterization", PARAMETERIZATIONS, params),
    ):
        for i, n in enumerate(names):
            if not isinstance(n, str) or n not in registry:
                raise SpecError(registry.unknown_message(n), key=where(spec, key, i))
    return objectives, params


def where(spec: SweepBase, key: str, index: int | None = None) -> str:
    """Where ``key``'s value (or its ``index``-th candidate) sits in the file."""
    if key in spec.search:
        d = spec.search[key]
        return key_path("search", key, d.kind, *([index] if index is not None else []))
    return key_path("method", key)


def _candidates(spec: SweepBase, key: str) -> list[tuple[Any, str, str | None]]:
    """(value, where, domain kind) for every value of ``key`` to check."""
    if key in spec.method:
        return [(spec.method[key], key_path("method", key), None)]
    d = spec.search[key]
    return [(v, key_path("search", key, d.kind, i), d.kind) for i, v in enumerate(d.samples())]


def check_hyper(spec: SweepBase) -> tuple[list[str], list[str]]:
    """Every ``method``/``search`` key is read by a chosen component and each of its values fits the
    fields that read it; returns the objectives and parameterizations."""
    objectives, params = component_names(spec)
    readers = owners(objectives, params)
    for block, keys in (("method", list(spec.method)), ("search", list(spec.search))):
        for key in keys:
            if key not in readers:
                hint = did_you_mean(key, list(readers))
                raise SpecError(
                    f"unknown hyper-parameter{hint}; known for {'/'.join(objectives)} with "
                    f"{'/'.join(params)}: {', '.join(sorted(readers))}",
                    key=key_path(block, key),
                )
            if key in spec.method and key in spec.search:
                raise SpecError("set in both method and search; keep one", key=key_path("search", key))
    for key in [*spec.method, *spec.search]:
        for value, at, kind in _candidates(spec, key):
            for cls in readers[key]:
                _check_one_value(cls, key, value, at, kind)
    if not spec.hyper_values("ipc"):
        raise SpecError("required: set ipc (method.ipc: 10, or search.ipc: {grid: [1, 10]})", key="method")
    return objectives, params


def _check_one_value(cls: type, key: str, value: Any, at: str, kind: str | None) -> None:
    if kind is None and isinstance(value, dict) and set(value) & set(DOMAIN_KINDS):
        raise SpecError(f"a domain belongs under search: (search.{key}: {show(value)})", key=at)
    if kind is None and isinstance(value, list) and not accepts_list(cls, key):
        raise SpecError(
            f"one value expected, got a list {show(value)}; to sweep it use search.{key}: {{grid: {show(value)}}}",
            key=at,
        )
    if kind in ("uniform", "loguniform"):
        value = float(value)
    try:
        check_value(cls, key, value)
    except ValidationError as err:
        e = err.errors()[0]
        loc, msg = describe_error(e)
        if kind in ("uniform", "loguniform") and e["type"] == "int_type":
            msg = f"{kind} draws real numbers but {key} is an integer; use randint: [low, high]"
        raise SpecError(msg, key=key_path(at, *loc)) from None


def trial_values(spec: SweepBase, sample: Mapping[str, Any]) -> OptionValues:
    """A trial's flat hyper-parameters: the fixed ``method`` values and its sample of ``search``."""
    return {**dict(spec.method), **{k: v for k, v in sample.items() if k in spec.search}}


def trial_config(spec: SweepBase, sample: Mapping[str, Any]) -> TrialConfig:
    """The typed configuration of the trial that ``sample`` (a Tune config: swept values and its
    ``repeat``) picks; :class:`SpecError` (key path included) when a rule refuses it."""
    values = trial_values(spec, sample)
    objective = values.get("objective")
    parameterization = values.get("parameterization", TrialOptions.parameterization)
    classes = option_classes(str(objective), str(parameterization))
    parts = split_values(values, classes)
    built: OptionValues = {}
    for role in ROLES:
        try:
            built[role] = resolve_options(classes[role], parts[role])
        except (ValueError, TypeError) as err:
            ordered = {f.name: parts[role][f.name] for f in dataclasses.fields(classes[role]) if f.name in parts[role]}
            raise _rule_error(spec, err, ordered) from None
    needs = tuple((name, spec.prerequisite_options(name)) for name in OBJECTIVES.get(str(objective)).requires)
    config = TrialConfig(
        **built,
        dataset=spec.dataset_options(),
        prerequisites=needs,
        seed=spec.seed + int(sample.get(REPEAT_KEY, 0)),
    )
    try:
        config.check()
    except (ValueError, TypeError) as err:
        raise _rule_error(spec, err, values) from None
    return config


def _rule_error(spec: SweepBase, err: Exception, values: Mapping[str, Any]) -> SpecError:
    """A refused option (a rule between fields, or a value a check refused) as one line with its place."""
    if isinstance(err, ValidationError):
        loc, msg = describe_error(err.errors()[0])
        key = str(loc[0]) if loc else next(iter(values), "method")
        return SpecError(msg, key=where(spec, key) if key in values else "method")
    swept = [k for k in values if k in spec.search]
    shown = ", ".join(f"{k}={values[k]!r}" for k in swept)
    message = f"{err}{f' (with {shown})' if shown else ''}"
    if isinstance(err, OptionError) and err.key:
        return SpecError(message, key=err.key)
    blame = next(iter(values), None)  # the first of the refusing options' keys that the file gives
    return SpecError(message, key=where(spec, blame) if blame else "method")


def grid_samples(spec: SweepBase) -> list[OptionValues] | None:
    """One sample per combination of every key's candidate values (grid values, a sampled domain's
    bounds), or None when there are more than :data:`MAX_COMBINATIONS`."""
    keys = list(spec.search)
    pools = [spec.search[k].samples() for k in keys]
    total = 1
    for p in pools:
        total *= max(1, len(p))
    if total > MAX_COMBINATIONS:
        return None
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*pools)]


def check_trials(spec: SweepBase) -> None:
    """Every combination of the sweep's values builds a configuration (the rules between options
    included); beyond :data:`MAX_COMBINATIONS` combinations only the first is built."""
    samples = grid_samples(spec)
    for sample in (
        samples[:MAX_COMBINATIONS] if samples is not None else [{k: d.samples()[0] for k, d in spec.search.items()}]
    ):
        trial_config(spec, sample)


def trial_key(config: TrialConfig) -> str:
    """A trial's stable identity: the hash of everything that determines its set
    (:meth:`TrialConfig.identity`). Rows, sets and distillation states are keyed by it, so a re-run
    trial finds its earlier work, and trials whose differing values no component reads share one."""
    body = json.dumps(config.identity(), sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def keys_read(config: TrialConfig) -> set[str]:
    """The flat hyper-parameter keys a trial with this configuration reads."""
    return set(config.columns())


def needed_prerequisites(spec: SweepBase) -> dict[str, list[str]]:
    """Prerequisite → what needs it (objectives, label modes), for the objectives this sweep names."""
    needs: dict[str, list[str]] = {}
    for o in spec.hyper_values("objective"):
        if isinstance(o, str) and o in OBJECTIVES:
            for p in OBJECTIVES.get(o).requires:
                needs.setdefault(p, []).append(o)
    for mode in spec.evaluation.label_modes:
        for p in LABEL_MODE_REQUIRES.get(mode, ()):
            needs.setdefault(p, []).append(f"label_mode {mode}")
    return {p: list(dict.fromkeys(v)) for p, v in needs.items()}


__all__ = [
    "REPEAT_KEY",
    "Sample",
    "check_hyper",
    "check_trials",
    "component_names",
    "grid_samples",
    "keys_read",
    "needed_prerequisites",
    "trial_config",
    "trial_key",
    "trial_values",
    "where",
]
