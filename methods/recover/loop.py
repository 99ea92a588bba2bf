"""The *recover* step of squeeze → recover → relabel (SRe²L; UniDD/CFM Algorithm 1).

A trained teacher (the squeeze step) is fixed; synthetic images, initialised from random real
images, are optimised one *IPC batch* at a time — batch b holds the b-th image of every class —
for ``iterations_per_batch`` steps (Adam lr 0.25, betas (0.5, 0.9), cosine schedule: the
CFM supplement's Table 3), each step on a RandomResizedCrop + horizontal-flip view of the
batch (kornia, resampled as torchvision's ``RandomResizedCrop``:
:func:`methods.augment.ops.resized_crop`), with pixels clipped to the valid range after each step
(as in the SRe²L code; not on ZCA-whitened data, where [0, 1] pixels are no per-channel box).

Work sharing: the batches are grouped into *rounds* of ``round_size`` consecutive batches
(0 → the number of workers W); one round is one :class:`~methods.distill.objective.Phase`,
batch b is owned by rank ``b % W``, and all ranks walk the rounds in lockstep. Every random
draw is seeded by (seed, batch, step), and each batch's loss depends only on its own images
and on state fixed at the start of the round, so for a fixed ``round_size`` the result does
not depend on W. Subclasses define the statistics and the per-batch loss.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.augment.ops import resized_crop
from methods.context import DistillContext, seed_from
from methods.datasets import RealData
from methods.distill.objective import Objective, OptimDefaults, Phase
from methods.networks import Classifier
from methods.parameterizations import Parameterization
from methods.parameterizations.pixels import Pixels
from methods.recover.options import RecoverOptions
from methods.seeding import seeded


def batch_of_rows(labels: Tensor) -> Tensor:
    """The IPC batch of every instance row: its rank among the rows of its class."""
    batch = torch.empty_like(labels)
    for c in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == c).flatten()
        batch[rows] = torch.arange(len(rows), device=labels.device)
    return batch


class BatchRecover(Objective):
    """Batch-wise recover against a teacher; subclasses supply statistics and the loss."""

    def __init__(self, options: RecoverOptions) -> None:
        super().__init__(options)
        if options.iterations_per_batch < 0:
            raise ValueError(f"iterations_per_batch must be ≥ 0, got {options.iterations_per_batch}")
        if not 0.0 < options.crop_min_scale <= 1.0:
            raise ValueError(f"crop_min_scale must be in (0, 1], got {options.crop_min_scale}")
        if options.round_size < 0:
            raise ValueError(f"round_size must be ≥ 0 (0: one batch per worker), got {options.round_size}")
        self.teacher: Classifier | None = None
        self.taps: list[nn.Module] = []
        self.num_classes = 0
        self.num_batches = 0
        self.device = torch.device("cpu")
        self.aug: nn.Module | None = None
        self.lo: Tensor | None = None
        self.hi: Tensor | None = None

    def optim_defaults(self, param: Parameterization) -> OptimDefaults:
        return OptimDefaults(optimizer="adam", lr=0.25, betas=(0.5, 0.9), schedule="cosine")

    # --- lifecycle ----------------------------------------------------------------------
    def prepare(self, data: RealData, ctx: DistillContext, needs: Mapping[str, Any]) -> None:
        teacher: Classifier = self.need(needs, "teacher", self.name)
        self.device = ctx.device
        self.teacher = copy.deepcopy(teacher).to(ctx.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.num_classes = data.num_classes
        r = data.resolution
        # torchvision's RandomResizedCrop arithmetic (the SRe2L/UniDD recover scripts'): augment.ops.resized_crop
        self.aug = nn.Sequential(resized_crop((r, r), self.options.crop_min_scale), K.RandomHorizontalFlip())
        if data.zca:  # whitened images: the [0, 1] pixel box is no per-channel range there, so nothing is clipped
            self.lo = self.hi = None
        else:
            mean = torch.tensor(data.mean, device=ctx.device).view(1, -1, 1, 1)
            std = torch.tensor(data.std, device=ctx.device).view(1, -1, 1, 1)
            self.lo, self.hi = (0.0 - mean) / std, (1.0 - mean) / std
        self.prepare_statistics(data, ctx)

    @abstractmethod
    def prepare_statistics(self, data: RealData, ctx: DistillContext) -> None:
        """Compute (or load) the real statistics and set ``self.taps``, the hooked modules."""

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        batch = batch_of_rows(param.labels.cpu())
        self.num_batches = int(batch.max()) + 1 if batch.numel() else 0
        size = self.options.round_size or ctx.world_size
        out = []
        for r, start in enumerate(range(0, self.num_batches, size)):
            index = torch.nonzero((batch >= start) & (batch < start + size)).flatten()
            out.append(Phase(key=r, index=index, units=batch[index], iterations=self.options.iterations_per_batch))
        return out

    def owned_units(self, phase: Phase, ctx: DistillContext) -> Tensor:
        """The IPC batch of each owned row, in the order of ``phase.owned(ctx)``."""
        return phase.units[(phase.units % ctx.world_size) == ctx.rank]

    def augment(self, x: Tensor, seed: int) -> Tensor:
        """RandomResizedCrop + flip with a draw seeded by ``seed`` (the same on every worker)."""
        assert self.aug is not None
        with seeded(seed, x.device):
            return self.aug(x)

    def forward_taps(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Teacher logits of ``x`` and the inputs of the hooked modules."""
        assert self.teacher is not None
        from methods.spectral import conv_inputs

        with conv_inputs(self.taps) as slots:
            logits = self.teacher(x)
        missing = [i for i, s in enumerate(slots) if s is None]
        if missing:
            raise RuntimeError(f"hooked layers {missing} were not reached by the teacher's forward pass")
        return logits, [s for s in slots if s is not None]

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        units = self.owned_units(phase, ctx).to(images.device)
        total = images.new_zeros((), dtype=torch.float64)
        for b in torch.unique(units).tolist():
            sel = units == b
            view = self.augment(images[sel], seed_from(ctx.seed, 0x5E2, b, step))
            logits, inputs = self.forward_taps(view)
            total = total + self.batch_loss(inputs, logits, labels[sel], int(b), step)
        return total

    def ce_term(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits, labels) if self.options.use_ce else logits.new_zeros(())

    @abstractmethod
    def batch_loss(self, inputs: list[Tensor], logits: Tensor, labels: Tensor, batch: int, step: int) -> Tensor:
        """The loss of one IPC batch from its hooked layer inputs and teacher logits."""

    def after_step(self, param: Parameterization, index: Tensor, ctx: DistillContext) -> None:
        """Clip the stored pixels of the owned rows to the valid [0, 1] range (normalised; not on ZCA data)."""
        if not self.options.clip or not isinstance(param, Pixels) or self.lo is None or self.hi is None:
            return
        with torch.no_grad():
            rows = param.images[index]
            param.images[index] = torch.maximum(torch.minimum(rows, self.hi), self.lo)


__all__ = ["BatchRecover", "RecoverOptions", "batch_of_rows"]
