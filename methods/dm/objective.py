"""Distribution Matching (DM; Zhao & Bilen, WACV 2023).

Every iteration draws a freshly initialised network ψ and, per class c, minimises

    L_c = ‖ mean_{x∈B_c} ψ(A(x)) − mean_{s∈S_c} ψ(A(s)) ‖²

(DM Eq. 5, embeddings before the classifier), with A a Siamese DSA augmentation shared by
the real batch B_c and the synthetic images S_c: one draw for the whole class batch, as in
DatasetCondensation ``main_DM.py``, whose ``DiffAugment(…, seed=seed)`` calls (seed never −1)
set ``param.Siamese`` so every op of ``utils.py`` copies image 0's parameters to the batch, and
replay the same seeds on the synthetic images. In UniDD's terms this is the all-pass
filter f(λ)=1 on the class signal XᵀY. The loss is a sum over classes, so each class's
gradient is independent: workers shard by class and the result does not depend on their
number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from methods.augment.ops import DSA, siamese
from methods.context import DistillContext, seed_from
from methods.datasets import RealData
from methods.distill.objective import (
    FreshNetworks,
    Objective,
    OptimDefaults,
    Phase,
    class_units,
)
from methods.dm.options import DMOptions
from methods.networks import build_network
from methods.parameterizations import Parameterization


class DistributionMatching(Objective):
    def __init__(self, options: DMOptions) -> None:
        super().__init__(options)
        self.aug = DSA(options.augment, same_on_batch=True)
        self.data: RealData | None = None
        self.nets: FreshNetworks | None = None

    def optim_defaults(self, param: Parameterization) -> OptimDefaults:
        # DM's reference settings for pixels: SGD, lr 1.0, momentum 0.5, constant.
        return OptimDefaults(optimizer="sgd", lr=1.0, momentum=0.5, schedule="constant")

    def prepare(self, data: RealData, ctx: DistillContext, needs: Mapping[str, Any]) -> None:
        self.data = data
        net = build_network(self.options.distill_arch, data.channels, data.num_classes, data.resolution)
        self.nets = FreshNetworks(net, ctx.device)

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        index = torch.arange(param.num_instances)
        return [Phase(key=0, index=index, units=class_units(param), iterations=iterations)]

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        assert self.data is not None and self.nets is not None, "prepare() first"
        net = self.nets.draw(seed_from(ctx.seed, 0xD1, step))
        total = images.new_zeros(())
        for c in torch.unique(labels).tolist():
            real = self.data.sample_class(c, self.options.batch_real, ctx.generator(0xD2, step, c))
            real = real.to(images.device, non_blocking=True)
            syn = images[labels == c]
            real_a, syn_a = siamese(self.aug, seed_from(ctx.seed, 0xD3, step, c), real, syn)
            with torch.no_grad():
                mu_real = net.embed(real_a).mean(dim=0)
            mu_syn = net.embed(syn_a).mean(dim=0)
            total = total + ((mu_real - mu_syn) ** 2).sum()
        return total
