"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021) on normalised tensors.

Geometric operations come from kornia (differentiable ``grid_sample`` warps); the colour
operations are DSA's own formulas, written here because kornia's colour jitter clamps to
[0, 1], which would cut the gradient of normalised (and synthetic, unbounded) images.

Strategies are ``_``-joined op names, e.g. ``color_crop_cutout_flip_scale_rotate`` (DSA's
default). As in DSA, one op drawn at random is applied per call (``mode="single"``);
``mode="all"`` applies every op in turn.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from methods.context import seed_from

DSA_DEFAULT = "color_crop_cutout_flip_scale_rotate"
DSA_SCALE = 1.2
DSA_ROTATE_DEG = 15.0
DSA_CROP = 0.125
DSA_CUTOUT = 0.5
OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


class DSAColor(nn.Module):
    """DSA's brightness (±0.5), saturation (×[0, 2]) and contrast (×[0.5, 1.5]), unclipped."""

    def __init__(self, same_on_batch: bool) -> None:
        super().__init__()
        self.same_on_batch = same_on_batch

    def _rand(self, x: Tensor) -> Tensor:
        n = 1 if self.same_on_batch else x.shape[0]
        return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype).expand(x.shape[0], 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = x + (self._rand(x) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._rand(x) * 2.0) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._rand(x) + 0.5) + mean


def _op(name: str, same: bool) -> nn.Module:
    if name == "color":
        return DSAColor(same)
    if name == "crop":
        return K.RandomAffine(degrees=0.0, translate=(DSA_CROP, DSA_CROP), same_on_batch=same, p=1.0)
    if name == "cutout":
        area = DSA_CUTOUT**2
        return K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=0.0, same_on_batch=same, p=1.0)
    if name == "flip":
        return K.RandomHorizontalFlip(same_on_batch=same, p=0.5)
    if name == "scale":
        lo, hi = 1.0 / DSA_SCALE, DSA_SCALE
        return K.RandomAffine(degrees=0.0, scale=(lo, hi, lo, hi), same_on_batch=same, p=1.0)
    if name == "rotate":
        return K.RandomAffine(degrees=DSA_ROTATE_DEG, same_on_batch=same, p=1.0)
    raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(OPS)}")


def parse_strategy(strategy: str | None) -> list[str]:
    if not strategy or strategy.lower() == "none":
        return []
    ops = strategy.split("_")
    for op in ops:
        if op not in OPS:
            raise ValueError(f"unknown augmentation {op!r} in {strategy!r}; known: {', '.join(OPS)}")
    return ops


class DSA(nn.Module):
    """Apply a DSA strategy. ``same_on_batch`` shares one draw across the batch (Siamese use)."""

    def __init__(self, strategy: str | None = DSA_DEFAULT, same_on_batch: bool = False, mode: str = "single"):
        super().__init__()
        self.names = parse_strategy(strategy)
        self.ops = nn.ModuleList(_op(n, same_on_batch) for n in self.names)
        if mode not in ("single", "all"):
            raise ValueError(f"augmentation mode must be single or all, got {mode!r}")
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        if not self.ops:
            return x
        if self.mode == "all":
            for op in self.ops:
                x = op(x)
            return x
        pick = int(torch.randint(len(self.ops), (1,)).item())
        return self.ops[pick](x)


def augment_seeded(aug: DSA, seed: int, x: Tensor) -> Tensor:
    """``aug(x)`` under a forked RNG seeded by ``seed``: the same draw on every call and every worker.

    What lets a computation be replayed exactly (e.g. trajectory matching's constant-memory
    backward pass recomputes each inner step with the augmentation of its forward pass).
    """
    if not aug.ops:
        return x
    devices = [x.device] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed_from(seed))
        return aug(x)


def siamese(aug: DSA, seed: int, *batches: Tensor) -> list[Tensor]:
    """Augment several batches with one shared random draw (DSA's Siamese augmentation).

    The batches are concatenated so one same-on-batch draw covers them all; the draw is
    made under a forked RNG seeded by ``seed`` so every worker makes the same one.
    """
    if not aug.ops:
        return list(batches)
    out = augment_seeded(aug, seed, torch.cat(batches))
    return list(out.split([b.shape[0] for b in batches]))


__all__ = ["DSA", "DSA_DEFAULT", "OPS", "augment_seeded", "parse_strategy", "siamese"]
