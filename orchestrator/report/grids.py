"""Pictures of synthetic sets: decode a saved set and lay it out as a PNG grid (one row per class).

Decoding is the parameterization's own :meth:`~methods.parameterizations.Parameterization.decode`
(pixels resized, fields evaluated on a coordinate grid); this module only arranges and
encodes the result. Images are shown in the dataset's pixel space when the set records
the normalisation (``extra["mean"]`` / ``extra["std"]``); otherwise each channel is
contrast-stretched between its 1st and 99th percentile over the whole set, and the
returned note says so.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from methods.atomic import atomic_path
from methods.parameterizations import Parameterization, Payload, from_payload, payload_from_bytes
from methods.torch_files import NotATorchFile
from orchestrator.errors import UserError
from orchestrator.storage.results import read_bytes


@dataclass
class Grid:
    """A synthetic-set grid: RGB ``uint8`` array ``(H, W, 3)`` and how it was made."""

    image: np.ndarray
    classes: int
    per_class: int
    resolution: int
    note: str

    def png(self) -> bytes:
        return png_bytes(self.image)


def to_display(images: Tensor, mean: list[float] | None = None, std: list[float] | None = None) -> tuple[Tensor, str]:
    """Map normalised images to [0, 1] for display; returns the images and a note on how."""
    x = images.detach().float().cpu()
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x * s + m).clamp(0.0, 1.0), "dataset pixel space (clipped to [0, 1])"
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    lo = flat.quantile(0.01, dim=1).view(1, -1, 1, 1)
    hi = flat.quantile(0.99, dim=1).view(1, -1, 1, 1)
    out = ((x - lo) / (hi - lo).clamp_min(1e-8)).clamp(0.0, 1.0)
    return out, "contrast-stretched per channel (1st–99th percentile; the set records no mean/std)"


def grid_of(
    images: Tensor,
    labels: Tensor,
    max_classes: int = 10,
    per_class: int = 10,
    cell: int = 32,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> Grid:
    """Arrange ``images`` with one row per class (the first ``max_classes``), ``per_class`` columns."""
    shown, note = to_display(images, mean, std)
    classes = sorted(int(c) for c in torch.unique(labels))[:max_classes]
    cols = min(per_class, max(int((labels == c).sum()) for c in classes))
    res = int(images.shape[-1])
    blank = torch.ones(shown.shape[1], res, res)
    tiles: list[Tensor] = []
    for c in classes:
        idx = torch.nonzero(labels == c).flatten()[:cols]
        row = [shown[i] for i in idx] + [blank] * (cols - len(idx))
        tiles.extend(row)
    batch = torch.stack(tiles)
    scale = max(1, cell // res)
    if scale > 1:
        batch = F.interpolate(batch, scale_factor=scale, mode="nearest")
    grid = make_grid(batch, nrow=cols, padding=max(1, scale // 2), pad_value=1.0)  # 1 channel → 3
    image = (grid.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Grid(image, len(classes), cols, res, note)


def _load_set(path: str | Path) -> tuple[Parameterization, Payload]:
    """The set saved at ``path`` (a file or a URI) and its ``extra`` metadata; a file that is not a
    ddx set is a :class:`UserError` naming it."""
    data = read_bytes(str(path))  # a missing file: FileNotFoundError, as from any reader
    try:
        payload = payload_from_bytes(data)
    except NotATorchFile as err:  # what the file is instead (text, cut short, another format)
        raise UserError(
            f"{err}; give a synthetic set a sweep wrote (<experiment>/synthetic/<key>.pt)", where=str(path)
        ) from None
    if not (isinstance(payload, dict) and "config" in payload and "state" in payload):
        raise UserError(
            "not a ddx synthetic set (no 'config' and 'state'; a file of images and labels is evaluated "
            "with `ddx evaluate`)",
            where=str(path),
        )
    try:
        return from_payload(payload), payload.get("extra", {})
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise UserError(f"a damaged ddx synthetic set ({type(err).__name__}: {err})", where=str(path)) from None


def synthetic_grid(
    path: str | Path,
    resolution: int | None = None,
    max_classes: int = 10,
    per_class: int = 10,
    cell: int = 32,
) -> Grid:
    """Decode the synthetic set saved at ``path`` (a file or a URI; at ``resolution``, default its own)."""
    param, extra = _load_set(path)
    with torch.no_grad():
        images = param.decode(resolution)
    return grid_of(images, param.labels, max_classes, per_class, cell, extra.get("mean"), extra.get("std"))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an RGB ``uint8`` array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB ``uint8`` array as a PNG file (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = png_bytes(image)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _check_fits_memory(param: Parameterization, resolution: int | None) -> None:
    """A :class:`UserError` naming ``--resolution`` when the decoded set and its display copy
    (float32) alone would exceed this machine's memory (the allocation failed with a traceback)."""
    res = int(resolution or param.config.shape.resolution)
    need = 2 * len(param.labels) * int(param.config.shape.channels) * res * res * 4
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # a platform without these names: the allocation is the check
        return
    if need > total:
        raise UserError(
            f"decoding {len(param.labels)} images at {res} px needs {need / 2**30:,.0f} GiB, more than this machine's "
            f"{total / 2**30:,.0f} GiB; give a smaller resolution",
            key="--resolution",
        )


