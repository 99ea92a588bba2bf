"""Assemble and run one trial's distillation from its :class:`~methods.distill.trial.TrialConfig`.

The one place that turns a trial's typed configuration into components; the orchestrator's
distillation workers and the in-process benchmarks both call it, so a trial and a direct run do
the same work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from methods.context import DistillContext
from methods.datasets import RealData
from methods.distill.loop import CheckpointFn, DistillSettings, distill, init_from_real
from methods.distill.objective import Objective, build_objective
from methods.distill.trial import TrialConfig
from methods.parameterizations import ParamConfig, Parameterization, SetShape, build_parameterization
from methods.records import State


@dataclass
class Components:
    param: Parameterization
    objective: Objective
    settings: DistillSettings


def make_components(config: TrialConfig, data: RealData) -> Components:
    """Build the parameterization, objective and loop settings ``config`` names, for ``data``."""
    smallest = int(torch.bincount(data.train_y, minlength=data.num_classes).min())
    if config.ipc > smallest:
        raise ValueError(
            f"ipc {config.ipc} is more than the {smallest} training images of {data.name}'s smallest class; "
            f"use ipc ≤ {smallest}"
        )
    shape = SetShape(data.num_classes, config.ipc, data.channels, data.resolution, dataset=data.name)
    param = build_parameterization(ParamConfig(config.parameterization_name, shape, config.parameterization))
    objective = build_objective(config.objective_name, config.objective)
    return Components(param, objective, config.loop)


def run_distillation(
    config: TrialConfig,
    data: RealData,
    ctx: DistillContext,
    needs: Mapping[str, Any] | None = None,
    resume: State | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> tuple[Parameterization, Objective, dict[str, float]]:
    """Initialise from real images and distil; the full set ends up on every rank.

    ``needs`` are the loaded prerequisites (``{"teacher": net, …}``) the objective declares.
    """
    c = make_components(config, data)
    c.param.to(ctx.device)
    if resume is None:
        init_from_real(c.param, data, ctx)
    c.param.cache = ctx.cache
    summary = distill(c.param, c.objective, data, ctx, c.settings, needs, resume, on_checkpoint)
    return c.param, c.objective, summary


__all__ = ["Components", "make_components", "run_distillation"]
