"""The sweep file: YAML → pydantic :class:`SweepSpec`, every mistake one line with its key path.

A sweep names one flat set of *hyper-parameters* (``ipc``, ``lr_images``, ``beta``,
``nf_width``…). ``method:`` fixes some; ``search:`` sweeps others, each with a domain.
Which keys exist, and what each may hold, is decided by the option dataclasses of the
components the sweep uses (:class:`~methods.distill.trial.TrialOptions`, the
distillation loop's :class:`~methods.distill.options.DistillSettings`, the objective's and
the parameterization's ``Options``), so a new objective's options are valid, checked keys
without touching this file. The blocks are generated the same way: ``dataset:`` from
:class:`~methods.datasets.options.DatasetOptions`, ``evaluation:`` from
:class:`~methods.evaluate_options.EvalSettings`, ``evaluation.reference`` from
:class:`~methods.evaluation.real_training_options.RealTrainSettings`, and one optional top-level block
per prerequisite in :mod:`methods.catalog` (``teacher:`` …) from its ``Options``.

Everything here is torch-free and Ray-free: ``ddx validate`` imports only this, pydantic,
PyYAML and the catalog (see ``benchmarks/validate_time.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Len
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from methods import catalog
from methods.datasets.layout import layout_problem
from methods.datasets.options import DatasetOptions, train_images_left
from methods.distill.options import DistillSettings
from methods.distill.trial import TrialOptions
from methods.evaluation.options import LABEL_MODE_REQUIRES, EvalSettings, LabelMode
from methods.evaluation.real_training_options import RealTrainSettings
from methods.networks.info import resolve_arch
from methods.options import PositiveInt, Resolution, field_names, named, take
from methods.parameterizations.options import SetShape, instances_per_class
from orchestrator.errors import SpecError
from orchestrator.spec.metrics import TrialMetric
from orchestrator.spec.schema import (
    OptionsBlock,
    Strict,
    accepts_list,
    block_model,
    check_value,
    named_kind,
    pydantic_type,
)
from orchestrator.storage import time_limit

DOMAIN_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
#: hyper-parameters every sweep may set, besides the chosen components' own options
CORE_KEYS = field_names(TrialOptions) | field_names(DistillSettings)
#: the classes whose fields every trial reads
CORE_OPTIONS: tuple[type, ...] = (TrialOptions, DistillSettings)
#: combinations of swept values beyond which per-combination checks are skipped
MAX_COMBINATIONS = 4096

NetworkName = pydantic_type(Annotated[str, named("network")])
Bounds = Annotated[list[float], Len(2, 2)]
IntBounds = Annotated[list[int], Len(2, 2)]
Values = Annotated[list[Any], Len(1)]


class Domain(Strict):
    """One swept hyper-parameter: exactly one of grid / choice / uniform / loguniform / randint."""

    grid: Values | None = None
    choice: Values | None = None
    uniform: Bounds | None = None
    loguniform: Bounds | None = None
    randint: IntBounds | None = None

    @model_validator(mode="after")
    def _one(self) -> Domain:
        set_kinds = [k for k in DOMAIN_KINDS if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(f"give exactly one of {', '.join(DOMAIN_KINDS)} (got {', '.join(set_kinds) or 'none'})")
        return self

    @field_validator("grid")
    @classmethod
    def _distinct(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None:
            seen: set[str] = set()
            for x in v:
                token = json.dumps(x, sort_keys=True, default=repr)
                if token in seen:
                    raise ValueError(f"{x!r} is in the grid twice (each grid value is one trial); keep one")
                seen.add(token)
        return v

    @field_validator("uniform")
    @classmethod
    def _uniform(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"low must be < high (got {v[0]}, {v[1]})")
        return v

    @field_validator("loguniform")
    @classmethod
    def _log(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if v[0] <= 0:
                raise ValueError(f"low must be > 0 (got {v[0]})")
            if not v[0] < v[1]:
                raise ValueError(f"low must be < high (got {v[0]}, {v[1]})")
        return v

    @field_validator("randint")
    @classmethod
    def _randint(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and not v[0] <= v[1]:
            raise ValueError(f"low must be ≤ high (got {v[0]}, {v[1]}; both inclusive)")
        return v

    @property
    def kind(self) -> str:
        return next(k for k in DOMAIN_KINDS if getattr(self, k) is not None)

    @property
    def values(self) -> list[Any] | None:
        """The finite candidate values (grid/choice), else None."""
        return self.grid if self.grid is not None else self.choice

    def samples(self) -> list[Any]:
        """Representative values for type checks: every finite value, or the bounds."""
        if self.values is not None:
            return list(self.values)
        return list(getattr(self, self.kind))


class Metric(Strict):
    """``metric:`` — what Tune optimises: a metric every trial reports (:mod:`orchestrator.spec.metrics`)."""

    name: TrialMetric = "val_acc"
    mode: Literal["max", "min"] = "max"


class Resources(Strict):
    """``resources:`` — what each piece of work reserves from the Ray cluster."""

    distill_workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    eval_cpus: float = Field(default=1.0, gt=0)
    eval_gpus: float = Field(default=0.0, ge=0)
    max_concurrent_trials: int = Field(default=1, ge=1)
    eval_retries: int = Field(default=2, ge=0)
    #: the token a trial driver holds; None = ``{ddx_driver: 0.01}`` where the cluster defines
    #: that resource (the embedded local Ray, cluster.yaml's head node), else ``{CPU: 0.01}``
    trial_resources: dict[str, float] | None = None

    @field_validator("trial_resources")
    @classmethod
    def _token(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        if not v or all(x <= 0 for x in v.values()):
            raise ValueError("needs a positive token resource, e.g. {CPU: 0.01} ({CPU: 0} is rejected by Ray)")
        return v


class Scheduler(Strict):
    """``scheduler:`` — early stopping of hopeless trials on their probe accuracy (ASHA).

    Trials report ``probe_val_acc`` every ``method.probe_every`` distillation steps (a quick
    probe student's validation accuracy); ASHA (Li et al. 2020) stops a trial at a rung
    (``grace_period`` × ``reduction_factor``^k steps) when it is not in the top
    1/``reduction_factor`` of the trials that reached that rung.
    """

    name: Literal["asha"] = "asha"
    grace_period: int = Field(default=100, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1)
    max_t: int | None = Field(default=None, ge=1)  # None: the sweep's largest ``iterations``


class MLflowTracking(Strict):
    tracking_uri: str | None = None  # None: MLflow's default (./mlruns or $MLFLOW_TRACKING_URI)
    experiment_name: str | None = None  # None: the sweep's name


class WandbTracking(Strict):
    project: str | None = None  # None: the sweep's name
    group: str | None = None


class Tracking(Strict):
    """``tracking:`` — experiment trackers that receive every trial's intermediate and final metrics."""

    tensorboard: bool = False  # event files in each trial's folder under <experiment>/tune/
    mlflow: MLflowTracking | None = None
    wandb: WandbTracking | None = None

    @field_validator("mlflow", "wandb", mode="before")
    @classmethod
    def _true_means_defaults(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v


DatasetBlock = block_model(
    DatasetOptions,
    "DatasetBlock",
    exclude={"cache_dir"},  # set by the orchestrator on each node
    defaults={"name": "digits"},
    module=__name__,
    doc="``dataset:`` — which real data, at what resolution, and how it is split (DatasetOptions).",
)


class _ReferenceKeys(OptionsBlock):
    seeds: PositiveInt | None = None  # None: evaluation.seeds


Reference = block_model(
    RealTrainSettings,
    "Reference",
    base=_ReferenceKeys,
    module=__name__,
    doc="""``evaluation.reference:`` — the full-data upper bound: each eval arch trained on all real data.

    Trained once per (dataset, arch, resolution, seed, these settings) and cached under
    ``<storage>/cache/reference``; ``reference: true`` takes every default (CIFAR-style
    SGD 0.05, cosine, crop + flip, 30 epochs; :class:`methods.evaluation.real_training.RealTrainSettings`).
    """,
)


def _no_repeats(v: list[Any] | None) -> list[Any] | None:
    for i, x in enumerate(v or []):
        if x in v[:i]:  # type: ignore[index]
            raise ValueError(f"{x!r} is listed twice; keep one")
    return v


class _EvaluationKeys(OptionsBlock):
    """The orchestration-only keys of ``evaluation:`` (the rest is :class:`EvalSettings`)."""

    archs: Annotated[list[NetworkName], Len(1)] = Field(default_factory=lambda: ["convnet_d3"])
    resolutions: Annotated[list[Resolution], Len(1)] | None = None  # None: the distillation resolution
    seeds: PositiveInt = 2
    #: epochs for some archs instead of ``epochs`` (students sized for the hardware, e.g. a
    #: laptop's ResNet-18 trains fewer epochs than its ConvNet); rows record the epochs each ran
    arch_epochs: dict[NetworkName, PositiveInt] = Field(default_factory=dict)
    label_mode: Annotated[list[LabelMode], Len(1)] = Field(default_factory=lambda: ["hard"])
    reference: Reference | None = None  # the full-data upper-bound row (``true`` for defaults)

    @field_validator("reference", mode="before")
    @classmethod
    def _reference(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v

    @field_validator("label_mode", mode="before")
    @classmethod
    def _one_mode(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("archs", "resolutions", "label_mode")
    @classmethod
    def _distinct(cls, v: list[Any] | None) -> list[Any] | None:
        return _no_repeats(v)

    @property
    def label_modes(self) -> list[str]:
        return list(self.label_mode)


Evaluation = block_model(
    EvalSettings,
    "Evaluation",
    base=_EvaluationKeys,
    exclude={"label_mode"},  # one per job: the block's label_mode lists them
    module=__name__,
    doc="``evaluation:`` — which students are trained on each distilled set, and how (EvalSettings).",
)


def _prerequisite_blocks() -> dict[str, type[OptionsBlock]]:
    """One block model per catalog prerequisite, from its ``Options`` (``teacher`` → ``TeacherBlock``)."""
    blocks = {}
    for entry in catalog.PREREQUISITES:
        cls = catalog.options_class("prerequisite", entry.name)
        assert cls is not None, f"prerequisite {entry.name!r} declares no Options"
        model_name = "".join(part.title() for part in entry.name.split("_")) + "Block"
        blocks[entry.name] = block_model(
            cls, model_name, module=__name__, doc=f"``{entry.name}:`` — {(cls.__doc__ or '').strip()}"
        )
        globals()[model_name] = blocks[entry.name]
    return blocks


#: prerequisite name → its top-level block model (``teacher`` → :class:`TeacherBlock`)
PREREQUISITE_BLOCKS: dict[str, type[OptionsBlock]] = _prerequisite_blocks()
TeacherBlock = PREREQUISITE_BLOCKS["teacher"]


#: what an empty storage location (in a sweep file or on the command line) is told
EMPTY_LOCATION = "empty; give a folder or a URI (e.g. ./ddx_results or s3://bucket/prefix)"


class SweepBase(Strict):
    """The keys of a sweep file other than the prerequisite blocks (see :data:`SweepSpec`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    storage: str = "./ddx_results"  # a folder (relative: to the current one) or a URI
    dataset: DatasetBlock = Field(default_factory=DatasetBlock)  # type: ignore[valid-type]
    method: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Domain] = Field(default_factory=dict)
    algorithm: Literal["grid", "optuna"] = "grid"
    num_samples: PositiveInt = 1
    seed: int = 0
    metric: Metric = Field(default_factory=Metric)
    resources: Resources = Field(default_factory=Resources)
    evaluation: Evaluation = Field(default_factory=Evaluation)  # type: ignore[valid-type]
    scheduler: Scheduler | None = None  # None: every trial runs to the end
    tracking: Tracking = Field(default_factory=Tracking)

    @field_validator("storage")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(EMPTY_LOCATION)
        return v

    # --- derived views -------------------------------------------------------------------
    def hyper_values(self, key: str) -> list[Any]:
        """Every value ``key`` can take in this sweep (fixed or swept)."""
        if key in self.search:
            return self.search[key].samples()
        if key in self.method:
            return [self.method[key]]
        return []

    def prerequisite(self, name: str) -> Any:
        """The ``name:`` block as given, or its defaults (``spec.prerequisite("teacher").arch``)."""
        return getattr(self, name, None) or PREREQUISITE_BLOCKS[name]()

    def config_hash(self) -> str:
        """Hash of everything that determines results (not storage, resources or trackers)."""
        unset = {p for p in PREREQUISITE_BLOCKS if getattr(self, p, None) is None}
        body = self.model_dump(mode="json", exclude={"storage", "resources", "tracking", *unset})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def experiment_dir(self) -> str:
        return join_storage(self.storage, self.name)


#: A whole sweep file (README, "The sweep file"): :class:`SweepBase` plus one optional block per
#: prerequisite (None: its defaults, produced only when a trial needs it).
SweepSpec = create_model(
    "SweepSpec",
    __base__=SweepBase,
    __module__=__name__,
    __doc__='A whole sweep file (see README, "The sweep file", for every key).',
    **{name: (block | None, None) for name, block in PREREQUISITE_BLOCKS.items()},  # type: ignore[dict-item]
)


def join_storage(storage: str, *parts: str) -> str:
    """``storage``/``parts``; a URI's query string (``?endpoint_override=…``) stays at the end
    (the same rule as :func:`orchestrator.storage.locations.join`, without importing pyarrow here)."""
    if "://" in storage:
        head, sep, query = storage.partition("?")
        return "/".join([head.rstrip("/"), *parts]) + sep + query
    return str(Path(storage).joinpath(*parts))


# --- pydantic errors → one line --------------------------------------------------------------
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


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {_show(value)}" if value is not None else "got null"


def key_path(*parts: Any) -> str:
    """``("search", "ipc", "grid", 1)`` → ``search.ipc.grid[1]``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _did_you_mean(value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1) if isinstance(value, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_error(e: dict[str, Any], model: type | None = None) -> tuple[list[Any], str]:
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
    if "[key]" in e["loc"]:
        return loc, f"keys must be strings ({_got(value)})"
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc[:-1]) if model is not None else []
        hint = _did_you_mean(loc[-1], fields)
        known = f"; known: {', '.join(fields)}" if fields else ""
        return loc, f"unknown key{hint}{known}"
    if kind == "missing":
        return loc, "required"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return loc, f"must be {ctx.get('expected')}{_did_you_mean(value, options)} ({_got(value)})"
    if kind in _BOUNDS:
        op, bound = _BOUNDS[kind]
        return loc, f"must be {op} {ctx.get(bound)} (got {_show(value)})"
    if kind == "finite_number":
        return loc, f"must be a finite number (got {_show(value)})"
    if kind in ("too_short", "too_long"):
        which = "at least" if kind == "too_short" else "at most"
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        return loc, f"needs {which} {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    if kind == "string_pattern_mismatch":
        return loc, f"must match the pattern {ctx.get('pattern')} (letters, digits, _ . -; got {_show(value)})"
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


# --- the components a sweep uses and the keys they read ---------------------------------------
def _component_names(spec: SweepBase) -> tuple[list[str], list[str]]:
    objectives = spec.hyper_values("objective")
    params = spec.hyper_values("parameterization") or [TrialOptions.parameterization]
    if not objectives:
        raise SpecError("required: name an objective (method.objective or search.objective)", key="method")
    for key, names in (("objective", objectives), ("parameterization", params)):
        for i, n in enumerate(names):
            if not isinstance(n, str) or n not in catalog.names(key):
                raise SpecError(catalog.unknown_message(key, n), key=_where(spec, key, i))
    return objectives, params


def _options_of(kind: str, name: str) -> list[type]:
    cls = catalog.options_class(kind, name)
    return [cls] if cls is not None else []


def owners_of(objectives: list[str], params: list[str]) -> dict[str, list[type]]:
    """key → the option dataclasses (of these components) that read it."""
    owners: dict[str, list[type]] = {}
    classes = [*CORE_OPTIONS]
    for o in objectives:
        classes += _options_of("objective", o)
    for p in params:
        classes += _options_of("parameterization", p)
    for cls in dict.fromkeys(classes):
        for k in field_names(cls):
            owners.setdefault(k, []).append(cls)
    return owners


def keys_read_by(objective: str, parameterization: str) -> set[str]:
    """The hyper-parameter keys a trial with these components reads."""
    return set(owners_of([objective], [parameterization]))


def _where(spec: SweepBase, key: str, index: int | None = None) -> str:
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


def _check_hyper(spec: SweepBase) -> tuple[list[str], list[str]]:
    objectives, params = _component_names(spec)
    owners = owners_of(objectives, params)
    for block, keys in (("method", list(spec.method)), ("search", list(spec.search))):
        for key in keys:
            if key not in owners:
                hint = _did_you_mean(key, list(owners))
                raise SpecError(
                    f"unknown hyper-parameter{hint}; known for {'/'.join(objectives)} with "
                    f"{'/'.join(params)}: {', '.join(sorted(owners))}",
                    key=key_path(block, key),
                )
            if key in spec.method and key in spec.search:
                raise SpecError("set in both method and search; keep one", key=key_path("search", key))
    for key in [*spec.method, *spec.search]:
        for value, where, kind in _candidates(spec, key):
            for cls in owners[key]:
                _check_one_value(cls, key, value, where, kind)
    if not spec.hyper_values("ipc"):
        raise SpecError("required: set ipc (method.ipc: 10, or search.ipc: {grid: [1, 10]})", key="method")
    return objectives, params


def _check_one_value(cls: type, key: str, value: Any, where: str, kind: str | None) -> None:
    if kind is None and isinstance(value, dict) and set(value) & set(DOMAIN_KINDS):
        raise SpecError(f"a domain belongs under search: (search.{key}: {_show(value)})", key=where)
    if kind is None and isinstance(value, list) and not accepts_list(cls, key):
        raise SpecError(
            f"one value expected, got a list {_show(value)}; to sweep it use search.{key}: {{grid: {_show(value)}}}",
            key=where,
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
        raise SpecError(msg, key=key_path(where, *loc)) from None


# --- checks that combine keys ----------------------------------------------------------------
def _combinations(spec: SweepBase, keys: list[str]) -> list[dict[str, Any]]:
    pools = [spec.hyper_values(k) for k in keys]
    total = 1
    for p in pools:
        total *= max(1, len(p))
    if total > MAX_COMBINATIONS:
        return []
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*pools)]


def _check_option_rules(spec: SweepBase, objectives: list[str], params: list[str]) -> None:
    """Rules that tie fields together (an ``Options`` class's ``__post_init__``), per swept combination."""
    classes = [*CORE_OPTIONS]
    for o in objectives:
        classes += _options_of("objective", o)
    for p in params:
        classes += _options_of("parameterization", p)
    for cls in dict.fromkeys(classes):
        if not hasattr(cls, "__post_init__"):
            continue
        keys = [k for k in (f.name for f in dataclasses.fields(cls)) if spec.hyper_values(k)]
        for chosen in _combinations(spec, keys):
            try:
                take(cls, chosen)
            except (ValueError, TypeError) as err:
                values = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
                raise SpecError(f"{err}{f' (with {values})' if values else ''}", key=_where(spec, keys[0])) from None


def distill_resolution(spec: SweepBase) -> int | None:
    """The resolution sets are distilled at: ``dataset.resolution`` or the dataset's native size (None: unknown)."""
    if spec.dataset.resolution:
        return spec.dataset.resolution
    return catalog.NATIVE_SHAPES.get(spec.dataset.name, (None, None))[1]


def arch_problem(arch: str, resolution: int) -> str | None:
    """Why network ``arch`` cannot take ``resolution``-px inputs, or None."""
    actual = resolve_arch(arch, resolution)
    net = catalog.network(actual)
    if net.accepts(resolution):
        return None
    shown = arch if actual == arch else f"{arch} ({actual} at {resolution} px)"
    return f"{shown} needs inputs of at least {net.minimum(resolution)} px, got {resolution} px"


def _resolution_source(spec: SweepBase) -> str:
    if spec.dataset.resolution:
        return "dataset.resolution"
    return f"{spec.dataset.name}'s native size"


def _check_archs(spec: SweepBase, objectives: list[str], needs: dict[str, list[str]]) -> None:
    """Every network × the resolution it will see: distillation, evaluation, prerequisites."""
    r = distill_resolution(spec)
    ev = spec.evaluation
    for arch in ev.arch_epochs:
        if arch not in ev.archs:
            raise SpecError(
                f"{arch!r} is not one of evaluation.archs ({', '.join(ev.archs)}); add it there or drop it",
                key=key_path("evaluation", "arch_epochs", arch),
            )
    eval_resolutions = ev.resolutions or ([r] if r else [])
    for i, arch in enumerate(ev.archs):
        for res in eval_resolutions:
            problem = arch_problem(arch, res)
            if problem:
                fix = (
                    "evaluate it at a larger evaluation.resolutions"
                    if ev.resolutions
                    else (f"set evaluation.resolutions (the default is {_resolution_source(spec)})")
                )
                raise SpecError(f"{problem}; drop it or {fix}", key=key_path("evaluation", "archs", i))
    if r is None:
        return
    readers = [o for o in objectives if any("distill_arch" in field_names(c) for c in _options_of("objective", o))]
    if readers:
        archs = spec.hyper_values("distill_arch") or [TrialOptions.distill_arch]
        for i, arch in enumerate(archs):
            problem = arch_problem(arch, r)
            if problem:
                where = _where(spec, "distill_arch", i if "distill_arch" in spec.search else None)
                raise SpecError(
                    f"{problem} ({_resolution_source(spec)}); pick another distill_arch"
                    f"{'' if spec.hyper_values('distill_arch') else ' (the default is convnet_d3)'}",
                    key=where,
                )
    for name in needs:
        block = spec.prerequisite(name)
        options = type(block).__options__
        for field in type(block).__option_fields__:
            if named_kind(options, field) == "network":
                problem = arch_problem(getattr(block, field), r)
                if problem:
                    raise SpecError(
                        f"{problem} ({_resolution_source(spec)}, where the {name} trains); pick another",
                        key=key_path(name, field),
                    )


def needed_prerequisites(spec: SweepBase) -> dict[str, list[str]]:
    """Prerequisite → what needs it (objectives, label modes), for the objectives this sweep names."""
    needs: dict[str, list[str]] = {}
    for o in spec.hyper_values("objective"):
        if isinstance(o, str) and o in catalog.names("objective"):
            for p in catalog.requires(o):
                needs.setdefault(p, []).append(o)
    for mode in spec.evaluation.label_modes:
        for p in LABEL_MODE_REQUIRES.get(mode, ()):
            needs.setdefault(p, []).append(f"label_mode {mode}")
    return {p: list(dict.fromkeys(v)) for p, v in needs.items()}


def _check_algorithm(spec: SweepBase) -> None:
    if spec.algorithm == "optuna":
        kinds = {d.kind for d in spec.search.values()}
        if "grid" in kinds and kinds != {"grid"}:
            raise SpecError(
                "optuna runs a grid only when every domain is a grid (GridSampler); use choice for the "
                "others or algorithm: grid",
                key="search",
            )


def _uri_problem(uri: str, timeout: float) -> str | None:
    """Why ``uri`` is not a reachable, existing location (pyarrow filesystems), or None."""

    def missing() -> bool:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(uri)
        return fs.get_file_info(path).type == pafs.FileType.NotFound

    try:
        if time_limit.within(timeout, missing, name="ddx-uri-probe"):
            return f"{uri!r} does not exist (upload the data or fix the URI)"
    except time_limit.NoAnswer:
        return f"no answer from {uri!r} within {timeout:g} s (check the endpoint and the network)"
    except Exception as err:  # any filesystem or URI error is the user's input
        first = (str(err).strip().splitlines() or [err.__class__.__name__])[0]
        return f"cannot reach {uri!r}: {first}"
    return None


def _check_dataset(spec: SweepBase) -> None:
    ds = spec.dataset
    if ds.name in catalog.NEEDS_ROOT and not ds.root:
        raise SpecError(
            f"dataset {ds.name!r} needs a root folder (or a URI such as s3://bucket/data)", key="dataset.root"
        )
    if not ds.root:
        return
    if "://" in ds.root:
        problem = _uri_problem(ds.root, time_limit.uri_timeout_s())
        if problem:
            raise SpecError(problem, key="dataset.root")
    elif not Path(ds.root).expanduser().exists():
        raise SpecError(f"folder {ds.root!r} does not exist (download the data or fix the path)", key="dataset.root")
    else:  # a local root's layout (a URI root is staged onto each node first; its loader checks it there)
        problem = layout_problem(ds.name, Path(ds.root).expanduser())
        if problem:
            raise SpecError(f"{problem}; point it at the dataset's folder", key="dataset.root")


def _check_budget(spec: SweepBase, params: list[str]) -> None:
    """Every swept combination of ``ipc`` and parameterization options must fit ≥ 1 instance per class.

    Uses the dataset's known shape (no data is loaded); datasets whose size depends on the files
    (an ``imagefolder`` without ``dataset.resolution``) are checked when the set is built.
    """
    channels = catalog.NATIVE_SHAPES.get(spec.dataset.name, (None, None))[0]
    resolution = distill_resolution(spec)
    if channels is None or resolution is None:
        return
    for pname in params:
        opt_cls = catalog.options_class("parameterization", pname)
        declared = [f.name for f in dataclasses.fields(opt_cls)] if opt_cls else []
        keys = [k for k in declared if spec.hyper_values(k)]  # declaration order: the main knob first
        for ipc in spec.hyper_values("ipc"):
            for chosen in _combinations(spec, keys):
                _check_one_budget(spec, pname, int(ipc), chosen, channels, resolution)


def _check_ipc_fits_data(spec: SweepBase) -> None:
    """No swept ``ipc`` asks for more images per class than the training split keeps (a set that
    large distils nothing); datasets whose size depends on the files are checked when loaded."""
    ds = catalog.info("dataset", spec.dataset.name)
    if ds.smallest_class is None:
        return
    left = train_images_left(ds.smallest_class, spec.dataset.options(), ds.test_split)
    for index, ipc in enumerate(spec.hyper_values("ipc")):
        if int(ipc) > left:
            raise SpecError(
                f"ipc {ipc} is more than the {max(left, 0)} training images per class that {ds.name} keeps (its "
                f"smallest class, after the dataset block's carves and limits); use ipc ≤ {max(left, 0)}",
                key=_where(spec, "ipc", index if "ipc" in spec.search else None),
            )


def _check_one_budget(
    spec: SweepBase, pname: str, ipc: int, chosen: dict[str, Any], channels: int, resolution: int
) -> None:
    scalars = catalog.resolve(catalog.info("parameterization", pname).scalars)
    shape = SetShape(num_classes=1, ipc=ipc, channels=channels, resolution=resolution)
    try:
        need = scalars(shape, chosen)
    except ValueError as err:  # an option the parameterization rejects
        raise SpecError(str(err), key=_where(spec, next(iter(chosen), "parameterization"))) from None
    if instances_per_class(shape, need) >= 1:
        return
    sizing = [k for k in chosen if scalars(shape, {x: v for x, v in chosen.items() if x != k}) != need]
    blame = (sizing or list(chosen) or ["ipc"])[0]
    values = ", ".join(f"{k}={chosen[k]}" for k in sizing)
    raise SpecError(
        f"{pname}{' with ' + values if values else ''} fits 0 instances per class at ipc={ipc} on "
        f"{spec.dataset.name} ({channels}×{resolution}×{resolution}: {shape.budget_scalars} scalars per class; "
        f"one instance needs {need}); raise ipc or shrink the instance",
        key=_where(spec, blame),
    )


def _check_block_rules(spec: SweepBase) -> None:
    """The rules an option dataclass checks across its fields (``__post_init__``), for each block."""
    ev = spec.evaluation
    fields = {k: getattr(ev, k) for k in type(ev).__option_fields__}
    for mode in ev.label_modes:
        try:
            take(EvalSettings, {**fields, "label_mode": mode})
        except (ValueError, TypeError) as err:
            raise SpecError(f"{err} (label_mode {mode})", key="evaluation") from None
    blocks = [("evaluation.reference", ev.reference)] + [(p, getattr(spec, p, None)) for p in PREREQUISITE_BLOCKS]
    for where, block in blocks:
        if block is not None:
            try:
                block.options()
            except (ValueError, TypeError) as err:
                raise SpecError(str(err), key=where) from None


def _apply_eval_preset(data: dict[str, Any]) -> None:
    """``evaluation.preset`` fills every evaluation key the file does not give (:mod:`methods.evaluation.presets`).

    Values for the sweep's dataset (and its ``ipc`` when fixed) are taken; the preset's student
    networks and seeds fill ``archs``/``seeds`` when it fixes them.
    """
    ev = data.get("evaluation")
    if not isinstance(ev, dict) or not isinstance(ev.get("preset"), str):
        return
    from methods.evaluation.presets import PRESETS, preset_values

    preset = PRESETS.get(ev["preset"])
    if preset is None:
        return  # the field check names the known presets
    ds = data.get("dataset")
    dataset = ds.get("name", DatasetBlock.model_fields["name"].default) if isinstance(ds, dict) else None
    method = data.get("method")
    ipc = method.get("ipc") if isinstance(method, dict) else None
    fixed_ipc = ipc if isinstance(ipc, int) and not isinstance(ipc, bool) else None
    by_ipc = preset.batch_size_by_ipc.get(dataset, {}) if isinstance(dataset, str) else {}
    if by_ipc and fixed_ipc is None and "batch_size" not in ev:
        table = ", ".join(f"ipc {k}: {v}" for k, v in by_ipc.items())
        raise SpecError(
            f"preset {preset.name!r} sets the batch size per IPC on {dataset} ({table}) but ipc is not fixed; "
            "set evaluation.batch_size or run one sweep per ipc (method.ipc)",
            key="evaluation.preset",
        )
    values = preset_values(preset.name, dataset if isinstance(dataset, str) else None, fixed_ipc)
    filled = {k: v for k, v in values.items() if k not in ev}
    if preset.archs is not None and "archs" not in ev:
        filled["archs"] = list(preset.archs)
    if preset.seeds is not None and "seeds" not in ev:
        filled["seeds"] = preset.seeds
    data["evaluation"] = {**ev, **filled}


# --- entry points ----------------------------------------------------------------------------
def _resolve_root(data: dict[str, Any], base_dir: Path) -> None:
    """A relative local ``dataset.root`` is relative to the spec file's folder (made absolute here)."""
    ds = data.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("root"), str) and ds["root"] and "://" not in ds["root"]:
        root = Path(ds["root"]).expanduser()
        if not root.is_absolute():
            data["dataset"] = {**ds, "root": str((base_dir / root).resolve())}


def _check_experts(spec: SweepBase, needs: dict[str, list[str]]) -> None:
    """Every ``tm`` trial must find its epochs in the experts: ``max_start_epoch − 1 + expert_epochs``
    ≤ the last kept snapshot (``experts.keep_epochs`` / ``train_epochs``)."""
    if "experts" not in needs:
        return
    from methods.tm.options import TMOptions

    block = spec.prerequisite("experts")
    kept = block.options().epochs_trained
    starts = spec.hyper_values("max_start_epoch") or [TMOptions.max_start_epoch]
    spans = spec.hyper_values("expert_epochs") or [TMOptions.expert_epochs]
    for start, span in itertools.product(starts, spans):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, span)):
            continue  # not integers: the type checks name them
        need = start - 1 + span
        if need > kept:
            given = getattr(spec, "experts", None)
            key = "experts.keep_epochs" if given is not None and given.keep_epochs is not None else "experts"
            raise SpecError(
                f"tm with max_start_epoch={start}, expert_epochs={span} reads expert epochs up to {need}, but "
                f"the experts keep epochs 0…{kept}; raise experts.train_epochs / keep_epochs to ≥ {need}",
                key=key,
            )


