"""Assemble a distillation from a flat dict of hyper-parameters (what one sweep trial holds).

This is the one place that maps names to components; the orchestrator's Train workers and
the in-process benchmarks both call it, so a trial and a direct run do the same work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from methods.context import DistillContext
from methods.datasets import RealData
from methods.distill.loop import CheckpointFn, DistillSettings, distill, init_from_real
from methods.distill.objective import OBJECTIVES, Objective
from methods.options import take
from methods.parameterizations import PARAMETERIZATIONS, ParamConfig, Parameterization, SetShape


@dataclass
class Components:
    param: Parameterization
    objective: Objective
    settings: DistillSettings


def param_options(name: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``hp`` the parameterization ``name`` declares in its ``Options``."""
    cls = getattr(PARAMETERIZATIONS.get(name), "Options", None)
    if cls is None:
        return {k: hp[k] for k in ("resize_mode",) if k in hp}
    return {k: v for k, v in vars(take(cls, hp)).items()}


def make_components(hp: dict[str, Any], data: RealData) -> Components:
    """Build the parameterization, objective and loop settings a trial's ``hp`` names."""
    pname = hp.get("parameterization", "pixels")
    smallest = int(torch.bincount(data.train_y, minlength=data.num_classes).min())
    if int(hp["ipc"]) > smallest:
        raise ValueError(
            f"ipc {hp['ipc']} is more than the {smallest} training images of {data.name}'s smallest class; "
            f"use ipc ≤ {smallest}"
        )
    shape = SetShape(data.num_classes, int(hp["ipc"]), data.channels, data.resolution, dataset=data.name)
    param = PARAMETERIZATIONS.get(pname)(ParamConfig(pname, shape, param_options(pname, hp)))
    obj_cls = OBJECTIVES.get(hp["objective"])
    objective = obj_cls(take(obj_cls.Options, hp))
    return Components(param, objective, take(DistillSettings, hp))


def run_distillation(
    hp: dict[str, Any],
    data: RealData,
    ctx: DistillContext,
    needs: Mapping[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> tuple[Parameterization, Objective, dict[str, float]]:
    """Initialise from real images and distil; the full set ends up on every rank.

    ``needs`` are the loaded prerequisites (``{"teacher": net, …}``) the objective declares.
    """
    c = make_components(hp, data)
    c.param.to(ctx.device)
    if resume is None:
        init_from_real(c.param, data, ctx)
    c.param.cache = ctx.cache
    summary = distill(c.param, c.objective, data, ctx, c.settings, needs, resume, on_checkpoint)
    return c.param, c.objective, summary
