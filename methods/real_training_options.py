"""Settings for training a network on real data (torch-free): teachers and the full-data reference."""

from __future__ import annotations

from dataclasses import dataclass, replace

from methods.augment_options import AugmentStrategy
from methods.evaluate_options import EvalSettings, StudentOptimizer, StudentSchedule
from methods.options import Momentum, NonNegativeFloat, PositiveFloat, PositiveInt


@dataclass
class RealTrainSettings:
    """Settings for training on real data (CIFAR-style defaults: SGD 0.05, cosine, crop + flip)."""

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 128
    optimizer: StudentOptimizer = "sgd"
    lr: PositiveFloat = 0.05
    momentum: Momentum = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: StudentSchedule = "cosine"
    augment: AugmentStrategy = "crop_flip"

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
            label_mode="hard",
        )


__all__ = ["RealTrainSettings"]
