"""Student-training settings (torch-free): the keys of a sweep's ``evaluation:`` block that
:func:`methods.evaluate.train_student` reads, and the label modes with what each needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from methods.augment_options import DSA_DEFAULT, AugmentStrategy
from methods.options import Momentum, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

#: ``hard``: cross-entropy on the synthetic labels; ``soft``: KL to a teacher's predictions
LabelMode = Literal["hard", "soft"]
LABEL_MODES: tuple[str, ...] = get_args(LabelMode)
#: the prerequisites (:mod:`methods.prerequisites`) each label mode needs
LABEL_MODE_REQUIRES: dict[str, tuple[str, ...]] = {"hard": (), "soft": ("teacher",)}
#: student optimisers
StudentOptimizer = Literal["sgd", "adam", "adamw"]
#: ``step``: ×0.1 at half-way (the DC/DM protocol); ``cosine``; ``constant``
StudentSchedule = Literal["step", "cosine", "constant"]


@dataclass
class EvalSettings:
    """Student-training settings (keys of a sweep's ``evaluation`` block; DC/DM defaults)."""

    epochs: PositiveInt = 300
    batch_size: PositiveInt = 256
    optimizer: StudentOptimizer = "sgd"
    lr: PositiveFloat = 0.01
    momentum: Momentum = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: StudentSchedule = "step"
    augment: AugmentStrategy = DSA_DEFAULT  # DSA strategy for hard labels; "none" disables
    soft_augment: AugmentStrategy = "crop_flip"  # augmentation under soft labels (teacher relabels each view)
    label_mode: LabelMode = "hard"
    temperature: PositiveFloat = 4.0
    track_test: bool = False  # also report max_over_test (labelled; not the default metric)
    check_every: NonNegativeInt = 0  # epochs between curve points; 0 → about 10 points


__all__ = [
    "LABEL_MODES",
    "LABEL_MODE_REQUIRES",
    "EvalSettings",
    "LabelMode",
    "StudentOptimizer",
    "StudentSchedule",
]
