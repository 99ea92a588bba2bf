"""Parameterizations: how a synthetic set is stored and turned into images.

Every parameterization keeps its trainable tensors stacked along dimension 0, one row per
synthetic instance (pixels: one image; neural field: one field's weights). That single
convention is what lets any objective optimise any parameterization, lets workers shard
instances by row, and lets the set be gathered by a masked all-reduce.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from methods.artifacts import ArtifactCache
from methods.atomic import atomic_path
from methods.parameterizations.options import SetShape, instances_per_class
from methods.registry import PARAMETERIZATIONS
from methods.torch_files import load_torch

#: a synthetic set as plain data: ``config`` (:meth:`ParamConfig.to_dict`), ``state`` (CPU tensors) and
#: ``extra`` (metadata: the distillation's summary, the objective's row fields, display statistics…)
Payload = dict[str, Any]


class BudgetError(ValueError):
    """A storage budget that cannot hold a single instance per class."""


@dataclass(frozen=True)
class ParamConfig:
    """Everything needed to rebuild a parameterization (saved with every synthetic set).

    ``options``: an instance of the parameterization's ``Options`` (its entry's); None takes
    every default.
    """

    name: str
    shape: SetShape
    options: Any = None

    def __post_init__(self) -> None:
        if self.options is None:
            object.__setattr__(self, "options", PARAMETERIZATIONS.get(self.name).options())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what a saved set holds, loadable with ``weights_only=True``)."""
        return {"name": self.name, "shape": asdict(self.shape), "options": asdict(self.options)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParamConfig:
        """The inverse of :meth:`to_dict`; options a set saved before a field existed take its default."""
        options = PARAMETERIZATIONS.get(d["name"]).options(**d.get("options", {}))
        return cls(d["name"], SetShape(**d["shape"]), options)


class Parameterization(nn.Module, ABC):
    """Trainable storage of a synthetic set with instances stacked along dim 0."""

    #: how :meth:`decode` reaches a resolution other than the stored one
    resize_mode: str = "none"
    #: where initialisations that are worth reusing (e.g. field warm-ups) are cached; set by the pipeline
    #: (the distillation context's cache); None: a parameterization that caches uses this node's
    #: artifact cache, :func:`methods.artifacts.node_cache`
    cache: ArtifactCache | None = None

    def __init__(self, config: ParamConfig) -> None:
        super().__init__()
        self.config = config
        per_class = check_budget(type(self), config.shape, config.options, config.name)
        labels = torch.arange(config.shape.num_classes).repeat_interleave(per_class)
        self.register_buffer("labels", labels, persistent=True)

    @classmethod
    def instances_per_class(cls, shape: SetShape, options: Any) -> int:
        """Instances per class that fit the budget: ⌊IPC · (values of one real instance) / scalars per instance⌋.

        The one budget rule shared by every parameterization (DDiF Table 8 for fields; exactly
        IPC for pixels).
        """
        return instances_per_class(shape, cls.scalars_per_instance(shape, options))

    @classmethod
    @abstractmethod
    def scalars_per_instance(cls, shape: SetShape, options: Any) -> int:
        """Stored scalars of one instance (the entry's ``scalars`` function)."""

    @abstractmethod
    def decode(self, resolution: int | None = None, index: Tensor | None = None) -> Tensor:
        """Images ``(n, C, r, r)`` of the instances ``index`` (all if None), differentiably."""

    @abstractmethod
    def init_from_real(self, images: Tensor) -> None:
        """Initialise every instance from one real image each (``images`` is ``(N, C, H, W)``)."""

    def optim_defaults(self, objective: str) -> dict[str, str | float]:
        """Optimiser settings this parameterization needs whatever the objective recommends.

        Keys are :class:`methods.distill.objective.OptimDefaults` fields; they override the
        objective's defaults (which are tuned for pixels) and are overridden by the sweep.
        """
        return {}

    @property
    def num_instances(self) -> int:
        return int(self.labels.numel())

    @property
    def per_class(self) -> int:
        return self.num_instances // self.config.shape.num_classes

    def budget_used_per_class(self) -> int:
        """Stored scalars per class actually used (≤ the budget)."""
        return self.per_class * self.scalars_per_instance(self.config.shape, self.config.options)

    def instance_tensors(self) -> dict[str, Tensor]:
        """State tensors with one row per instance (what sharding masks and gathers)."""
        return {k: v for k, v in self.state_dict().items() if k != "labels"}

    def describe(self) -> dict[str, str | int]:
        """Columns for a result row."""
        return {
            "parameterization": self.config.name,
            "budget_scalars": self.config.shape.budget_scalars,
            "instances_per_class": self.per_class,
            "resize_mode": self.resize_mode,
        }


def check_budget(cls: type[Parameterization], shape: SetShape, options: Any, name: str | None = None) -> int:
    """Instances per class of ``cls`` under ``shape``'s budget; :class:`BudgetError` if none fit.

    Called when a parameterization is built and by the sweep validator (before any work).
    """
    per_class = cls.instances_per_class(shape, options)
    if per_class < 1:
        need = cls.scalars_per_instance(shape, options)
        raise BudgetError(
            f"{name or cls.__name__} with {options} fits 0 instances per class in a budget "
            f"of IPC={shape.ipc} ({shape.budget_scalars} scalars per class; one instance needs {need}); "
            "raise the IPC or shrink the instance"
        )
    return per_class


def build_parameterization(config: ParamConfig) -> Parameterization:
    """The parameterization ``config`` names (its entry's class), empty: initialise or load it next."""
    return PARAMETERIZATIONS.get(config.name).implementation()(config)


def synthetic_payload(param: Parameterization, extra: Mapping[str, Any] | None = None) -> Payload:
    """A synthetic set as plain data: config, CPU tensors and metadata (what is saved)."""
    return {
        "config": param.config.to_dict(),
        "state": {k: v.detach().cpu().clone() for k, v in param.state_dict().items()},
        "extra": dict(extra or {}),
    }


def save_synthetic(param: Parameterization, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write a synthetic set atomically (temp file + rename); loadable with ``weights_only=True``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = payload_bytes(synthetic_payload(param, extra))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def payload_bytes(payload: Payload) -> bytes:
    """A payload (a set from :func:`synthetic_payload`, or any dict of tensors and plain data) as
    the bytes of a ``torch.save`` file, for storage URIs and Ray's object store."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def payload_from_bytes(data: bytes) -> Payload:
    """The inverse of :func:`payload_bytes` (``torch.load(weights_only=True)``, on the CPU); bytes that
    are no torch file raise :class:`~methods.torch_files.NotATorchFile` saying what they are."""
    return load_torch(data)


def from_payload(payload: Payload) -> Parameterization:
    param = build_parameterization(ParamConfig.from_dict(payload["config"]))
    param.load_state_dict(payload["state"])
    return param


def load_synthetic(path: str | Path) -> tuple[Parameterization, Payload]:
    """Load a set written by :func:`save_synthetic` (``torch.load(weights_only=True)``)."""
    payload = payload_from_bytes(Path(path).read_bytes())
    return from_payload(payload), payload.get("extra", {})
