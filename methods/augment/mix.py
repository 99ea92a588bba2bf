"""CutMix and Mixup of a batch with a random permutation of itself: the soft-label students' mixing
(:class:`BatchMix`), as the reference code mixes (SRe²L, UniDD). Every draw uses torch's global generator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class MixDraw:
    """One batch's CutMix/Mixup draw: partner ``perm[i]`` of image i, λ, and CutMix's box [x1, x2) × [y1, y2)
    along dims 2 and 3 (``None`` for Mixup)."""

    perm: Tensor
    lam: float
    box: tuple[int, int, int, int] | None = None


def cutmix_box(size_2: int, size_3: int, lam: float) -> tuple[int, int, int, int]:
    """The references' ``rand_bbox`` (SRe²L ``relabel/utils_fkd.py``, UniDD ``generate_soft_label_online.py``).

    Side int(size·√(1 − λ)) per axis, centre uniform on each axis, the box [c − side//2,
    c + side//2) clipped to the image: (x1, y1, x2, y2) with x along dim 2, y along dim 3.
    """
    rat = math.sqrt(1.0 - lam)
    cut_x, cut_y = int(size_2 * rat), int(size_3 * rat)
    cx = int(torch.randint(size_2, ()).item())
    cy = int(torch.randint(size_3, ()).item())

    def clip(v: int, hi: int) -> int:
        return min(max(v, 0), hi)

    return (clip(cx - cut_x // 2, size_2), clip(cy - cut_y // 2, size_3),
            clip(cx + cut_x // 2, size_2), clip(cy + cut_y // 2, size_3))  # fmt: skip


def apply_mix(x: Tensor, kind: str, draw: MixDraw) -> Tensor:
    """Mixup: λ·x + (1 − λ)·x[perm]; CutMix: ``x`` with the box pasted from x[perm] (the references' formulas)."""
    partner = x[draw.perm.to(x.device)]
    if kind == "mixup":
        return draw.lam * x + (1.0 - draw.lam) * partner
    assert draw.box is not None
    x1, y1, x2, y2 = draw.box
    out = x.clone()
    out[:, :, x1:x2, y1:y2] = partner[:, :, x1:x2, y1:y2]
    return out


class BatchMix(nn.Module):
    """CutMix or Mixup of a batch with a random permutation of itself, as the reference code does.

    SRe²L ``relabel_cifar.py`` (``mixup_data``) and ``relabel/utils_fkd.py`` (``cutmix``,
    ``mixup``), UniDD ``generate_soft_label_online.py`` (``cutmix``, ``mixup``): the partner
    of image i is ``torch.randperm(n)[i]`` — an image may be paired with itself — and
    λ ~ Beta(``alpha``, ``alpha``); CutMix pastes :func:`cutmix_box` from the partner. Applied
    to a batch with probability ``prob``. Only the images are returned: under soft labels the
    teacher relabels the mixed view, so a mixed label is not needed. Every draw uses torch's
    global generator (the references' λ and box come from NumPy's).
    """

    def __init__(self, kind: str, prob: float = 1.0, alpha: float = 1.0) -> None:
        super().__init__()
        if kind not in ("none", "cutmix", "mixup"):
            raise ValueError(f"mix must be none, cutmix or mixup, got {kind!r}")
        self.kind, self.prob, self.alpha = kind, prob, alpha

    def draw(self, x: Tensor) -> MixDraw:
        """Partner permutation, λ and (CutMix) box for batch ``x``, in that order."""
        perm = torch.randperm(x.shape[0])
        a = torch.tensor(float(self.alpha), dtype=torch.float64)
        lam = float(torch.distributions.Beta(a, a).sample())
        box = cutmix_box(int(x.shape[2]), int(x.shape[3]), lam) if self.kind == "cutmix" else None
        return MixDraw(perm, lam, box)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "none" or x.shape[0] < 2 or float(torch.rand(())) >= self.prob:
            return x
        return apply_mix(x, self.kind, self.draw(x))


__all__ = ["BatchMix", "MixDraw", "apply_mix", "cutmix_box"]
