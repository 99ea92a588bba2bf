"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021) as the reference code
defines it, on normalised tensors, plus the soft-label views' RandomResizedCrop (their CutMix and
Mixup: :mod:`methods.augment.mix`, re-exported here).

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

import kornia.augmentation as K
import torch
from kornia.geometry.transform import affine as k_affine
from kornia.geometry.transform import get_rotation_matrix2d
from kornia.geometry.transform import scale as k_scale
from torch import Tensor, nn

from methods.augment.mix import BatchMix, MixDraw, apply_mix, cutmix_box  # re-exported: their former home
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


def integer_shift(x: Tensor, dy: Tensor, dx: Tensor, fill: Tensor | None = None, pad: int | None = None) -> Tensor:
    """Translate image ``i`` so output pixel (r, c) is input pixel (r + dy[i], c + dx[i]).

    Pixels from outside the image are zeros, or ``fill`` (one value per channel). ``pad`` is a
    bound on |dy| and |dx| (default: their maximum, read from the device); any bound gives the
    same output, and a known one spares that read (a GPU synchronisation).
    """
    n, c, h, w = x.shape
    if pad is None:
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

    def draw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The shifts (dy, dx) of every image of ``x``."""
        n, _, h, w = x.shape
        sh, sw = half_width(h, self.ratio), half_width(w, self.ratio)
        dy = _draw(n, self.same_on_batch, torch.randint(-sh, sh + 1, (n,), device=x.device))
        dx = _draw(n, self.same_on_batch, torch.randint(-sw, sw + 1, (n,), device=x.device))
        return dy, dx

    def apply(self, x: Tensor, params: tuple[Tensor, Tensor]) -> Tensor:
        _, _, h, w = x.shape
        bound = max(half_width(h, self.ratio), half_width(w, self.ratio))
        return integer_shift(x, *params, fill=self.fill, pad=bound)

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.draw(x))


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

    def draw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The square's centre (row, column) in every image of ``x``."""
        n, _, h, w = x.shape
        centres = []
        for side in (h, w):
            size = half_width(side, self.ratio)
            centres.append(_draw(n, self.same_on_batch, torch.randint(0, side + 1 - size % 2, (n,), device=x.device)))
        return centres[0], centres[1]

    def apply(self, x: Tensor, params: tuple[Tensor, Tensor]) -> Tensor:
        _, _, h, w = x.shape
        masks = []
        for side, centre in zip((h, w), params, strict=True):
            lo, hi = cutout_span(side, self.ratio, centre)
            pos = torch.arange(side, device=x.device)[None, :]
            masks.append((pos >= lo[:, None]) & (pos < hi[:, None]))  # (n, side)
        erased = masks[0][:, :, None] & masks[1][:, None, :]
        return x * (~erased).to(x.dtype)[:, None]

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.draw(x))


class DSAScale(nn.Module):
    """Scale the sampling grid by (sx, sy) ~ U[1/ratio, ratio]² about the centre."""

    def __init__(self, same_on_batch: bool, ratio: float = DSA_SCALE) -> None:
        super().__init__()
        self.same_on_batch, self.ratio = same_on_batch, ratio

    def draw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The scale factors (sx, sy) of every image of ``x``."""
        n = x.shape[0]
        sx = _uniform(n, 1.0 / self.ratio, self.ratio, self.same_on_batch, x)
        sy = _uniform(n, 1.0 / self.ratio, self.ratio, self.same_on_batch, x)
        return sx, sy

    def matrix(self, x: Tensor, params: tuple[Tensor, Tensor]) -> Tensor:
        """The (n, 2, 3) pixel affine matrices :func:`scale_grid` warps ``x`` by (kornia ``scale``'s)."""
        sx, sy = params
        zoom = torch.stack([1.0 / sx, 1.0 / sy], dim=1).to(x.dtype)
        centre = _centre(x, zoom.dtype).expand(x.shape[0], -1)
        angle = torch.zeros(x.shape[:1], device=zoom.device, dtype=zoom.dtype)
        return get_rotation_matrix2d(centre, angle, zoom.expand(x.shape[0], 2))[..., :2, :3]

    def apply(self, x: Tensor, params: tuple[Tensor, Tensor]) -> Tensor:
        return warp(x, self.matrix(x, params))

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.draw(x))


def _centre(x: Tensor, dtype: torch.dtype) -> Tensor:
    """The image centre ((W − 1)/2, (H − 1)/2) in pixels, kornia's default rotation/scaling centre."""
    h, w = x.shape[-2:]
    # built on the host and copied without waiting for the device's queue (a blocking copy would)
    return torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=dtype).to(x.device, non_blocking=True)


def warp(x: Tensor, matrix: Tensor) -> Tensor:
    """Bilinear resampling of ``x`` by pixel affine ``matrix`` (n, 2, 3), zero padding: kornia ``affine``,
    what its ``rotate`` and ``scale`` end in (so ``warp(x, op.matrix(x, p))`` is ``op.apply(x, p)``)."""
    return k_affine(x, matrix, "bilinear", "zeros", align_corners=False)


def scale_grid(x: Tensor, sx: Tensor, sy: Tensor) -> Tensor:
    """Resample ``x`` on a grid scaled by (sx, sy): ``grid_sample(x, affine_grid(diag(sx, sy)))``."""
    zoom = torch.stack([1.0 / sx, 1.0 / sy], dim=1).to(x.dtype)
    return k_scale(x, zoom, align_corners=False)


class DSARotate(nn.Module):
    """Rotate the sampling grid by θ ~ U[−deg, deg]."""

    def __init__(self, same_on_batch: bool, degrees: float = DSA_ROTATE_DEG) -> None:
        super().__init__()
        self.same_on_batch, self.degrees = same_on_batch, degrees

    def draw(self, x: Tensor) -> tuple[Tensor]:
        """The rotation angle of every image of ``x``."""
        return (_uniform(x.shape[0], -self.degrees, self.degrees, self.same_on_batch, x),)

    def matrix(self, x: Tensor, params: tuple[Tensor]) -> Tensor:
        """The (n, 2, 3) pixel affine matrices of the rotations (kornia ``rotate``'s)."""
        angle = params[0].to(x.dtype)
        centre = _centre(x, angle.dtype).expand(x.shape[0], -1)
        return get_rotation_matrix2d(centre, angle.expand(x.shape[0]), torch.ones_like(centre))[..., :2, :3]

    def apply(self, x: Tensor, params: tuple[Tensor]) -> Tensor:
        return warp(x, self.matrix(x, params))

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.draw(x))


class DSAColor(nn.Module):
    """DSA's brightness, saturation and contrast, unclipped (reference ``rand_brightness`` …)."""

    def __init__(self, same_on_batch: bool) -> None:
        super().__init__()
        self.same_on_batch = same_on_batch

    def _rand(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        return _draw(n, self.same_on_batch, torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype))

    def draw(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The brightness, saturation and contrast draws of every image of ``x`` (in that order)."""
        return self._rand(x), self._rand(x), self._rand(x)

    def apply(self, x: Tensor, params: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        brightness, saturation, contrast = params
        x = x + (brightness - 0.5) * DSA_BRIGHTNESS
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (saturation * DSA_SATURATION) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (contrast + DSA_CONTRAST) + mean

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.draw(x))


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
    "warp",
]
