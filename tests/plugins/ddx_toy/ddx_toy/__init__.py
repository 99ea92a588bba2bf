"""A toy ddx plugin, declared without torch: what ``ddx validate`` reads of it.

* the ``prototypes`` prerequisite: each class's mean training image (``prototypes:`` block);
* the ``toy_match`` objective: pulls every synthetic image toward its class prototype (it
  requires ``prototypes``; its options are sweep keys ``pull`` and ``norm``);
* the ``toy_mlp`` student network (≥ 4 px) and the ``toy_quick`` evaluation preset.

The torch code is in :mod:`ddx_toy.impl`, imported only when a component is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from methods.evaluation.presets import ProtocolPreset
from methods.options import OptionError, PositiveFloat, PositiveInt
from methods.registry import NetworkEntry, ObjectiveEntry, PrerequisiteEntry

if TYPE_CHECKING:
    from methods.distill.trial import TrialConfig


@dataclass(frozen=True)
class PrototypeOptions:
    """The ``prototypes:`` block: how many training images per class each mean is taken over."""

    samples_per_class: PositiveInt = 50
    seed: int = 0


@dataclass(frozen=True)
class ToyMatchOptions:
    """``toy_match``'s sweep keys: how hard each image is pulled, and the distance it minimises."""

    pull: PositiveFloat = 1.0
    norm: Literal["l2", "l1"] = "l2"

    def check_trial(self, trial: TrialConfig) -> None:
        """A prototype averages at least as many real images as the set keeps per class."""
        prototypes: PrototypeOptions = trial.prerequisite("prototypes")
        if prototypes.samples_per_class < trial.ipc:
            raise OptionError(
                f"toy_match needs prototypes.samples_per_class ≥ ipc ({prototypes.samples_per_class} < {trial.ipc})",
                key="prototypes.samples_per_class",
            )


ENTRIES = (
    PrerequisiteEntry("prototypes", "ddx_toy.impl:Prototypes", options=PrototypeOptions),
    ObjectiveEntry("toy_match", "ddx_toy.impl:ToyMatch", options=ToyMatchOptions, requires=("prototypes",)),
    NetworkEntry("toy_mlp", "ddx_toy.impl:build_mlp", min_resolution=4),
    ProtocolPreset(
        name="toy_quick",
        summary="A quick toy protocol: the MLP, Adam 1e-3, 5 epochs, no augmentation",
        source="ddx's plugin test (tests/plugins/ddx_toy)",
        settings={
            "epochs": 5,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 1e-3,
            "schedule": "constant",
            "augment": "none",
            "label_mode": "hard",
            "mix": "none",
        },
        archs=("toy_mlp",),
        seeds=1,
    ),
)
