"""Synthetic sets produced elsewhere, read into ddx's form: normalised images with class labels.

Three inputs are accepted (:func:`load_set` tells them apart):

* **a tensor file** (``.pt``, read with ``torch.load(weights_only=True)``): a dict
  ``{"images": (N, C, H, W) float, "labels": (N,) integer}`` and optionally
  ``"space": "pixels" | "normalized"``. ``pixels`` (the default) means values in [0, 1]
  (RGB/grey intensities); ddx normalises them with the dataset's mean and std (those ddx
  computes from the training split as loaded) and, on ZCA-whitened data, whitens them with the
  transform fitted on the training split (:meth:`~methods.datasets.RealData.from_pixels`).
  ``normalized`` means the images are already in the dataset's space (``(x − mean) / std``
  with that same mean and std, whitened too for ZCA data), and are used as they are. A ``pixels``
  tensor with values outside [−0.01, 1.01] is refused (it is almost certainly normalised);
* **an image folder**: ``<folder>/<class>/<image>`` (PNG, JPEG…), one sub-folder per class,
  named by the dataset's class name (``airplane``…) or by the class index (``0``, ``1``,
  … or zero-padded ``003``); images are read as RGB (grey for one-channel datasets) in [0, 1]
  and normalised like a ``pixels`` tensor; every image must have the same square size;
* **a ddx synthetic set** (``<experiment>/synthetic/<key>.pt``, a saved parameterization:
  pixels or a neural field) — already normalised; decoded by its parameterization.

Every set must hold **the same number of images per class** (its IPC) for every class of the
dataset: ddx's sets, the random baseline and the budget bookkeeping are per class. Any
problem raises :class:`SetError` with one line saying what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from methods.datasets import RealData
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, synthetic_payload
from methods.torch_files import NotATorchFile, load_torch

SPACES = ("pixels", "normalized")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: tolerance for values of a ``pixels`` tensor outside [0, 1] (rounding of saved PNGs and the like)
PIXEL_SLACK = 0.01


class SetError(ValueError):
    """A synthetic set that cannot be evaluated as given (one line: what and how to fix it)."""


@dataclass
class LoadedSet:
    """A set in ddx's form: a parameterization payload (normalised, class-sorted) and where it came from."""

    name: str
    source: str
    format: str  # "pt", "imagefolder" or "ddx"
    space: str  # the space the file held its images in ("normalized" for ddx sets)
    payload: dict[str, Any] = field(repr=False)

    @property
    def shape(self) -> dict[str, Any]:
        return dict(self.payload["config"]["shape"])

    @property
    def ipc(self) -> int:
        return int(self.shape["ipc"])

    @property
    def resolution(self) -> int:
        return int(self.shape["resolution"])

    @property
    def parameterization(self) -> str:
        return str(self.payload["config"]["name"])


def normalise(images: Tensor, data: RealData) -> Tensor:
    """[0, 1] pixels → the dataset's space: ``(x − mean) / std`` with its constants, then its ZCA
    whitening when the data is whitened (:meth:`RealData.from_pixels`; the whitening is fitted at the
    data's resolution, so such a set must have that resolution)."""
    if data.zca:
        if images.dim() == 4 and images.shape[-1] != data.resolution:
            raise SetError(
                f"{data.name!r} is ZCA-whitened at {data.resolution} px; a {images.shape[-1]} px pixel set cannot "
                "be whitened with it (resize the set, or store it already whitened with 'space': 'normalized')"
            )
        if data.whitening is None:
            raise SetError(f"{data.name!r} is ZCA-whitened but its fitted whitening is not at hand")
    return data.from_pixels(images)


