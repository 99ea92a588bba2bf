"""SRe²L's recover (Yin, Xing & Shen, NeurIPS 2023): diagonal statistics matching + CE.

UniDD writes SRe²L as (Eq. 4)

    ‖diag(XᵀX) − diag(X_sᵀX_s)‖ + ‖avg(X) − avg(X_s)‖ + L_ce(H_s, Y_s),

i.e. per-channel variance and mean matching at every layer — a diagonal-only, low-frequency
filter — with a classification loss in place of the class signal. Per layer the loss is
‖μ_s − μ‖₂ + ‖σ²_s − σ²‖₂ (unsquared, as in the SRe²L code), weighted by ``bn_weight``
(SRe²L's r_bn = 0.01) and summed over layers, plus the teacher's cross-entropy.

``sre2l_stats`` picks where the real μ, σ² come from:

* ``bn`` — the original: the running mean/variance of every ``BatchNorm2d`` of the teacher,
  matched at the BN layers' inputs (needs a BN teacher such as ResNet-18);
* ``conv`` — the UniDD form: the per-channel mean and diag(Ψ) of the real features at the
  inputs of the selected convolutions, streamed over the real set exactly like CFM's
  statistics (works for instance-norm teachers such as ConvNet);
* ``auto`` (default) — ``bn`` when the teacher has BatchNorm layers, else ``conv``.

The recover loop (batches, augmentation, optimiser, clipping) is CFM's, so the two differ
only in the objective. Each batch is matched on its own statistics (SRe²L has no EMU).
"""

from __future__ import annotations

from typing import get_args

import torch
from torch import Tensor, nn

from methods.context import DistillContext
from methods.datasets import RealData
from methods.recover.loop import BatchRecover
from methods.spectral import cached_real_statistics, channel_mean_var, select_convs
from methods.sre2l.options import SRe2LOptions, Sre2lStats

SRE2L_STATS = get_args(Sre2lStats)


class SRe2L(BatchRecover):
    """Mean/variance matching at every layer plus cross-entropy (SRe²L; UniDD Eq. 4)."""

    def __init__(self, options: SRe2LOptions) -> None:
        super().__init__(options)
        if options.sre2l_stats not in SRE2L_STATS:
            raise ValueError(f"sre2l_stats must be one of {', '.join(SRE2L_STATS)}, got {options.sre2l_stats!r}")
        self.real: list[tuple[Tensor, Tensor]] = []
        self.source = options.sre2l_stats
        self.stats_cache_hit = False

    def prepare_statistics(self, data: RealData, ctx: DistillContext) -> None:
        assert self.teacher is not None
        bns = [m for m in self.teacher.modules() if isinstance(m, nn.BatchNorm2d)]
        source = self.options.sre2l_stats
        if source == "auto":
            source = "bn" if bns else "conv"
        if source == "bn":
            if not bns:
                raise ValueError("sre2l_stats 'bn' needs a teacher with BatchNorm2d layers (use 'conv' or 'auto')")
            self.taps = list(bns)
            self.real = [(m.running_mean.detach().clone(), m.running_var.detach().clone()) for m in bns]  # type: ignore[union-attr]
        else:
            convs = select_convs(self.teacher, self.options.stat_layers, data.resolution)
            self.taps = [m for _, m in convs]
            moments, self.stats_cache_hit = cached_real_statistics(
                self.teacher, convs, data.train_x, data.train_y, self.num_classes, ctx, self.options.stat_batch
            )
            self.real = [(m.mean().float(), torch.diagonal(m.psi()).float()) for m in moments]
        self.source = source

    def batch_loss(self, inputs: list[Tensor], logits: Tensor, labels: Tensor, batch: int, step: int) -> Tensor:
        stats = logits.new_zeros(())
        for x, (mu, var) in zip(inputs, self.real, strict=True):
            mu_s, var_s = channel_mean_var(x)
            stats = stats + torch.linalg.vector_norm(mu_s - mu) + torch.linalg.vector_norm(var_s - var)
        return self.ce_term(logits, labels) + self.options.bn_weight * stats

    def row_fields(self) -> dict[str, object]:
        return {"bn_weight": self.options.bn_weight, "sre2l_stats": self.source}


__all__ = ["SRe2L", "SRe2LOptions"]
