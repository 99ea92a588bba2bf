"""The sweep file's model: its blocks as strict pydantic models, generated from the option dataclasses.

Which keys a block has, and what each may hold, is decided by the option dataclasses of the
methods (:mod:`orchestrator.spec.schema` turns them into pydantic): ``dataset:`` from
:class:`~methods.datasets.options.DatasetOptions`, ``evaluation:`` from
:class:`~methods.evaluation.options.EvalSettings`, ``evaluation.reference`` from
:class:`~methods.evaluation.real_training_options.RealTrainSettings`, and one optional top-level
block per registered prerequisite (``teacher:``, ``experts:``, a plugin's …) from its options.
``method:``/``search:`` name flat hyper-parameters whose owners depend on the components chosen;
:mod:`orchestrator.spec.trials` resolves them into typed trial configurations.

Torch- and Ray-free: ``ddx validate`` imports only this, pydantic, PyYAML and the option modules.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Len
from pydantic import Field, create_model, field_validator, model_validator

from methods.datasets.options import DatasetOptions
from methods.evaluation.options import EvalSettings, LabelMode
from methods.evaluation.protocol import Protocol
from methods.evaluation.real_training_options import RealTrainSettings
from methods.options import PositiveInt, Resolution, named
from methods.records import OptionValues
from methods.registry import PREREQUISITES
from orchestrator.cluster.ray_config import token_problem
from orchestrator.evaluation.jobs import StudentPlan
from orchestrator.spec.metrics import TrialMetric
from orchestrator.spec.schema import OptionsBlock, Strict, block_model, pydantic_type
from orchestrator.storage.uris import EMPTY_LOCATION, check_location

DOMAIN_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
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
        problem = None if v is None else token_problem(v)
        if problem is not None:
            raise ValueError(problem)
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
    #: also evaluate every set with augmentation off (the first label mode): DD-Ranking's ARS
    ars: bool = False

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

    def protocol(self) -> Protocol:
        """The settings students train with: the preset and the values the block gives (a preset's
        values the parse filled in count as given), typed."""
        given = {k: getattr(self, k) for k in type(self).__option_fields__ if k in self.model_fields_set}
        return Protocol.of({**given, "preset": getattr(self, "preset", None)})

    def students(self, first_seed: int) -> StudentPlan:
        """Which students each set gets (seeds ``first_seed``, ``first_seed + 1``, …)."""
        return StudentPlan(
            archs=tuple(self.archs),
            seeds=tuple(first_seed + i for i in range(self.seeds)),
            label_modes=tuple(self.label_mode),
            resolutions=tuple(self.resolutions) if self.resolutions else None,
            arch_epochs=tuple(sorted(self.arch_epochs.items())),
        )


Evaluation = block_model(
    EvalSettings,
    "Evaluation",
    base=_EvaluationKeys,
    exclude={"label_mode"},  # one per job: the block's label_mode lists them
    module=__name__,
    doc="``evaluation:`` — which students are trained on each distilled set, and how (EvalSettings).",
)


def _prerequisite_blocks() -> dict[str, type[OptionsBlock]]:
    """One block model per registered prerequisite, from its options (``experts`` → ``ExpertsBlock``)."""
    blocks = {}
    for entry in PREREQUISITES.entries():
        model_name = "".join(part.title() for part in entry.name.split("_")) + "Block"
        doc = f"``{entry.name}:`` — {(entry.options.__doc__ or '').strip()}"
        blocks[entry.name] = block_model(entry.options, model_name, module=__name__, doc=doc)
        globals()[model_name] = blocks[entry.name]  # importable by name: the model pickles
    return blocks


#: prerequisite name → its top-level block model (``experts`` → ``ExpertsBlock``)
PREREQUISITE_BLOCKS: dict[str, type[OptionsBlock]] = _prerequisite_blocks()


class SweepBase(Strict):
    """The keys of a sweep file other than the prerequisite blocks (see :data:`SweepSpec`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    storage: str = "./ddx_results"  # a folder (relative: to the current one) or a URI
    dataset: DatasetBlock = Field(default_factory=DatasetBlock)  # type: ignore[valid-type]
    method: OptionValues = Field(default_factory=dict)
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
        return check_location(v)

    # --- derived views -------------------------------------------------------------------
    def hyper_values(self, key: str) -> list[Any]:
        """Every value ``key`` can take in this sweep (fixed or swept)."""
        if key in self.search:
            return self.search[key].samples()
        if key in self.method:
            return [self.method[key]]
        return []

    def prerequisite(self, name: str) -> Any:
        """The ``name:`` block as given, or its defaults (``spec.prerequisite("experts").num_experts``)."""
        return getattr(self, name, None) or PREREQUISITE_BLOCKS[name]()

    def prerequisite_options(self, name: str) -> Any:
        """The options instance of prerequisite ``name`` (its block's, or the defaults)."""
        return self.prerequisite(name).options()

    def dataset_options(self) -> DatasetOptions:
        """The ``dataset:`` block as :class:`DatasetOptions` (``cache_dir`` unset: each node sets its own)."""
        return self.dataset.options()

    def config_hash(self) -> str:
        """Hash of everything that determines results (not storage, resources or trackers)."""
        unset = {p for p in PREREQUISITE_BLOCKS if getattr(self, p, None) is None}
        body = self.model_dump(mode="json", exclude={"storage", "resources", "tracking", *unset})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def experiment_dir(self) -> str:
        return join_storage(self.storage, self.name)


#: A whole sweep file (docs/sweep-file.md): :class:`SweepBase` plus one optional block per
#: prerequisite (None: its defaults, produced only when a trial needs it).
SweepSpec = create_model(
    "SweepSpec",
    __base__=SweepBase,
    __module__=__name__,
    __doc__="A whole sweep file (see docs/sweep-file.md for every key).",
    **{name: (block | None, None) for name, block in PREREQUISITE_BLOCKS.items()},  # type: ignore[dict-item]
)


def join_storage(storage: str, *parts: str) -> str:
    """``storage``/``parts``; a URI's query string (``?endpoint_override=…``) stays at the end
    (the same rule as :func:`orchestrator.storage.locations.join`, without importing pyarrow here)."""
    if "://" in storage:
        head, sep, query = storage.partition("?")
        return "/".join([head.rstrip("/"), *parts]) + sep + query
    return str(Path(storage).joinpath(*parts))


__all__ = [
    "DOMAIN_KINDS",
    "EMPTY_LOCATION",
    "MAX_COMBINATIONS",
    "PREREQUISITE_BLOCKS",
    "DatasetBlock",
    "Domain",
    "Evaluation",
    "Metric",
    "Reference",
    "Resources",
    "Scheduler",
    "SweepBase",
    "SweepSpec",
    "Tracking",
    "check_location",
    "join_storage",
]