def _check_scheduler(spec: SweepBase) -> None:
    """An early-stopping scheduler reads probe accuracies: every trial must report them."""
    if spec.scheduler is None:
        return
    probes = spec.hyper_values("probe_every")
    if not probes or any(not isinstance(v, int) or v <= 0 for v in probes):
        raise SpecError(
            f"{spec.scheduler.name} stops trials on their probe accuracy; set method.probe_every to a positive "
            "number of distillation steps (e.g. 100), or remove the scheduler",
            key="scheduler",
        )


def validate_spec(spec: SweepBase) -> None:
    """Every check beyond field types; raises :class:`SpecError` with the key path."""
    objectives, params = _check_hyper(spec)
    _check_option_rules(spec, objectives, params)
    _check_block_rules(spec)
    _check_scheduler(spec)
    _check_algorithm(spec)
    _check_dataset(spec)
    _check_archs(spec, objectives, needed_prerequisites(spec))
    _check_budget(spec, params)
    _check_ipc_fits_data(spec)
    _check_experts(spec, needed_prerequisites(spec))


def parse_spec(data: Any, where: str = "<spec>", base_dir: str | Path | None = None) -> SweepBase:
    """Validate an already-parsed YAML document.

    ``base_dir``: the folder a relative ``dataset.root`` is relative to (:func:`load_spec`
    passes the spec file's folder; None: the current directory).
    """
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"{type(data).__name__} {_show(data)}"
        raise SpecError(
            f"the file must hold a mapping of keys (name, dataset, method, search, …), not {got}", where=where
        )
    data = dict(data)
    if base_dir is not None:
        _resolve_root(data, Path(base_dir))
    try:
        _apply_eval_preset(data)
        spec = SweepSpec.model_validate(data)
    except SpecError as err:
        raise SpecError(err.message, where=where, key=err.key) from None
    except ValidationError as err:
        loc, msg = describe_error(err.errors()[0], SweepSpec)
        raise SpecError(msg, where=where, key=key_path(*loc) or None) from None
    try:
        validate_spec(spec)
    except SpecError as err:
        raise SpecError(err.message, where=where, key=err.key) from None
    return spec


def load_spec(path: str | Path) -> SweepBase:
    """Read a sweep file (safe YAML, duplicate keys rejected) and validate it; raises :class:`SpecError`.

    A relative ``dataset.root`` is resolved against the file's folder.
    """
    from orchestrator.spec.yaml_input import read_yaml

    path = Path(path)
    data = read_yaml(path)
    return parse_spec(data, where=str(path), base_dir=path.resolve().parent)


__all__ = [
    "CORE_KEYS",
    "DOMAIN_KINDS",
    "EMPTY_LOCATION",
    "PREREQUISITE_BLOCKS",
    "DatasetBlock",
    "Domain",
    "Evaluation",
    "Metric",
    "Reference",
    "Resources",
    "SweepBase",
    "SweepSpec",
    "TeacherBlock",
    "arch_problem",
    "distill_resolution",
    "join_storage",
    "keys_read_by",
    "load_spec",
    "needed_prerequisites",
    "owners_of",
    "parse_spec",
    "validate_spec",
]
