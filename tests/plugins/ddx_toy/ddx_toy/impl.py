"""The toy plugin's torch code: its prerequisite, objective and network."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from methods.context import DistillContext
from methods.datasets import RealData
from methods.distill.objective import Objective, Phase, class_units
from methods.networks.base import Classifier
from methods.parameterizations import Parameterization
from methods.prerequisites import Prerequisite, dataset_identity


class Prototypes(Prerequisite):
    """Each class's mean training image over ``samples_per_class`` seeded images: one file."""

    def describe(self, dataset: Any, unit: int) -> dict[str, Any]:
        return {"dataset": dataset_identity(dataset), "n": self.options.samples_per_class, "seed": self.options.seed}

    def produce(self, data: RealData, unit: int, out: Path, device: torch.device) -> None:
        g = torch.Generator().manual_seed(self.options.seed)
        means = [data.sample_class(c, self.options.samples_per_class, g).mean(dim=0) for c in range(data.num_classes)]
        torch.save({"means": torch.stack(means), "n": self.options.samples_per_class}, out)

    def load(self, paths: list[Path], device: torch.device) -> Tensor:
        return torch.load(paths[0], map_location=device, weights_only=True)["means"]

    def row_fields(self, paths: list[Path]) -> dict[str, Any]:
        return {"prototype_samples": int(torch.load(paths[0], weights_only=True)["n"])}


class ToyMatch(Objective):
    """Minimise the distance of every synthetic image to its class prototype (× ``pull``)."""

    def prepare(self, data: RealData, ctx: DistillContext, needs: Mapping[str, Any]) -> None:
        self.means = self.need(needs, "prototypes", self.name).to(ctx.device)
        self.last = float("nan")

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        index = torch.arange(param.num_instances)
        return [Phase(key=0, index=index, units=class_units(param), iterations=iterations)]

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        diff = images - self.means[labels]
        per_image = diff.pow(2).mean(dim=(1, 2, 3)) if self.options.norm == "l2" else diff.abs().mean(dim=(1, 2, 3))
        self.last = float(per_image.mean().detach())
        return self.options.pull * per_image.sum()

    def row_fields(self) -> dict[str, Any]:
        return {"toy_final_distance": self.last}


def build_mlp(channels: int, num_classes: int, resolution: int) -> Classifier:
    """Flatten → Linear(64) → ReLU, then the linear head."""
    features = nn.Sequential(nn.Flatten(1), nn.Linear(channels * resolution * resolution, 64), nn.ReLU())
    return Classifier(features, 64, num_classes)
