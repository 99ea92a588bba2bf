"""The objective contract and the pieces every distillation loop shares."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from methods.context import DistillContext
from methods.datasets import RealData
from methods.networks import Classifier
from methods.parameterizations import Parameterization
from methods.records import RowFields
from methods.registry import OBJECTIVES
from methods.seeding import seeded


@dataclass
class Phase:
    """A stretch of optimisation over a fixed set of instances.

    ``index`` are the (global) instance rows optimised, ``units`` the ownership unit of each
    row (a class for DM, an IPC batch for CFM): rank ``unit % world_size`` optimises that row.
    Every rank walks every phase in lockstep, so collectives inside a phase are safe.

    A **replicated** phase is for losses that do not split by row (trajectory matching, whose
    inner loop trains on every instance; gradient matching, whose network trains on the whole
    set between updates): every rank holds and decodes all of ``index``, computes its share of
    the loss (the objective splits the work by rank, e.g. trajectory ``t`` on rank
    ``t % world_size``; the shares sum to the loss), the loop sums the gradients over ranks
    (one all-reduce) before the step, and every rank takes the same step — so all ranks stay
    identical and ``units`` is not used.
    """

    key: int
    index: Tensor
    units: Tensor
    iterations: int
    replicated: bool = False

    def owned(self, ctx: DistillContext) -> Tensor:
        if self.replicated:
            return self.index
        return self.index[(self.units % ctx.world_size) == ctx.rank]


@dataclass
class OptimDefaults:
    """Optimiser settings an objective recommends (the sweep may override each)."""

    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"  # constant | cosine (over each phase)


class Objective(ABC):
    """A dataset-distillation objective.

    Lifecycle: ``prepare`` (once; statistics of the real data, streamed and all-reduced),
    then for each :class:`Phase` from ``phases``: ``begin_phase``, ``loss`` per step,
    ``end_phase``. Its entry (:class:`methods.registry.ObjectiveEntry`) declares, once, its name,
    its ``options`` dataclass (an instance is what the constructor receives) and the
    prerequisites it ``requires`` (:mod:`methods.prerequisites`: ``teacher``, ``experts``, …),
    which the orchestrator produces once and hands to :meth:`prepare` as ``needs``.
    """

    #: the registered name it was built under (:func:`build_objective` sets it)
    name: str = "objective"

    def __init__(self, options: Any) -> None:
        self.options = options

    def optim_defaults(self, param: Parameterization) -> OptimDefaults:
        return OptimDefaults()

    def prepare(self, data: RealData, ctx: DistillContext, needs: Mapping[str, Any]) -> None:
        """Compute what the objective needs from real data; ``needs`` holds the loaded prerequisites."""
        return None

    @staticmethod
    def need(needs: Mapping[str, Any], name: str, objective: str) -> Any:
        """``needs[name]``, or a clear error naming the missing prerequisite."""
        value = needs.get(name)
        if value is None:
            raise ValueError(f"objective {objective!r} needs the prerequisite {name!r}, but none was supplied")
        return value

    @abstractmethod
    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        """The optimisation schedule (empty for objectives that optimise nothing)."""

    def begin_phase(self, phase: Phase, ctx: DistillContext) -> None:
        return None

    @abstractmethod
    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        """Loss of the owned instances' decoded ``images`` (``labels`` alongside) at ``step``."""

    def after_step(self, param: Parameterization, index: Tensor, ctx: DistillContext) -> None:
        """Called after each optimiser step on the owned rows ``index`` (e.g. to clip pixels)."""
        return None

    def learnables(self) -> list[Tensor]:
        """Objective-owned tensors learnt alongside the set (e.g. TM's synthetic step size).

        Their gradients come from :meth:`loss`'s backward pass; in replicated phases the loop
        sums them over ranks with the set's gradients; the objective steps them itself in
        :meth:`after_step` (and checkpoints them in :meth:`state_dict`).
        """
        return []

    def end_phase(self, phase: Phase, param: Parameterization, ctx: DistillContext) -> None:
        return None

    def state_dict(self) -> dict[str, Tensor]:
        """Objective state to checkpoint (identical on every rank)."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        return None

    def row_fields(self) -> RowFields:
        """Result-row columns of what really ran, where it differs from the options as given (e.g. a
        setting resolved from ``auto``); they replace the option columns of the same name."""
        return {}


def build_objective(name: str, options: Any) -> Objective:
    """The objective registered as ``name`` (its entry's class), built with its ``options`` instance."""
    entry = OBJECTIVES.get(name)
    if not isinstance(options, entry.options):
        raise TypeError(f"objective {name!r} takes {entry.options.__name__}, got {type(options).__name__}")
    objective = entry.implementation()(options)
    objective.name = name
    return objective


def class_units(param: Parameterization) -> Tensor:
    """Ownership by class: the shard unit of class-wise objectives such as DM."""
    return param.labels.clone()


class FreshNetworks:
    """Draws a freshly initialised copy of a network per step, identically on every worker.

    The parameters are re-drawn on a CPU template under a fixed seed and copied to the
    device, so the draw does not depend on the device's random generator.
    """

    def __init__(self, net: Classifier, device: torch.device) -> None:
        self.template = net.cpu()
        self.net = copy.deepcopy(net).to(device)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def draw(self, seed: int) -> Classifier:
        with seeded(seed):
            for m in self.template.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset) and m is not self.template:
                    reset()
        self.net.load_state_dict(self.template.state_dict())
        return self.net


def unique_classes(labels: Tensor) -> Iterable[int]:
    return torch.unique(labels).tolist()
