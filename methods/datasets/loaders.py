"""Dataset loaders: digits (embedded), CIFAR-10/100, Tiny-ImageNet and any ImageFolder tree.

Each loader reads raw splits; :func:`load_dataset` splits and normalises any registered dataset
(the loader its entry names, :data:`methods.datasets.ENTRIES` or a plugin's)."""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from methods.datasets.base import DatasetError, RealData, limit_per_class, resize_images, stratified_split
from methods.datasets.folders import decode_samples, default_cache_dir, list_class_folder, select_per_class
from methods.datasets.layout import cifar_folders, imagefolder_splits, layout_problem, tiny_imagenet_base
from methods.datasets.options import DatasetOptions
from methods.datasets.zca import apply_zca, fit_zca
from methods.registry import DATASETS


@dataclass
class RawSplits:
    """Decoded images in [0, 1] (float) or uint8, before splitting and normalisation."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor | None
    test_y: Tensor | None
    class_names: list[str]


def _as_float(x: Tensor) -> Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _require_root(opts: DatasetOptions) -> Path:
    if not opts.root:
        raise DatasetError(f"dataset {opts.name!r} needs dataset.root (a folder with the data)")
    root = Path(opts.root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset.root {str(root)!r} does not exist")
    problem = layout_problem(opts.name, root)  # the validator's check, for roots staged from a URI too
    if problem:
        raise DatasetError(f"dataset.root: {problem}")
    return root


def _folder_splits(opts: DatasetOptions, train_dir: Path, test_dir: Path, channels: int) -> RawSplits:
    cache = Path(opts.cache_dir) if opts.cache_dir else None
    classes, train = list_class_folder(train_dir)
    test_classes, test = list_class_folder(test_dir)
    if test_classes != classes:
        raise DatasetError(f"class folders differ between {train_dir} and {test_dir}")
    train = select_per_class(train, opts.train_per_class, opts.split_seed)
    test = select_per_class(test, opts.test_per_class, opts.split_seed + 1)
    tx, ty = decode_samples(train, opts.resolution, channels, cache)
    vx, vy = decode_samples(test, opts.resolution, channels, cache)
    return RawSplits(tx, ty, vx, vy, classes)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (images 1797×8×8 float64 in 0..16, targets int64).

    Read straight from the CSV that ships inside the package (``sklearn/datasets/data/
    digits.csv.gz``: 64 pixel columns, then the label), the file ``sklearn.datasets.load_digits``
    itself parses: importing ``sklearn.datasets`` (SciPy and the rest) costs about a second in
    every fresh worker process, the data a few milliseconds. Falls back to ``load_digits``
    where the file is not there.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    csv = next((Path(r) / "datasets" / "data" / "digits.csv.gz" for r in roots), None)
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits as sk_digits

        d = sk_digits()
        return d.images, d.target.astype(np.int64)
    with gzip.open(csv, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def load_digits(opts: DatasetOptions) -> RawSplits:
    """scikit-learn's 1,797 8×8 handwritten digits (ships with the package; no download)."""
    images, target = digits_arrays()
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(target)
    return RawSplits(x, y, None, None, [str(i) for i in range(10)])


def _torchvision_cifar(root: Path, reader: str) -> RawSplits | None:
    """torchvision's own CIFAR reader ``reader`` (``CIFAR10``/``CIFAR100``; it checks the files'
    md5); None when the layout is absent. torchvision is imported here, not with this module, so
    that digits loads without it (a process that only loads data skips its ~1.4 s import, most of
    it ``torch._dynamo``)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, reader)
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
    except RuntimeError:  # "Dataset not found or corrupted"
        return None

    def arrays(ds: object) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # type: ignore[attr-defined]
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)  # type: ignore[attr-defined]

    tx, ty = arrays(train)
    vx, vy = arrays(test)
    return RawSplits(tx, ty, vx, vy, list(train.classes))


def _subset_raw(raw: RawSplits, opts: DatasetOptions) -> RawSplits:
    ti = limit_per_class(raw.train_y, opts.train_per_class, opts.split_seed)
    out = RawSplits(raw.train_x[ti], raw.train_y[ti], raw.test_x, raw.test_y, raw.class_names)
    if raw.test_y is not None and raw.test_x is not None:
        vi = limit_per_class(raw.test_y, opts.test_per_class, opts.split_seed + 1)
        out.test_x, out.test_y = raw.test_x[vi], raw.test_y[vi]
    return out


def _cifar(opts: DatasetOptions, reader: str, folder: str) -> RawSplits:
    root = _require_root(opts)
    raw = _torchvision_cifar(root, reader)
    if raw is not None:
        return _subset_raw(raw, opts)
    splits = cifar_folders(root, opts.name)
    if splits is not None:
        return _folder_splits(opts, *splits, 3)
    # the layout check passed on torchvision's files, which torchvision then rejected
    raise DatasetError(
        f"dataset.root {str(root)!r}: torchvision's {folder}/ batches fail their checksums; download them again"
    )


def load_cifar10(opts: DatasetOptions) -> RawSplits:
    """CIFAR-10: torchvision's ``cifar-10-batches-py`` or an ImageFolder tree with train/ and test/."""
    return _cifar(opts, "CIFAR10", "cifar-10-batches-py")


