"""Synthetic sets produced elsewhere, read into ddx's form: images in the real data's space with labels.

ddx's own three inputs are read here (:func:`load_set` tells them apart); the formats the field
publishes (DatasetCondensation, mtt-distillation/DATM, DDiF) are read by
:mod:`methods.evaluation.published_sets` onto the same form. What every reader declares:

* its **space** (:data:`SPACES`): ``pixels`` ([0, 1] intensities; ddx normalises them with the
  dataset's mean/std), ``normalized`` (``(x − mean) / std`` with the mean/std the file was
  normalised with: ddx's own, or a reference's constants, converted to ddx's) or ``zca``
  (ZCA-whitened: the values are used as they are and the real validation/test data are whitened
  the same way, ``dataset.zca: true``). Values that cannot be in the declared space are refused
  (:func:`check_space`);
* its **labels** (``LoadedSet.labels``): class labels (``hard``) or learned soft labels
  (``learned_soft``: an ``(N, C)`` matrix carried in ``extra[LEARNED_LABELS_KEY]``).

ddx's own inputs:

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

Image folders also take the class-folder names SRe²L (``new003``) and RDED (``00003``) write;
:func:`recovered_layout` recognises their layout (images a teacher relabels in their evaluation).
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
from methods.evaluation.options import LEARNED_LABELS_KEY, LEARNED_LR_KEY
from methods.evaluation.set_spaces import (
    SPACES,
    SetError,
    Stats,
    check_soft_labels,
    check_space,
    normalise,
    require_data_space,
    to_data_space,
)
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, synthetic_payload
from methods.torch_files import NotATorchFile, load_torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class LoadedSet:
    """A set in ddx's form: a parameterization payload (in the real data's space, class-sorted) and
    where it came from.

    ``format``: the reader (``pt``, ``imagefolder``, ``ddx``, ``dc``, ``mtt``, ``ddif``); ``space``:
    the space the file held its values in (:data:`SPACES`); ``labels``: ``hard`` or ``learned_soft``;
    ``layout``: a recognised producer's layout (``SRe²L``/``RDED`` image folders) or None;
    ``notes``: facts the reader assumed that the user should see (one line each).
    """

    name: str
    source: str
    format: str
    space: str
    payload: dict[str, Any] = field(repr=False)
    labels: str = "hard"
    layout: str | None = None
    notes: tuple[str, ...] = ()

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

    @property
    def learned_lr(self) -> float | None:
        """The learned student learning rate the set carries (``extra[LEARNED_LR_KEY]``), or None."""
        value = self.payload.get("extra", {}).get(LEARNED_LR_KEY)
        return None if value is None else float(value)


def pixels_payload(
    images: Tensor,
    labels: Tensor,
    data: RealData,
    extra: dict[str, Any] | None = None,
    soft_labels: Tensor | None = None,
    zca: bool = False,
) -> dict:
    """A ``pixels`` parameterization payload of ``images`` (already in the real data's space) with
    class ``labels``.

    Checks shapes against ``data`` (channels, classes, a square image, equal images per class)
    and sorts the images by class (ddx's layout: class-major, the order within a class kept).
    ``soft_labels``: learned soft labels ``(N, C)`` of the same instances, sorted alike and kept in
    ``extra[LEARNED_LABELS_KEY]``. ``zca``: the images are ZCA-whitened (the payload then records
    ``zca: true`` and no mean/std: they do not map it back to pixels).
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
    if int(counts.min()) == 0:
        missing = [int(i) for i in torch.nonzero(counts == 0).flatten()]
        shown = ", ".join(f"{i} ({data.class_names[i]})" for i in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise SetError(
            f"no images of {len(missing)} of the {k} classes of {data.name!r}: {shown}; every class needs "
            "the same number of images"
        )
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
    meta: dict[str, Any] = {"zca": True} if zca else {"mean": list(data.mean), "std": list(data.std)}
    meta.update(extra or {})
    if soft_labels is not None:
        meta[LEARNED_LABELS_KEY] = check_soft_labels(soft_labels, n, k)[order].contiguous()
    return synthetic_payload(param, meta)


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
    normed = to_data_space(images, used, data, source=source)
    return pixels_payload(normed, labels, data, {"source_space": used}, zca=used == "zca"), used


def _class_index(name: str, class_names: Sequence[str]) -> int | None:
    """A class folder's class: a class name, an index (``3``, ``003``, RDED's ``00003``) or SRe²L's ``new003``."""
    if name in class_names:
        return list(class_names).index(name)
    match = re.fullmatch(r"(?:new)?(\d+)", name)
    if match:
        i = int(match.group(1))
        return i if i < len(class_names) else None
    return None


def recovered_layout(path: Path) -> str | None:
    """``SRe²L`` or ``RDED`` when an image folder has the layout their recovery code writes
    (SRe²L: ``new<class:03d>/class<class:03d>_id<i:03d>.jpg``; RDED: ``<class:05d>/class<class:05d>_id<i:05d>.jpg``):
    images their evaluation relabels with a teacher. None otherwise."""
    dirs = [d for d in path.iterdir() if d.is_dir()]
    if not dirs:
        return None
    files = [f.name for f in next(iter(sorted(dirs))).iterdir() if f.is_file()]
    if not files or not all(re.fullmatch(r"class\d+_id\d+\.\w+", f) for f in files):
        return None
    if all(re.fullmatch(r"new\d{3,}", d.name) for d in dirs):
        return "SRe²L"
    if all(re.fullmatch(r"\d{5}", d.name) for d in dirs):
        return "RDED"
    return None


def load_image_folder(path: Path, data: RealData) -> tuple[dict, str]:
    """``<folder>/<class>/<image>`` → (payload, "pixels")."""
    dirs = sorted(d for d in path.iterdir() if d.is_dir())
    if not dirs:
        raise SetError("no class sub-folders (expected <folder>/<class>/<image>.png)")
    if [d.name for d in dirs] == ["images"] and (path / "README.txt").is_file():
        raise SetError(f"a `ddx export` folder: give its images/ tree ({path / 'images'})")
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
    normed = to_data_space(x, "pixels", data, source=str(path))
    payload = pixels_payload(normed, torch.tensor(labels), data, {"source_space": "pixels"})
    return payload, "pixels"


def ddx_set_space(obj: dict) -> str:
    """The space of a saved ddx set: ``zca`` when it was distilled on ZCA-whitened data (its
    ``extra["zca"]``), else ``normalized`` (with the dataset's mean/std)."""
    return "zca" if obj.get("extra", {}).get("zca") else "normalized"


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
    """Read any of ddx's own inputs (see the module docstring) as a :class:`LoadedSet` for ``data``."""
    p = Path(path)
    stem = name or (p.name if p.is_dir() else p.stem)
    if not p.exists():
        raise SetError("no such file or folder")
    if p.is_dir():
        if space not in (None, "pixels"):
            raise SetError(f"an image folder holds pixels; --space {space} applies to tensor files only")
        payload, used = load_image_folder(p, data)
        return LoadedSet(stem, str(p), "imagefolder", used, payload, layout=recovered_layout(p))
    try:
        obj = load_torch(p)
    except NotATorchFile as err:  # what the file is instead (text, cut short, another format)
        raise SetError(f"{err}; give a .pt of images and labels, an image folder or a ddx set") from None
    except OSError as err:
        raise SetError(f"cannot read it ({err.strerror or type(err).__name__})") from None
    return set_from_object(obj, p, data, space, stem)


def set_from_object(obj: Any, path: Path, data: RealData, space: str | None, name: str) -> LoadedSet:
    """A loaded tensor file's object as a set: a saved ddx set, else a ``{"images", "labels"}`` dict."""
    if isinstance(obj, dict) and "config" in obj and "state" in obj:
        own = ddx_set_space(obj)
        if space not in (None, own):
            raise SetError(f"a ddx set is stored in its distillation's space ({own}); --space {space} does not apply")
        return LoadedSet(name, str(path), "ddx", own, load_ddx_set(obj, data))
    payload, used = tensor_set_payload(obj, data, space, path.name)
    return LoadedSet(name, str(path), "pt", used, payload)


def random_subset_payload(data: RealData, ipc: int, seed: int, lr: float | None = None) -> dict:
    """``ipc`` training images per class drawn without replacement (seeded): the random baseline
    (in ``data``'s space, ZCA-whitened when it is). ``lr``: a learning rate to carry as the sets it
    is compared with carry theirs (``extra[LEARNED_LR_KEY]``, for ``lr_from_set`` protocols)."""
    g = torch.Generator().manual_seed(int(seed))
    xs, ys = [], []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        if len(idx) < ipc:
            raise SetError(f"class {data.class_names[c]!r} has {len(idx)} training images, fewer than IPC {ipc}")
        pick = idx[torch.randperm(len(idx), generator=g)[:ipc]]
        xs.append(data.train_x[pick])
        ys.append(torch.full((ipc,), c, dtype=torch.long))
    extra: dict[str, Any] = {"random_seed": int(seed)}
    if lr is not None:
        extra[LEARNED_LR_KEY] = float(lr)
    return pixels_payload(torch.cat(xs), torch.cat(ys), data, extra, zca=data.zca)


__all__ = [
    "SPACES",
    "LoadedSet",
    "SetError",
    "Stats",
    "check_soft_labels",
    "check_space",
    "ddx_set_space",
    "load_ddx_set",
    "load_image_folder",
    "load_set",
    "normalise",
    "pixels_payload",
    "random_subset_payload",
    "recovered_layout",
    "require_data_space",
    "set_from_object",
    "tensor_set_payload",
    "to_data_space",
]
