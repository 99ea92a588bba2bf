"""The teacher's settings (torch-free): the ``teacher:`` block and CFM's Table 2 presets.

:mod:`methods.teacher.squeeze` trains the teacher from them (the ``teacher`` prerequisite).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, get_args

from methods.augment.options import AugmentStrategy
from methods.evaluation.options import Optimizer, Schedule
from methods.evaluation.real_training_options import RealTrainSettings
from methods.options import Momentum, NonNegativeFloat, PositiveFloat, PositiveInt, named

#: the CFM supplement's Table 2 squeeze configurations, by name
SqueezePreset = Literal["cifar10", "cifar100", "tiny_imagenet"]

#: CFM supplement Table 2 (squeeze configurations); ``augment`` in ddx's strategy vocabulary,
#: applied jointly (``augment_mode: all``): ``crop_flip`` = RandomCrop (integer shift, zero
#: fill) + HorizontalFlip on every batch, ``rrc_flip`` = RandomResizedCrop + HorizontalFlip
#: (Tiny-ImageNet and ImageNet in the paper).
SQUEEZE_PRESETS: dict[str, RealTrainSettings] = {
    "cifar10": RealTrainSettings(epochs=200, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
                                 weight_decay=5e-4, schedule="cosine", augment="crop_flip"),
    "cifar100": RealTrainSettings(epochs=100, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
                                  weight_decay=5e-4, schedule="cosine", augment="crop_flip"),
    "tiny_imagenet": RealTrainSettings(epochs=50, batch_size=256, optimizer="sgd", lr=0.2, momentum=0.9,
                                       weight_decay=1e-4, schedule="cosine", augment="rrc_flip"),
}  # fmt: skip
assert tuple(SQUEEZE_PRESETS) == get_args(SqueezePreset), "SqueezePreset must name every preset"


def preset_settings(preset: str, **overrides: Any) -> RealTrainSettings:
    """A Table 2 preset with some fields replaced."""
    if preset not in SQUEEZE_PRESETS:
        raise ValueError(f"unknown squeeze preset {preset!r}; known: {', '.join(SQUEEZE_PRESETS)}")
    return replace(SQUEEZE_PRESETS[preset], **overrides)


@dataclass
class TeacherOptions:
    """The ``teacher:`` block: network, seed, and a CFM Table 2 ``preset`` whose keys the
    explicit ones override (unset keys fall back to :class:`RealTrainSettings`'s defaults)."""

    arch: Annotated[str, named("network")] = "convnet_d3"
    preset: SqueezePreset | None = None
    seed: int = 0
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    optimizer: Optimizer | None = None
    lr: PositiveFloat | None = None
    momentum: Momentum | None = None
    weight_decay: NonNegativeFloat | None = None
    schedule: Schedule | None = None
    augment: AugmentStrategy | None = None

    def settings(self) -> RealTrainSettings:
        base = SQUEEZE_PRESETS[self.preset] if self.preset else RealTrainSettings()
        keys = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "augment")
        return replace(base, **{k: getattr(self, k) for k in keys if getattr(self, k) is not None})


__all__ = ["SQUEEZE_PRESETS", "SqueezePreset", "TeacherOptions", "preset_settings"]
