"""``random``: IPC randomly chosen real images per class — the baseline every table needs."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from methods.context import DistillContext
from methods.objectives.base import OBJECTIVES, Objective, Phase
from methods.parameterizations import Parameterization


@dataclass
class RandomOptions:
    """The random baseline reads no hyper-parameters: its set is the seeded real initialisation."""


class RandomReal(Objective):
    """No optimisation: the synthetic set stays the seeded random real images it starts from."""

    name = "random"
    Options = RandomOptions

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        return []

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        raise RuntimeError("the random baseline has no loss")


OBJECTIVES.add("random", RandomReal)
