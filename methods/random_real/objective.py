"""``random``: IPC randomly chosen real images per class — the baseline every table needs."""

from __future__ import annotations

from torch import Tensor

from methods.context import DistillContext
from methods.distill.objective import Objective, Phase
from methods.parameterizations import Parameterization


class RandomReal(Objective):
    """No optimisation: the synthetic set stays the seeded random real images it starts from."""

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        return []

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        raise RuntimeError("the random baseline has no loss")
