"""Decode image-folder trees (``<root>/<split>/<class>/<image>``) into cached uint8 arrays."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from methods.artifacts import LocalArtifactCache, default_cache_dir
from methods.datasets.base import DatasetError


def list_class_folder(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders) and (path, label) for every image below ``split_dir``
    (the image extensions of torchvision's ``ImageFolder``)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS  # imported here: only folder datasets need torchvision

    if not split_dir.is_dir():
        raise DatasetError(f"missing folder {split_dir}")
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"{split_dir} has no class sub-folders")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(split_dir / name)):
            for f in sorted(files):
                if f.lower().endswith(IMG_EXTENSIONS):
                    samples.append((os.path.join(dirpath, f), label))
    if not samples:
        raise DatasetError(f"{split_dir} holds no images ({', '.join(IMG_EXTENSIONS)})")
    return classes, samples


def select_per_class(samples: Sequence[tuple[str, int]], n: int | None, seed: int) -> list[tuple[str, int]]:
    """A seeded subset of at most ``n`` samples per class, in a stable order."""
    if n is None:
        return list(samples)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for s in samples:
        by_class.setdefault(s[1], []).append(s)
    out: list[tuple[str, int]] = []
    for label in sorted(by_class):
        items = by_class[label]
        pick = rng.permutation(len(items))[:n]
        out.extend(items[i] for i in sorted(pick))
    return out


def _decode(path: str, resolution: int | None, channels: int) -> np.ndarray:
    """One image as uint8 ``(C, H, W)``, resized (bilinear, antialiased by Pillow) if asked."""
    with Image.open(path) as im:
        img = im.convert("RGB" if channels == 3 else "L")
        if resolution is not None and img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


#: the kind (folder of the cache) of decoded image arrays
DECODED_KIND = "decoded"


def decode_samples(
    samples: Sequence[tuple[str, int]],
    resolution: int | None,
    channels: int = 3,
    cache_dir: Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``samples`` to a uint8 ``(N, C, H, W)`` tensor and labels, cached on disk.

    The cache (``<cache_dir or $DDX_CACHE>/decoded/<key>.npz``, a
    :class:`~methods.artifacts.LocalArtifactCache` entry) is keyed by every path, label, size
    and mtime, the resolution and the channel count, so a changed tree is decoded again; the
    processes of a node that load the same images decode them once (the others wait for it),
    and a cached file that does not match its manifest is decoded again.
    """
    h = hashlib.sha256()
    for path, label in samples:
        st = os.stat(path)
        h.update(f"{path}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    description = {
        "decoder": "pillow-bilinear",
        "resolution": resolution,
        "channels": channels,
        "images": len(samples),
        "samples_sha256": h.hexdigest(),
    }
    decoded: list[np.ndarray] = []

    def produce(tmp: Path) -> None:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            arrays = list(pool.map(lambda s: _decode(s[0], resolution, channels), samples))
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise DatasetError(
                f"images have different sizes {sorted(shapes)[:3]}…; set dataset.resolution to resize them"
            )
        x = np.stack(arrays)
        y = np.asarray([label for _, label in samples], dtype=np.int64)
        with open(tmp, "wb") as fh:  # a file object: savez adds no ".npz" to it
            np.savez(fh, x=x, y=y)
        decoded.extend((x, y))

    cache = LocalArtifactCache(cache_dir or default_cache_dir())
    path = cache.get_or_create(DECODED_KIND, description, produce, suffix=".npz")
    if decoded:  # decoded by this call: no need to read the file back
        x, y = decoded
        return torch.from_numpy(x), torch.from_numpy(y)
    with np.load(path) as z:
        return torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
