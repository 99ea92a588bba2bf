"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021) as the reference code
defines it, on normalised tensors, plus the soft-label views (RandomResizedCrop, CutMix, Mixup).

Every op is differentiable with respect to its input (synthetic images get gradients through
all of them) and draws its parameters from torch's global generator, so a forked, seeded
generator reproduces a draw (:func:`siamese`). ``same_on_batch`` shares one draw across the
batch. The ops, with the reference's parameters (``ParamDiffAug``):

* ``crop`` — an **integer** translation of the image by (dy, dx), each uniform in
  {−s, …, s} with s = round(0.125 · side) (4 px at 32 px); pixels moved in from outside are
  zeros (DSA's ``rand_crop``: zeros of the normalised tensor, i.e. the dataset mean) or, given
  a per-channel ``crop_fill``, that value (a black pixel (0 − mean)/std: torchvision's
  ``RandomCrop(32, padding=4)`` on [0, 1] images before ``Normalize``, SRe²L's
  ``relabel_cifar.py``). Output pixels are exact copies of input pixels (plain tensor indexing,
  no resampling).
* ``cutout`` — a square of round(0.5 · side) pixels is zeroed; its centre is uniform over
  {0, …, side} (the reference's ``randint(0, side + 1 − size % 2)``) and the square is clipped
  at the borders, so less than a quarter of the image is erased on average (18.6 % at 32 px).
* ``scale`` — the sampling grid is scaled by (sx, sy), each uniform in [1/1.2, 1.2], about the
  centre (zero padding, bilinear): kornia's ``scale`` with image zoom 1/s.
* ``rotate`` — the sampling grid is rotated by θ uniform in [−15°, 15°] (kornia's ``rotate``).
* ``flip`` — horizontal flip with probability 0.5 (kornia).
* ``color`` — brightness (+U[−0.5, 0.5]), saturation (×U[0, 2] about the channel mean) and
  contrast (×U[0.5, 1.5] about the image mean), unclipped: DSA's formulas, written here
  because kornia's colour jitter clamps to [0, 1], which would cut the gradient of normalised
  (and synthetic, unbounded) images.
* ``rrc`` — RandomResizedCrop back to the input size, area scale in [``rrc_min_scale``, 1],
  aspect ratio in [3/4, 4/3] (kornia, box sliced out then resized bilinearly with
  ``align_corners=False``: torchvision's ``resized_crop``, which the references' ``transforms.
  RandomResizedCrop`` runs, to float rounding for the same box; :func:`resized_crop`).

Strategies and modes (one group per call, or all groups) are described in
:mod:`methods.augment.options`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia.augmentation as K
import torch
from kornia.geometry.transform import rotate as k_rotate
from kornia.geometry.transform import scale as k_scale
from torch import Tensor, nn

from methods.augment.options import (
    DSA_BRIGHTNESS,
    DSA_CONTRAST,
    DSA_CROP,
    DSA_CUTOUT,
    DSA_DEFAULT,
    DSA_FLIP_P,
    DSA_ROTATE_DEG,
    DSA_SATURATION,
    DSA_SCALE,
    OPS,
    check_mode,
    parse_groups,
    parse_strategy,
)
from methods.context import seed_from
from methods.seeding import seeded


def _draw(n: int, same: bool, sample: Tensor) -> Tensor:
    """``sample`` (one row per image) with the first row repeated when ``same`` (one draw per batch)."""
    return sample[:1].expand(n, *sample.shape[1:]) if same else sample


def _uniform(n: int, lo: float, hi: float, same: bool, x: Tensor) -> Tensor:
    return _draw(n, same, torch.rand(n, device=x.device) * (hi - lo) + lo)


def half_width(side: int, ratio: float) -> int:
    """The reference's ``int(side · ratio + 0.5)`` (round half up)."""
    return int(side * ratio + 0.5)


def integer_shift(x: Tensor, dy: Tensor, dx: Tensor, fill: Tensor | None = None) -> Tensor:
    """Translate image ``i`` so output pixel (r, c) is input pixel (r + dy[i], c + dx[i]).

    Pixels from outside the image are zeros, or ``fill`` (one value per channel).
    """
    n, c, h, w = x.shape
    pad = int(max(dy.abs().max().item(), dx.abs().max().item(), 0))
    if fill is None:
        xp = nn.functional.pad(x, (pad, pad, pad, pad))
    else:  # the input's values copied into a canvas of the fill (exact: no arithmetic on them)
        xp = fill.to(x.device, x.dtype).view(1, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
        xp[:, :, pad : pad + h, pad : pad + w] = x
    rows = torch.arange(h, device=x.device)[None, :] + pad + dy.view(-1, 1)  # (n, h)
    cols = torch.arange(w, device=x.device)[None, :] + pad + dx.view(-1, 1)  # (n, w)
    batch = torch.arange(n, device=x.device).view(-1, 1, 1)
    out = xp[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c): advanced indices first
    return out.permute(0, 3, 1, 2).contiguous()


class DSACrop(nn.Module):
    """Integer translation by up to round(``ratio`` · side) pixels per axis; zero fill or per-channel ``fill``."""

    def __init__(self, same_on_batch: bool, ratio: float = DSA_CROP, fill: Tensor | None = None) -> None:
        super().__init__()
        self.same_on_batch, self.ratio = same_on_batch, ratio
        self.fill = None if fill is None else torch.as_tensor(fill, dtype=torch.float32).flatten()

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        sh, sw = half_width(h, self.ratio), half_width(w, self.ratio)
        dy = _draw(n, self.same_on_batch, torch.randint(-sh, sh + 1, (n,), device=x.device))
        dx = _draw(n, self.same_on_batch, torch.randint(-sw, sw + 1, (n,), device=x.device))
        return integer_shift(x, dy, dx, self.fill)


def cutout_span(side: int, ratio: float, centre: Tensor) -> tuple[Tensor, Tensor]:
    """[lo, hi) of the cutout along one axis for each centre (before clipping to [0, side))."""
    size = half_width(side, ratio)
    lo = centre - size // 2
    return lo, lo + size


class DSACutout(nn.Module):
    """Zero a square of round(``ratio`` · side) pixels centred anywhere, clipped at the borders."""

    def __init__(self, same_on_batch: bool, ratio: float = DSA_CUTOUT) -> None:
        super().__init__()
        self.same_on_batch, self.ratio = same_on_batch, ratio

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        masks = []
        for side in (h, w):
            size = half_width(side, self.ratio)
            centre = _draw(n, self.same_on_batch, torch.randint(0, side + 1 - size % 2, (n,), device=x.device))
            lo, hi = cutout_span(side, self.ratio, centre)
            pos = torch.arange(side, device=x.device)[None, :]
            masks.append((pos >= lo[:, None]) & (pos < hi[:, None]))  # (n, side)
        erased = masks[0][:, :, None] & masks[1][:, None, :]
        return x * (~erased).to(x.dtype)[:, None]


class DSAScale(nn.Module):
    """Scale the sampling grid by (sx, sy) ~ U[1/ratio, ratio]² about the centre."""

    def __init__(self, same_on_batch: bool, ratio: float = DSA_SCALE) -> None:
        super().__init__()
        self.same_on_batch, self.ratio = same_on_batch, ratio

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        sx = _uniform(n, 1.0 / self.ratio, self.ratio, self.same_on_batch, x)
        sy = _uniform(n, 1.0 / self.ratio, self.ratio, self.same_on_batch, x)
        return scale_grid(x, sx, sy)


def scale_grid(x: Tensor, sx: Tensor, sy: Tensor) -> Tensor:
    """Resample ``x`` on a grid scaled by (sx, sy): ``grid_sample(x, affine_grid(diag(sx, sy)))``."""
    zoom = torch.stack([1.0 / sx, 1.0 / sy], dim=1).to(x.dtype)
    return k_scale(x, zoom, align_corners=False)


class DSARotate(nn.Module):
    """Rotate the sampling grid by θ ~ U[−deg, deg]."""

    def __init__(self, same_on_batch: bool, degrees: float = DSA_ROTATE_DEG) -> None:
        super().__init__()
        self.same_on_batch, self.degrees = same_on_batch, degrees

    def forward(self, x: Tensor) -> Tensor:
        angle = _uniform(x.shape[0], -self.degrees, self.degrees, self.same_on_batch, x)
        return k_rotate(x, angle.to(x.dtype), align_corners=False)


class DSAColor(nn.Module):
    """DSA's brightness, saturation and contrast, unclipped (reference ``rand_brightness`` …)."""

    def __init__(self, same_on_batch: bool) -> None:
        super().__init__()
        self.same_on_batch = same_on_batch

    def _rand(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        return _draw(n, self.same_on_batch, torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype))

    def forward(self, x: Tensor) -> Tensor:
        x = x + (self._rand(x) - 0.5) * DSA_BRIGHTNESS
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._rand(x) * DSA_SATURATION) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._rand(x) + DSA_CONTRAST) + mean


def resized_crop(size: tuple[int, int], min_scale: float, same_on_batch: bool = False) -> nn.Module:
    """kornia's RandomResizedCrop to ``size``, area scale in [``min_scale``, 1], set up to resample as torchvision.

    The references crop with torchvision's ``transforms.RandomResizedCrop`` (SRe²L
    ``recover/data_synthesis.py`` and ``validate/train_FKD.py``, UniDD ``synthesis_large.py`` and
    ``generate_soft_label_online.py``): the box is cut out and resized bilinearly with half-pixel
    centres (``F.resized_crop``). kornia's default
    (a perspective warp of the box with ``align_corners=True``) samples other positions;
    ``cropping_mode="slice"`` with ``align_corners=False`` is torchvision's arithmetic, still
    differentiable (slicing and ``interpolate``).
    """
    return K.RandomResizedCrop(
        size, scale=(min_scale, 1.0), same_on_batch=same_on_batch, align_corners=False, cropping_mode="slice"
    )


class ResizedCrop(nn.Module):
    """RandomResizedCrop back to the input's size (:func:`resized_crop`, built per input size)."""

    def __init__(self, same_on_batch: bool, min_scale: float) -> None:
        super().__init__()
        self.same_on_batch, self.min_scale = same_on_batch, min_scale
        self._by_size: dict[tuple[int, int], nn.Module] = {}

    def forward(self, x: Tensor) -> Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if size not in self._by_size:
            self._by_size[size] = resized_crop(size, self.min_scale, self.same_on_batch)
        return self._by_size[size](x)


def _op(name: str, same: bool, rrc_min_scale: float, crop_fill: Tensor | None) -> nn.Module:
    if name == "color":
        return DSAColor(same)
    if name == "crop":
        return DSACrop(same, fill=crop_fill)
    if name == "cutout":
        return DSACutout(same)
    if name == "flip":
        return K.RandomHorizontalFlip(same_on_batch=same, p=DSA_FLIP_P)
    if name == "scale":
        return DSAScale(same)
    if name == "rotate":
        return DSARotate(same)
    if name == "rrc":
        return ResizedCrop(same, rrc_min_scale)
    raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(OPS)}")


class DSA(nn.Module):
    """Apply a strategy: ``mode="single"`` draws one group per call (DSA), ``"all"`` applies every group.

    ``same_on_batch`` shares one draw across the batch (Siamese use). Groups join ops with
    ``+`` and are separated by ``_`` (:mod:`methods.augment.options`). ``crop_fill``: the
    per-channel value ``crop`` moves in from outside (None: zeros, DSA's).
    """

    def __init__(
        self,
        strategy: str | None = DSA_DEFAULT,
        same_on_batch: bool = False,
        mode: str = "single",
        rrc_min_scale: float = 0.08,
        crop_fill: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.groups = parse_groups(strategy)
        self.names = [op for g in self.groups for op in g]
        self.ops = nn.ModuleList(
            nn.Sequential(*(_op(n, same_on_batch, rrc_min_scale, crop_fill) for n in g)) for g in self.groups
        )
        self.mode = check_mode(mode)

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
    with seeded(seed_from(seed), x.device):
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


__all__ = [
    "DSA",
    "DSA_DEFAULT",
    "OPS",
    "BatchMix",
    "MixDraw",
    "apply_mix",
    "augment_seeded",
    "cutmix_box",
    "integer_shift",
    "parse_groups",
    "parse_strategy",
    "resized_crop",
    "siamese",
]