def load_cifar100(opts: DatasetOptions) -> RawSplits:
    """CIFAR-100 (fine labels): torchvision's ``cifar-100-python`` or an ImageFolder tree."""
    return _cifar(opts, "CIFAR100", "cifar-100-python")


def load_tiny_imagenet(opts: DatasetOptions) -> RawSplits:
    """Tiny-ImageNet-200 as downloaded: ``train/<wnid>/images``; the labelled ``val/`` is the test split."""
    root = _require_root(opts)
    base = tiny_imagenet_base(root)
    classes, train = list_class_folder(base / "train")
    ann = base / "val" / "val_annotations.txt"  # there: the layout check of _require_root
    index = {c: i for i, c in enumerate(classes)}
    test = []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            test.append((str(base / "val" / "images" / parts[0]), index[parts[1]]))
    train = select_per_class(train, opts.train_per_class, opts.split_seed)
    test = select_per_class(test, opts.test_per_class, opts.split_seed + 1)
    cache = Path(opts.cache_dir) if opts.cache_dir else None
    tx, ty = decode_samples(train, opts.resolution, 3, cache)
    vx, vy = decode_samples(test, opts.resolution, 3, cache)
    return RawSplits(tx, ty, vx, vy, classes)


def load_imagefolder(opts: DatasetOptions) -> RawSplits:
    """Any tree ``<root>/train/<class>/*`` with ``<root>/test/`` (or ``val/``); resized to ``resolution``."""
    root = _require_root(opts)
    splits = imagefolder_splits(root)
    assert splits is not None  # _require_root's layout check found them
    return _folder_splits(opts, *splits, 3)


def load_dataset(opts: DatasetOptions) -> RealData:
    """Load, split (seeded validation carve) and normalise a registered dataset.

    Without ZCA every split is normalised per channel with the training split's mean and std.
    With ``opts.zca`` (and the default ``zca_space="pixels"``) the [0, 1] pixels are whitened
    directly, as MTT does (mtt-distillation ``utils.py`` ``get_dataset``: no ``Normalize`` when
    ``args.zca``), and ``mean``/``std`` are the identity (0, 1); ``zca_space="normalized"``
    normalises first and whitens the normalised images.
    """
    raw = DATASETS.get(opts.name).implementation()(opts)
    train_x, train_y = _as_float(raw.train_x), raw.train_y
    if raw.test_x is None or raw.test_y is None:
        keep, carve = stratified_split(train_y, None, opts.test_fraction, opts.split_seed + 7)
        test_x, test_y = train_x[carve], train_y[carve]
        train_x, train_y = train_x[keep], train_y[keep]
        ti = limit_per_class(train_y, opts.train_per_class, opts.split_seed)
        train_x, train_y = train_x[ti], train_y[ti]
        vi = limit_per_class(test_y, opts.test_per_class, opts.split_seed + 1)
        test_x, test_y = test_x[vi], test_y[vi]
    else:
        test_x, test_y = _as_float(raw.test_x), raw.test_y
    keep, carve = stratified_split(train_y, opts.val_per_class, opts.val_fraction, opts.split_seed)
    val_x, val_y = train_x[carve], train_y[carve]
    train_x, train_y = train_x[keep], train_y[keep]
    if opts.resolution is not None:
        train_x, val_x, test_x = (resize_images(t, opts.resolution) for t in (train_x, val_x, test_x))
    whitening = None
    if opts.zca and opts.zca_space == "pixels":
        # MTT's utils.py get_dataset: with ZCA the transform is ToTensor() alone (no Normalize) and
        # kornia's ZCA (eps 0.1) is fitted on those [0, 1] pixels (here: on the training split only)
        mean, std = torch.zeros(train_x.shape[1]), torch.ones(train_x.shape[1])  # no per-channel step
    else:
        mean = train_x.mean(dim=(0, 2, 3))
        std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)

        def norm(t: Tensor) -> Tensor:
            return ((t - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).contiguous()

        train_x, val_x, test_x = norm(train_x), norm(val_x), norm(test_x)
    if opts.zca:  # fitted on the training split only, applied to every split
        cache_root = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
        whitening, _ = fit_zca(train_x, opts.zca_eps, cache_root)
        train_x, val_x, test_x = (apply_zca(whitening, t) for t in (train_x, val_x, test_x))
    return RealData(
        name=opts.name,
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=len(raw.class_names),
        class_names=raw.class_names,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        split_seed=opts.split_seed,
        zca=opts.zca,
        whitening=whitening,
    )
