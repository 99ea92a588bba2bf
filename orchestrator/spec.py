"""The sweep file: YAML (safe-loaded) → pydantic :class:`SweepSpec`, every error with its key path.

A sweep names one flat set of *hyper-parameters* (``ipc``, ``lr_images``, ``beta``,
``nf_width``…). ``method:`` fixes some; ``search:`` sweeps others, each with a domain.
Which keys exist is decided by the components the sweep uses (the distillation loop, the
objective, the parameterization), so a new objective's options are valid keys without
touching this file.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from methods.datasets import DATASETS, NEEDS_ROOT
from methods.distill import DistillSettings
from methods.evaluate import LABEL_MODES, EvalSettings
from methods.networks import NETWORKS
from methods.objectives import OBJECTIVES
from methods.options import check_types, field_names
from methods.parameterizations import PARAMETERIZATIONS
from orchestrator.errors import SpecError

DOMAIN_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
#: hyper-parameters every sweep may set, besides the chosen components' own options
CORE_KEYS = {"objective", "parameterization", "distill_arch", "ipc"} | field_names(DistillSettings)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetBlock(Strict):
    """``dataset:`` — which real data, at what resolution, and how it is split."""

    name: str = "digits"
    root: str | None = None
    resolution: int | None = Field(default=None, ge=1)
    train_per_class: int | None = Field(default=None, ge=2)
    test_per_class: int | None = Field(default=None, ge=1)
    val_per_class: int | None = Field(default=None, ge=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    test_fraction: float = Field(default=0.3, gt=0, lt=1)
    split_seed: int = 0
    # tm2 interim (until the spec rewrite builds this block from DatasetOptions): ZCA whitening
    zca: bool = False
    zca_eps: float = Field(default=0.1, gt=0)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(DATASETS.unknown_message(v))
        return v


class Domain(Strict):
    """One swept hyper-parameter: exactly one of grid / choice / uniform / loguniform / randint."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> Domain:
        set_kinds = [k for k in DOMAIN_KINDS if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(f"give exactly one of {', '.join(DOMAIN_KINDS)} (got {set_kinds or 'none'})")
        return self

    @field_validator("grid", "choice")
    @classmethod
    def _nonempty(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None and not v:
            raise ValueError("needs at least one value")
        return v

    @field_validator("uniform")
    @classmethod
    def _uniform(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"low must be < high (got {v[0]}, {v[1]})")
        return v

    @field_validator("loguniform")
    @classmethod
    def _log(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None:
            if v[0] <= 0:
                raise ValueError(f"low must be > 0 (got {v[0]})")
            if not v[0] < v[1]:
                raise ValueError(f"low must be < high (got {v[0]}, {v[1]})")
        return v

    @field_validator("randint")
    @classmethod
    def _randint(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
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
        bounds = getattr(self, self.kind)
        return list(bounds)


class Metric(Strict):
    name: str = "val_acc"
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


class Reference(Strict):
    """``evaluation.reference:`` — the full-data upper bound: each eval arch trained on all real data.

    Trained once per (dataset, arch, resolution, seed, these settings) and cached under
    ``<storage>/cache/reference``; ``reference: true`` takes every default (CIFAR-style
    SGD 0.05, cosine, crop + flip, 30 epochs; :class:`methods.real_training.RealTrainSettings`).
    """

    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=128, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=5e-4, ge=0)
    schedule: Literal["step", "cosine", "constant"] = "cosine"
    augment: str = "crop_flip"
    seeds: int | None = Field(default=None, ge=1)  # None: evaluation.seeds

    @field_validator("augment")
    @classmethod
    def _aug(cls, v: str) -> str:
        from methods.augment import parse_strategy

        parse_strategy(v)
        return v


class Evaluation(Strict):
    """``evaluation:`` — which students are trained on each distilled set, and how."""

    archs: list[str] = Field(default_factory=lambda: ["convnet_d3"], min_length=1)
    resolutions: list[int] | None = None  # None: the distillation resolution
    seeds: int = Field(default=2, ge=1)
    label_mode: list[str] | str = "hard"
    epochs: int = Field(default=300, ge=1)
    batch_size: int = Field(default=256, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=5e-4, ge=0)
    schedule: Literal["step", "cosine", "constant"] = "step"
    augment: str = EvalSettings.augment
    soft_augment: str = EvalSettings.soft_augment
    temperature: float = Field(default=4.0, gt=0)
    track_test: bool = False
    check_every: int = Field(default=0, ge=0)
    reference: Reference | None = None  # the full-data upper-bound row (``true`` for defaults)
    # tm2 interim (until the spec rewrite builds this block from EvalSettings): the preset's name
    # (a label here; the values are given explicitly) and TM's learned step size as the student lr
    preset: str | None = None
    lr_from_set: bool = False

    @field_validator("reference", mode="before")
    @classmethod
    def _reference(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        from methods.protocols import PRESETS

        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; known: {', '.join(PRESETS)}")
        return v

    @field_validator("archs")
    @classmethod
    def _archs(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in NETWORKS:
                raise ValueError(NETWORKS.unknown_message(a))
        return v

    @field_validator("resolutions")
    @classmethod
    def _res(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(r < 1 for r in v)):
            raise ValueError("needs one or more positive resolutions")
        return v

    @field_validator("label_mode")
    @classmethod
    def _modes(cls, v: list[str] | str) -> list[str] | str:
        for m in [v] if isinstance(v, str) else v:
            if m not in LABEL_MODES:
                raise ValueError(f"unknown label mode {m!r}; known: {', '.join(LABEL_MODES)}")
        return v

    @field_validator("augment", "soft_augment")
    @classmethod
    def _aug(cls, v: str) -> str:
        from methods.augment import parse_strategy

        parse_strategy(v)
        return v

    @property
    def label_modes(self) -> list[str]:
        return [self.label_mode] if isinstance(self.label_mode, str) else list(self.label_mode)


class TeacherBlock(Strict):
    """``teacher:`` — the squeeze step: a network trained on the real training split, used by
    recover objectives (``cfm``, ``sre2l``, …) and by ``label_mode: soft`` evaluation.

    ``preset`` starts from a CFM Table 2 configuration (``cifar10``, ``cifar100``,
    ``tiny_imagenet``); every training key given explicitly overrides it; unset keys fall back
    to ddx's real-training defaults. Trained once per content hash and cached in the storage
    root (see ``orchestrator/teachers.py``).
    """

    arch: str = "convnet_d3"
    preset: str | None = None
    seed: int = 0
    epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    lr: float | None = Field(default=None, gt=0)
    momentum: float | None = Field(default=None, ge=0, lt=1)
    weight_decay: float | None = Field(default=None, ge=0)
    schedule: Literal["step", "cosine", "constant"] | None = None
    augment: str | None = None

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str) -> str:
        if v not in NETWORKS:
            raise ValueError(NETWORKS.unknown_message(v))
        return v

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        from methods.squeeze import SQUEEZE_PRESETS

        if v is not None and v not in SQUEEZE_PRESETS:
            raise ValueError(f"unknown preset {v!r}; known: {', '.join(SQUEEZE_PRESETS)}")
        return v

    @field_validator("augment")
    @classmethod
    def _aug(cls, v: str | None) -> str | None:
        from methods.augment import parse_strategy

        if v is not None:
            parse_strategy(v)
        return v

    def settings(self) -> Any:
        """The :class:`methods.real_training.RealTrainSettings` this block describes."""
        from dataclasses import replace

        from methods.real_training import RealTrainSettings
        from methods.squeeze import SQUEEZE_PRESETS

        base = SQUEEZE_PRESETS[self.preset] if self.preset else RealTrainSettings()
        keys = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "augment")
        return replace(base, **{k: getattr(self, k) for k in keys if getattr(self, k) is not None})


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


class SweepSpec(Strict):
    """A whole sweep file (see README, "The sweep file", for every key)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    storage: str = "./ddx_results"
    dataset: DatasetBlock = Field(default_factory=DatasetBlock)
    method: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Domain] = Field(default_factory=dict)
    algorithm: Literal["grid", "optuna"] = "grid"
    num_samples: int = Field(default=1, ge=1)
    seed: int = 0
    metric: Metric = Field(default_factory=Metric)
    resources: Resources = Field(default_factory=Resources)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    teacher: TeacherBlock | None = None  # None: defaults, trained only when a trial needs it
    # tm2 interim (until the spec rewrite makes one block per registered prerequisite): the
    # ``experts:`` block, ExpertOptions' keys, kept as given (None: defaults)
    experts: dict[str, Any] | None = None
    scheduler: Scheduler | None = None  # None: every trial runs to the end
    tracking: Tracking = Field(default_factory=Tracking)

    @field_validator("experts")
    @classmethod
    def _experts(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        from pydantic import TypeAdapter

        from methods.tm_options import ExpertOptions

        known = field_names(ExpertOptions)
        for key in v:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown key {key!r}{hint}; known: {', '.join(sorted(known))}")
        TypeAdapter(ExpertOptions).validate_python(v)
        if v.get("arch") is not None and v["arch"] not in NETWORKS:
            raise ValueError(NETWORKS.unknown_message(str(v["arch"])))
        return v

    # --- derived views -------------------------------------------------------------------
    def hyper_values(self, key: str) -> list[Any]:
        """Every value ``key`` can take in this sweep (fixed or swept)."""
        if key in self.search:
            return self.search[key].samples()
        if key in self.method:
            return [self.method[key]]
        return []

    def config_hash(self) -> str:
        """Hash of everything that determines results (not storage, resources or trackers)."""
        body = self.model_dump(mode="json", exclude={"storage", "resources", "tracking"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def experiment_dir(self) -> str:
        return join_storage(self.storage, self.name)


def join_storage(storage: str, *parts: str) -> str:
    """``storage``/``parts``; a URI's query string (``?endpoint_override=…``) stays at the end
    (the same rule as :func:`orchestrator.storage.join`, without importing pyarrow here)."""
    if "://" in storage:
        head, sep, query = storage.partition("?")
        return "/".join([head.rstrip("/"), *parts]) + sep + query
    return str(Path(storage).joinpath(*parts))


# --- validation beyond field types ---------------------------------------------------------
def _components(spec: SweepSpec) -> tuple[list[str], list[str]]:
    objectives = spec.hyper_values("objective")
    params = spec.hyper_values("parameterization") or ["pixels"]
    if not objectives:
        raise SpecError("required: name an objective (method.objective or search.objective)", key="method")
    for key, names, reg in (("objective", objectives, OBJECTIVES), ("parameterization", params, PARAMETERIZATIONS)):
        for n in names:
            if not isinstance(n, str) or n not in reg:
                where = f"search.{key}" if key in spec.search else f"method.{key}"
                raise SpecError(reg.unknown_message(str(n)), key=where)
    return objectives, params


def _known_hyper_keys(objectives: list[str], params: list[str]) -> dict[str, list[type]]:
    """key → the option dataclasses that read it."""
    owners: dict[str, list[type]] = {k: [DistillSettings] for k in field_names(DistillSettings)}
    for k in ("objective", "parameterization", "distill_arch", "ipc"):
        owners.setdefault(k, [])
    for name in objectives:
        cls = OBJECTIVES.get(name).Options
        for k in field_names(cls):
            owners.setdefault(k, []).append(cls)
    for name in params:
        cls = getattr(PARAMETERIZATIONS.get(name), "Options", None)
        if cls is not None:
            for k in field_names(cls):
                owners.setdefault(k, []).append(cls)
    return owners


def keys_read_by(objective: str, parameterization: str) -> set[str]:
    """The hyper-parameter keys a trial with these components reads."""
    return set(_known_hyper_keys([objective], [parameterization]))


def _check_hyper(spec: SweepSpec) -> None:
    objectives, params = _components(spec)
    owners = _known_hyper_keys(objectives, params)
    for block, keys in (("method", list(spec.method)), ("search", list(spec.search))):
        for key in keys:
            if key not in owners:
                close = difflib.get_close_matches(key, list(owners), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SpecError(
                    f"unknown hyper-parameter{hint}; known for {'/'.join(objectives)} with "
                    f"{'/'.join(params)}: {', '.join(sorted(owners))}",
                    key=f"{block}.{key}",
                )
            if key in spec.method and key in spec.search:
                raise SpecError("set in both method and search; keep one", key=f"search.{key}")
    for key in set(spec.method) | set(spec.search):
        where = f"method.{key}" if key in spec.method else f"search.{key}.{spec.search[key].kind}"
        for value in spec.hyper_values(key):
            for cls in owners[key]:
                for _, problem in check_types(cls, {key: value}):
                    raise SpecError(problem, key=where)
            _check_range(key, value, where)
    if not spec.hyper_values("ipc"):
        raise SpecError("required: set ipc (method.ipc or search.ipc)", key="method")
    arch_values = spec.hyper_values("distill_arch")
    for arch in arch_values:
        if arch not in NETWORKS:
            raise SpecError(NETWORKS.unknown_message(str(arch)), key="method.distill_arch")


_POSITIVE = {"ipc", "lr_images", "batch_real", "iterations_per_batch"}
_NON_NEGATIVE = {"iterations", "momentum", "checkpoint_every", "progress_every"}


def _check_range(key: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if key in _POSITIVE and not value > 0:
        raise SpecError(f"must be > 0 (got {value})", key=where)
    if key in _NON_NEGATIVE and value < 0:
        raise SpecError(f"must be ≥ 0 (got {value})", key=where)
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"must be finite (got {value})", key=where)


def _check_algorithm(spec: SweepSpec) -> None:
    if spec.algorithm == "optuna":
        kinds = {d.kind for d in spec.search.values()}
        if "grid" in kinds and kinds != {"grid"}:
            raise SpecError(
                "optuna runs a grid only when every domain is a grid (GridSampler); use choice for the "
                "others or algorithm: grid",
                key="search",
            )


def _check_experts(spec: SweepSpec) -> None:
    """Every ``tm`` trial must find its epochs in the experts: ``max_start_epoch − 1 + expert_epochs``
    ≤ the last kept snapshot (``experts.keep_epochs`` / ``train_epochs``)."""
    if "tm" not in spec.hyper_values("objective"):
        return
    from methods.options import take
    from methods.tm_options import ExpertOptions, TMOptions

    kept = take(ExpertOptions, spec.experts or {}).epochs_trained
    defaults = TMOptions()
    starts = spec.hyper_values("max_start_epoch") or [defaults.max_start_epoch]
    spans = spec.hyper_values("expert_epochs") or [defaults.expert_epochs]
    for start, span in itertools.product(starts, spans):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, span)):
            continue  # not integers: left to the type checks
        need = start - 1 + span
        if need > kept:
            key = "experts.keep_epochs" if (spec.experts or {}).get("keep_epochs") is not None else "experts"
            raise SpecError(
                f"tm with max_start_epoch={start}, expert_epochs={span} reads expert epochs up to {need}, but "
                f"the experts keep epochs 0…{kept}; raise experts.train_epochs / keep_epochs to ≥ {need}",
                key=key,
            )


def _check_dataset(spec: SweepSpec) -> None:
    ds = spec.dataset
    if ds.name in NEEDS_ROOT:
        if not ds.root:
            raise SpecError(f"dataset {ds.name!r} needs a root folder", key="dataset.root")
        if "://" not in ds.root and not Path(ds.root).expanduser().exists():
            raise SpecError(
                f"folder {ds.root!r} does not exist (download the data or fix the path)", key="dataset.root"
            )


def _check_budget(spec: SweepSpec) -> None:
    """Every swept combination of ``ipc`` and parameterization options must fit ≥ 1 instance per class.

    Uses the dataset's known shape (no data is loaded); datasets whose size depends on the files
    (an ``imagefolder`` without ``dataset.resolution``) are checked when the set is built.
    """
    from methods.datasets import NATIVE_SHAPES

    channels, native = NATIVE_SHAPES.get(spec.dataset.name, (None, None))
    resolution = spec.dataset.resolution or native
    if channels is None or resolution is None:
        return
    for pname in spec.hyper_values("parameterization") or ["pixels"]:
        opt_cls = getattr(PARAMETERIZATIONS.get(pname), "Options", None)
        declared = [f.name for f in dataclasses.fields(opt_cls)] if opt_cls else []
        keys = [k for k in declared if spec.hyper_values(k)]  # declaration order: the main knob first
        for ipc in spec.hyper_values("ipc"):
            if isinstance(ipc, bool) or not isinstance(ipc, (int, float)):
                continue  # not a number: left to the type checks
            for combo in itertools.product(*(spec.hyper_values(k) for k in keys)):
                _check_one_budget(spec, pname, int(ipc), dict(zip(keys, combo, strict=True)), channels, resolution)


def _check_one_budget(
    spec: SweepSpec, pname: str, ipc: int, chosen: dict[str, Any], channels: int, resolution: int
) -> None:
    from methods.parameterizations import BudgetError, SetShape, check_budget
    from methods.pipeline import param_options

    cls = PARAMETERIZATIONS.get(pname)
    shape = SetShape(num_classes=1, ipc=ipc, channels=channels, resolution=resolution)
    options = param_options(pname, chosen)
    try:
        check_budget(cls, shape, options, pname)
        return
    except BudgetError:
        need = cls.scalars_per_instance(shape, options)
    except ValueError as err:  # an option the parameterization rejects (e.g. nf_width: 0)
        key = next(iter(chosen), "parameterization")
        where = f"search.{key}.{spec.search[key].kind}" if key in spec.search else f"method.{key}"
        raise SpecError(str(err), key=where) from None

    def size_without(k: str) -> int:
        return cls.scalars_per_instance(shape, param_options(pname, {x: v for x, v in chosen.items() if x != k}))

    sizing = [k for k in chosen if size_without(k) != need]  # the keys that set the instance's size
    blame = (sizing or list(chosen) or ["ipc"])[0]
    where = f"search.{blame}.{spec.search[blame].kind}" if blame in spec.search else f"method.{blame}"
    values = ", ".join(f"{k}={chosen[k]}" for k in sizing)
    raise SpecError(
        f"{pname}{' with ' + values if values else ''} fits 0 instances per class at ipc={ipc} on "
        f"{spec.dataset.name} ({channels}×{resolution}×{resolution}: {shape.budget_scalars} scalars per class; "
        f"one instance needs {need}); raise ipc or shrink the instance",
        key=where,
    )


def _format_pydantic(err: ValidationError) -> tuple[str, str]:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if e["type"] == "extra_forbidden":
        parent = e["loc"][:-1]
        fields = _fields_at(SweepSpec, parent)
        close = difflib.get_close_matches(str(e["loc"][-1]), fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = f"unknown key{hint}; known: {', '.join(fields)}"
    elif e["type"] == "missing":
        msg = "required"
    elif e["type"] in _BOUNDS:
        op, bound = _BOUNDS[e["type"]]
        msg = f"must be {op} {e.get('ctx', {}).get(bound)} (got {e.get('input')!r})"
    elif e["type"].endswith("_type") or e["type"].endswith("_parsing"):
        msg = f"{msg} (got {type(e.get('input')).__name__} {e.get('input')!r})"
    return loc, msg


_BOUNDS = {
    "greater_than_equal": ("≥", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("≤", "le"),
    "less_than": ("<", "lt"),
}


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
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
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            current = ann
            continue
        inner = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        current, skip_key = inner[0], True  # dict[str, Model]: the next part is a key
    return sorted(getattr(current, "model_fields", {}).keys())


def parse_spec(data: Any, where: str = "<spec>") -> SweepSpec:
    """Validate an already-parsed YAML document."""
    if not isinstance(data, dict):
        raise SpecError("the file must hold a mapping of keys (name, dataset, method, …)", where=where)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        loc, msg = _format_pydantic(err)
        raise SpecError(msg, where=where, key=loc or None) from None
    try:
        _check_hyper(spec)
        _check_algorithm(spec)
        _check_dataset(spec)
        _check_budget(spec)
        _check_experts(spec)
    except SpecError as err:
        err.where = where
        raise SpecError(err.message, where=where, key=err.key) from None
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep file with ``yaml.safe_load`` and validate it; raises :class:`SpecError`."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("no such file (give the path of a sweep YAML)", where=str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(f"invalid YAML at {at}: {problem}", where=str(path)) from None
    return parse_spec(data, where=str(path))