def pixels_payload(images: Tensor, labels: Tensor, data: RealData, extra: dict[str, Any] | None = None) -> dict:
    """A ``pixels`` parameterization payload of normalised ``images`` with class ``labels``.

    Checks shapes against ``data`` (channels, classes, a square image, equal images per class)
    and sorts the images by class (ddx's layout: class-major, the order within a class kept).
    """
    if images.dim() != 4:
        raise SetError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    if c != data.channels:
        raise SetError(f"images have {c} channels; dataset {data.name!r} has {data.channels}")
    if h != w:
        raise SetError(f"images must be square, got {h}×{w}")
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise SetError(f"labels must be (N,) integer class indices, got {labels.dtype} of shape {tuple(labels.shape)}")
    if len(labels) != n:
        raise SetError(f"{n} images but {len(labels)} labels")
    if n == 0:
        raise SetError("the set holds no images")
    k = data.num_classes
    labels = labels.long()
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise SetError(
            f"labels must lie in 0…{k - 1} (dataset {data.name!r}), got {int(labels.min())}…{int(labels.max())}"
        )
    counts = torch.bincount(labels, minlength=k)
    if int(counts.min()) != int(counts.max()):
        raise SetError(
            f"images per class differ ({int(counts.min())}…{int(counts.max())}; classes "
            f"{[int(i) for i in torch.nonzero(counts != counts.max()).flatten()[:5]]} …): "
            "every class needs the same number of images"
        )
    if not torch.isfinite(images).all():
        raise SetError("images contain NaN or infinite values")
    order = torch.sort(labels, stable=True).indices
    shape = SetShape(num_classes=k, ipc=int(counts[0]), channels=c, resolution=h)
    param = build_parameterization(ParamConfig("pixels", shape))
    param.init_from_real(images[order].float())
    meta = {"mean": list(data.mean), "std": list(data.std), **(extra or {})}
    return synthetic_payload(param, meta)


def _check_space(images: Tensor, space: str, source: str) -> None:
    if space not in SPACES:
        raise SetError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    if space == "pixels":
        lo, hi = float(images.min()), float(images.max())
        if lo < -PIXEL_SLACK or hi > 1 + PIXEL_SLACK:
            raise SetError(
                f"values span {lo:.3g}…{hi:.3g}, outside [0, 1] pixel space: if {source} is already "
                "normalised with the dataset's mean/std, store 'space': 'normalized' (or pass --space normalized)"
            )


def tensor_set_payload(obj: Any, data: RealData, space: str | None = None, source: str = "it") -> tuple[dict, str]:
    """A loaded ``{"images", "labels"}`` dict → (payload, space used). ``space``: overrides the file's."""
    if not isinstance(obj, dict) or "images" not in obj or "labels" not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise SetError(f"expected a dict with 'images' and 'labels' (and optionally 'space'), got {keys}")
    images, labels = obj["images"], obj["labels"]
    if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
        raise SetError("'images' and 'labels' must be tensors")
    if images.dim() != 4:
        raise SetError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.dtype.is_floating_point:
        raise SetError(f"images must be a float tensor (pixels in [0, 1] or normalised), got {images.dtype}")
    if images.numel() == 0:  # before any reduction over the values (min/max of nothing is an error)
        empty = "the set holds no images" if len(images) == 0 else f"images are empty, shape {tuple(images.shape)}"
        raise SetError(empty)
    used = space or str(obj.get("space", "pixels"))
    _check_space(images, used, source)
    normed = images.float() if used == "normalized" else normalise(images, data)
    return pixels_payload(normed, labels, data, {"source_space": used}), used


def _class_index(name: str, class_names: Sequence[str]) -> int | None:
    if name in class_names:
        return list(class_names).index(name)
    if re.fullmatch(r"\d+", name):
        i = int(name)
        return i if i < len(class_names) else None
    return None