#: the image-folder tree ``ddx export`` writes beside the grids (``ddx evaluate`` reads it back)
IMAGES_DIR = "images"


def write_image_folder(images: Tensor, labels: Tensor, out_dir: Path) -> Path:
    """One PNG per instance, ``<out_dir>/<class:03d>/<i:04d>.png`` (class indices as folder names, so
    they survive), grey for one channel; ``images`` in [0, 1]. Written to a temporary folder and
    renamed into place, so an interrupted export leaves no partial tree (an older one is replaced)."""
    digits = max(3, len(str(int(labels.max()))))
    as_uint8 = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    tmp = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        for c in sorted(int(k) for k in torch.unique(labels)):
            folder = tmp / f"{c:0{digits}d}"
            folder.mkdir(parents=True)
            for j, i in enumerate(torch.nonzero(labels == c).flatten().tolist()):
                arr = as_uint8[i].permute(1, 2, 0).numpy()
                image = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)  # grey ("L") or RGB
                image.save(folder / f"{j:04d}.png", format="PNG")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def export_class_grids(
    path: str | Path,
    out_dir: str | Path,
    resolution: int | None = None,
    nrow: int | None = None,
    image_folder: bool | None = False,
) -> tuple[list[Path], Path | None]:
    """Decode the set at ``path`` at ``resolution`` and write one PNG grid per class to ``out_dir``.

    Every instance of the class is shown (``class_<k>_<name>_r<res>.png``), in the dataset's
    pixel space when the set records ``extra["mean"]``/``["std"]``, else contrast-stretched.
    With ``image_folder`` also the set as an image folder, ``out_dir/images/<class>/<i>.png`` (pixel
    space, clipped to [0, 1]), which ``ddx evaluate`` reads back: ``True`` asks for it (a set without
    mean/std — ZCA-whitened — has no pixel images and is refused), ``None`` writes it when the set has
    pixel images. Returns the written grids and the image folder (None when not written); a
    ``README.txt`` next to them says how the images were mapped.
    """
    from torchvision.utils import save_image

    param, extra = _load_set(path)
    _check_fits_memory(param, resolution)
    has_pixels = extra.get("mean") is not None and extra.get("std") is not None
    if image_folder is None:
        image_folder = has_pixels
    if image_folder and not has_pixels:
        raise UserError(
            "the set records no mean/std (ZCA-whitened, or of unknown normalisation): it has no pixel images to "
            "write as an image folder; pass --no-images for the grids alone",
            where=str(path),
        )
    with torch.no_grad():
        images = param.decode(resolution).detach()
    shown, note = to_display(images, extra.get("mean"), extra.get("std"))
    res = int(images.shape[-1])
    names = extra.get("class_names") or []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for c in sorted(int(k) for k in torch.unique(param.labels)):
        idx = torch.nonzero(param.labels == c).flatten()
        cols = nrow or max(1, int(np.ceil(np.sqrt(len(idx)))))
        label = f"_{names[c]}" if c < len(names) else ""
        target = out / f"class_{c:03d}{label}_r{res}.png"
        with atomic_path(target) as tmp:
            save_image(shown[idx], tmp, format="PNG", nrow=cols, padding=1, pad_value=1.0)
        written.append(target)
    tree, folder = "", None
    if image_folder:
        folder = write_image_folder(shown, param.labels, out / IMAGES_DIR)
        tree = (
            f"{IMAGES_DIR}/<class index>/<instance>.png: every instance as a PNG in pixel space (clipped to [0, 1]); "
            f"`ddx evaluate {out / IMAGES_DIR} --dataset …` reads it back (learned labels or learning rates the set "
            "carries are not in it)\n"
        )
    with atomic_path(out / "README.txt") as tmp:
        tmp.write_text(
            f"{param.config.name} set from {path}: {len(written)} classes, {param.per_class} instances per class, "
            f"decoded at {res}px ({'coordinates' if param.resize_mode == 'coordinates' else param.resize_mode} when "
            f"not {param.config.shape.resolution}px); image: {note}\n{tree}"
        )
    return written, folder
