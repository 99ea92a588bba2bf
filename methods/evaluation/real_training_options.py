"""Settings for training a network on real data (torch-free): teachers and the full-data reference."""

from __future__ import annotations

from dataclasses import dataclass, replace

from methods.augment.options import AugmentMode, AugmentStrategy
from methods.evaluation.options import EvalSettings, Optimizer, Schedule
from methods.options import Momentum, NonNegativeFloat, PositiveFloat, PositiveInt


@dataclass
class RealTrainSettings:
    """Settings for training on real data (CIFAR-style defaults: SGD 0.05, cosine, crop + flip).

    ``augment`` is applied with every group (``augment_mode: all``): ``crop_flip`` is the
    standard random crop (integer shift up to 1/8 of the side, zero fill) **and** horizontal
    flip on every batch — not DSA's one-op-per-batch rule, which is for synthetic sets.
    """

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 128
    optimizer: Optimizer = "sgd"
    lr: PositiveFloat = 0.05
    momentum: Momentum = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: Schedule = "cosine"
    augment: AugmentStrategy = "crop_flip"
    augment_mode: AugmentMode = "all"

    def as_eval(self) -> EvalSettings:
        return replace(
            EvalSettings(),
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            augment=self.augment,
            augment_mode=self.augment_mode,
            label_mode="hard",
        )


__all__ = ["RealTrainSettings"]