def load_image_folder(path: Path, data: RealData) -> tuple[dict, str]:
    """``<folder>/<class>/<image>`` → (payload, "pixels")."""
    dirs = sorted(d for d in path.iterdir() if d.is_dir())
    if not dirs:
        raise SetError("no class sub-folders (expected <folder>/<class>/<image>.png)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    size: tuple[int, int] | None = None
    mode = "RGB" if data.channels == 3 else "L"
    for d in dirs:
        c = _class_index(d.name, data.class_names)
        if c is None:
            shown = ", ".join(data.class_names[:5])
            raise SetError(
                f"class folder {d.name!r} is neither a class of {data.name!r} ({shown}, …) nor an index "
                f"0…{data.num_classes - 1}"
            )
        files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert(mode), dtype=np.uint8)
            except OSError as err:
                raise SetError(f"cannot read image {f.relative_to(path)}: {err}") from None
            if size is None:
                size = arr.shape[:2]
            elif arr.shape[:2] != size:
                raise SetError(
                    f"images differ in size ({size[1]}×{size[0]} and {arr.shape[1]}×{arr.shape[0]} at "
                    f"{f.relative_to(path)}); resize them to one square size first"
                )
            images.append(arr)
            labels.append(c)
    if not images:
        raise SetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    x = torch.from_numpy(np.stack(images)).float().div_(255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    payload = pixels_payload(normalise(x, data), torch.tensor(labels), data, {"source_space": "pixels"})
    return payload, "pixels"


def load_ddx_set(obj: dict, data: RealData) -> dict:
    """A saved ddx set (payload), checked against the dataset."""
    shape = obj["config"]["shape"]
    if int(shape["num_classes"]) != data.num_classes or int(shape["channels"]) != data.channels:
        raise SetError(
            f"a ddx set of {shape['num_classes']} classes × {shape['channels']} channels; dataset "
            f"{data.name!r} has {data.num_classes} × {data.channels}"
        )
    try:
        from methods.parameterizations import from_payload

        from_payload(obj)
    except Exception as err:  # a payload its parameterization cannot rebuild
        raise SetError(f"not a loadable ddx set: {type(err).__name__}: {err}") from None
    return obj


def load_set(path: str | Path, data: RealData, space: str | None = None, name: str | None = None) -> LoadedSet:
    """Read any accepted input (see the module docstring) as a :class:`LoadedSet` for ``data``."""
    p = Path(path)
    stem = name or (p.name if p.is_dir() else p.stem)
    if not p.exists():
        raise SetError("no such file or folder")
    if p.is_dir():
        if space not in (None, "pixels"):
            raise SetError("an image folder holds pixels; --space normalized applies to tensor files only")
        payload, used = load_image_folder(p, data)
        return LoadedSet(stem, str(p), "imagefolder", used, payload)
    try:
        obj = load_torch(p)
    except NotATorchFile as err:  # what the file is instead (text, cut short, another format)
        raise SetError(f"{err}; give a .pt of images and labels, an image folder or a ddx set") from None
    except OSError as err:
        raise SetError(f"cannot read it ({err.strerror or type(err).__name__})") from None
    if isinstance(obj, dict) and "config" in obj and "state" in obj:
        if space not in (None, "normalized"):
            raise SetError("a ddx set is stored normalised; --space pixels does not apply")
        return LoadedSet(stem, str(p), "ddx", "normalized", load_ddx_set(obj, data))
    payload, used = tensor_set_payload(obj, data, space, p.name)
    return LoadedSet(stem, str(p), "pt", used, payload)


def random_subset_payload(data: RealData, ipc: int, seed: int) -> dict:
    """``ipc`` training images per class drawn without replacement (seeded): the random baseline."""
    g = torch.Generator().manual_seed(int(seed))
    xs, ys = [], []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        if len(idx) < ipc:
            raise SetError(f"class {data.class_names[c]!r} has {len(idx)} training images, fewer than IPC {ipc}")
        pick = idx[torch.randperm(len(idx), generator=g)[:ipc]]
        xs.append(data.train_x[pick])
        ys.append(torch.full((ipc,), c, dtype=torch.long))
    return pixels_payload(torch.cat(xs), torch.cat(ys), data, {"random_seed": int(seed)})


__all__ = [
    "SPACES",
    "LoadedSet",
    "SetError",
    "load_image_folder",
    "load_set",
    "normalise",
    "pixels_payload",
    "random_subset_payload",
    "tensor_set_payload",
]
