"""The distillation loop's settings (torch-free): keys of a sweep's ``method:``/``search:`` block
that every objective shares. :mod:`methods.distill.loop` runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from methods.options import Momentum, NonNegativeInt, PositiveFloat, PositiveInt, named

#: optimisers of the synthetic set (the objective's default when unset)
DistillOptimizer = Literal["sgd", "adam"]
#: learning-rate schedules over each phase
DistillSchedule = Literal["constant", "cosine"]


@dataclass
class DistillSettings:
    """Loop settings shared by every objective (keys of a sweep's ``method`` block)."""

    iterations: NonNegativeInt = 200
    lr_images: PositiveFloat | None = None  # None: the objective's default for this parameterization
    optimizer: DistillOptimizer | None = None  # None: the objective's default
    momentum: Momentum | None = None
    schedule: DistillSchedule | None = None
    checkpoint_every: NonNegativeInt = 100
    progress_every: NonNegativeInt = 10
    #: every this many steps, train a quick probe student on the current set and report its
    #: validation accuracy (``probe_val_acc``; what early-stopping schedulers such as ASHA read);
    #: 0 disables probes
    probe_every: NonNegativeInt = 0
    probe_epochs: PositiveInt = 100
    probe_arch: Annotated[str, named("network")] = "convnet"  # ConvNet whose depth follows the resolution


__all__ = ["DistillOptimizer", "DistillSchedule", "DistillSettings"]
