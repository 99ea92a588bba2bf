"""Dataset loading: seeded splits, ImageFolder at any resolution, CIFAR-10 from the JPEG tree and
from torchvision's binary batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from methods.datasets import DatasetError, DatasetOptions, load_dataset


def _row_set(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.flatten(1)}


def test_digits_splits_are_disjoint_seeded_and_stratified() -> None:
    d = load_dataset(DatasetOptions(name="digits", val_per_class=10))
    assert (d.num_classes, d.channels, d.resolution) == (10, 1, 8)
    assert len(d.train_y) + len(d.val_y) + len(d.test_y) == 1797
    assert torch.bincount(d.val_y).tolist() == [10] * 10
    assert not (_row_set(d.train_x) & _row_set(d.val_x))
    again = load_dataset(DatasetOptions(name="digits", val_per_class=10))
    other = load_dataset(DatasetOptions(name="digits", val_per_class=10, split_seed=1))
    assert torch.equal(d.val_x, again.val_x) and not torch.equal(d.val_x, other.val_x)
    # normalised with the training split's own statistics
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-2


def test_digits_read_from_the_packaged_csv_equal_scikit_learns_loader(monkeypatch) -> None:
    from sklearn.datasets import load_digits

    from methods.datasets import loaders

    ref = load_digits()
    images, target = loaders.digits_arrays()
    assert np.array_equal(images, ref.images) and np.array_equal(target, ref.target)
    assert target.dtype == np.int64 and images.shape == (1797, 8, 8)
    # where the file is not found (another layout), scikit-learn's own loader gives the same arrays
    monkeypatch.setattr(loaders.importlib.util, "find_spec", lambda name: None)
    images2, target2 = loaders.digits_arrays()
    assert np.array_equal(images2, ref.images) and np.array_equal(target2, ref.target)


def test_digits_resized_and_limited() -> None:
    d = load_dataset(DatasetOptions(name="digits", resolution=16, train_per_class=20, val_per_class=5))
    assert d.train_x.shape[1:] == (1, 16, 16)
    assert torch.bincount(d.train_y).tolist() == [15] * 10  # 20 per class, 5 carved for validation


def _tree(root: Path, sizes: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, color in enumerate(("red", "blue", "green")):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i, size in enumerate(sizes):
                arr = (rng.random((size[1], size[0], 3)) * 60).astype(np.uint8)
                img = Image.new("RGB", size, color)
                img = Image.fromarray(np.clip(np.asarray(img) + arr, 0, 255).astype(np.uint8))
                img.save(folder / f"{i}.png")


def test_imagefolder_any_size_is_resized(tmp_path: Path) -> None:
    _tree(tmp_path / "data", [(40, 30), (64, 64), (17, 25), (33, 33), (50, 20)])
    d = load_dataset(
        DatasetOptions(
            name="imagefolder",
            root=str(tmp_path / "data"),
            resolution=12,
            val_per_class=1,
            cache_dir=str(tmp_path / "cache"),
        )
    )
    assert d.class_names == ["class_0", "class_1", "class_2"]
    assert d.train_x.shape == (12, 3, 12, 12) and d.test_x.shape == (15, 3, 12, 12)
    # class colours survive decoding: the red class is reddest in raw pixel space
    raw = d.denormalize(d.test_x)
    red = raw[d.test_y == 0].mean(dim=(0, 2, 3))
    assert red[0] > red[1] and red[0] > red[2]
    assert list((tmp_path / "cache" / "decoded").glob("*.npz"))  # decoded once, cached


def test_imagefolder_without_resolution_needs_equal_sizes(tmp_path: Path) -> None:
    _tree(tmp_path / "data", [(40, 30), (64, 64)])
    with pytest.raises(DatasetError, match="different sizes"):
        load_dataset(
            DatasetOptions(
                name="imagefolder", root=str(tmp_path / "data"), val_per_class=1, cache_dir=str(tmp_path / "cache")
            )
        )


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (DatasetOptions(name="cifar10"), "needs dataset.root"),
        (DatasetOptions(name="cifar10", root="/no/such/place"), "does not exist"),
        (DatasetOptions(name="imagefolder", root="/"), "needs train/ and test/"),
    ],
)
def test_bad_roots_fail_clearly(opts: DatasetOptions, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(opts)


def test_cifar10_from_the_jpeg_tree(cifar10_root: Path, tmp_path: Path) -> None:
    d = load_dataset(
        DatasetOptions(
            name="cifar10",
            root=str(cifar10_root),
            train_per_class=12,
            val_per_class=2,
            test_per_class=5,
            cache_dir=str(tmp_path),
        )
    )
    assert d.class_names[:3] == ["airplane", "automobile", "bird"]
    assert d.train_x.shape == (100, 3, 32, 32) and d.val_x.shape == (20, 3, 32, 32)
    assert d.test_x.shape == (50, 3, 32, 32)
    assert torch.bincount(d.test_y).tolist() == [5] * 10
    assert d.values_per_instance == 3 * 32 * 32


def _write_cifar_batch(path: Path, values: list[int], labels: list[int]) -> None:
    """One file of torchvision's ``cifar-10-batches-py`` layout: constant images of the given values."""
    import pickle

    data = np.repeat(np.asarray(values, dtype=np.uint8)[:, None], 3 * 32 * 32, axis=1)
    with open(path, "wb") as f:
        pickle.dump({"data": data, "labels": labels, "batch_label": path.name}, f)


def test_cifar10_from_torchvisions_binary_batches(tmp_path: Path, monkeypatch) -> None:
    """The batches layout goes through torchvision's own reader (its md5 check is bypassed: these
    files are written here, not downloaded); labels, class names and splits come through intact."""
    import pickle

    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    names = [f"class{c}" for c in range(10)]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    for b in range(1, 6):  # 2 images per class per batch: train value = 20·label + 2·(b−1) + k
        labels = [c for c in range(10) for _ in range(2)]
        values = [20 * c + 2 * (b - 1) + k for c in range(10) for k in range(2)]
        _write_cifar_batch(base / f"data_batch_{b}", values, labels)
    _write_cifar_batch(base / "test_batch", [255 - c for c in range(10)] * 3, list(range(10)) * 3)

    d = load_dataset(DatasetOptions(name="cifar10", root=str(tmp_path), val_per_class=1, cache_dir=str(tmp_path / "c")))
    assert d.class_names == names
    assert d.train_x.shape == (90, 3, 32, 32) and d.val_x.shape == (10, 3, 32, 32) and d.test_x.shape == (30, 3, 32, 32)

    def pixel(x: torch.Tensor) -> torch.Tensor:  # de-normalise to the stored uint8 value of each image
        mean, std = torch.tensor(d.mean).view(1, -1, 1, 1), torch.tensor(d.std).view(1, -1, 1, 1)
        return ((x * std + mean) * 255).round()[:, 0, 0, 0].long()

    train_values, val_values = pixel(d.train_x), pixel(d.val_x)
    assert torch.equal(train_values // 20, d.train_y) and torch.equal(val_values // 20, d.val_y)
    every_image_once = sorted(20 * c + j for c in range(10) for j in range(10))
    assert sorted(torch.cat([train_values, val_values]).tolist()) == every_image_once
    assert torch.equal(pixel(d.test_x), 255 - d.test_y)


def test_layout_problem_names_what_is_missing_for_each_dataset(tmp_path: Path) -> None:
    """The validator's layout check (torch-free): a root at the wrong level, a file, splits without classes."""
    from methods.datasets.layout import layout_problem

    tree = tmp_path / "tree"
    for split in ("train", "test"):
        (tree / "cifar10" / split / "cat").mkdir(parents=True)
    assert layout_problem("cifar10", tree) is None  # train/ and test/ one level down, in cifar10/
    assert layout_problem("cifar10", tree / "cifar10") is None
    assert "neither torchvision's cifar-10-batches-py/" in layout_problem("cifar10", tmp_path)
    assert layout_problem("imagefolder", tree / "cifar10") is None
    assert "needs train/ and test/ (or val/)" in layout_problem("imagefolder", tree)  # one level too high
    (tmp_path / "file").write_text("")
    assert "is not a folder" in layout_problem("cifar100", tmp_path / "file")
    (tmp_path / "flat" / "train").mkdir(parents=True)
    (tmp_path / "flat" / "val").mkdir()
    assert "has no class sub-folders" in layout_problem("imagefolder", tmp_path / "flat")
    batches = tmp_path / "tv" / "cifar-100-python"
    batches.mkdir(parents=True)
    (batches / "train").write_bytes(b"")
    assert "neither" in layout_problem("cifar100", tmp_path / "tv")  # test file missing
    (batches / "test").write_bytes(b"")
    assert layout_problem("cifar100", tmp_path / "tv") is None  # their checksums are the loader's (torchvision's)
    with pytest.raises(DatasetError, match="cifar-100-python/ batches fail their checksums"):
        load_dataset(DatasetOptions(name="cifar100", root=str(tmp_path / "tv")))
    tiny = tmp_path / "tiny" / "tiny-imagenet-200"
    (tiny / "train" / "n01").mkdir(parents=True)
    assert "val_annotations.txt" in layout_problem("tiny_imagenet", tmp_path / "tiny")
    (tiny / "val").mkdir()
    (tiny / "val" / "val_annotations.txt").write_text("")
    assert layout_problem("tiny_imagenet", tmp_path / "tiny") is None
    assert layout_problem("digits", tmp_path) is None  # no root to check


@pytest.mark.parametrize(
    "over",
    [{}, {"train_per_class": 20}, {"val_per_class": 7}, {"test_fraction": 0.5, "val_fraction": 0.25}],
    ids=["defaults", "train_per_class", "val_per_class", "fractions"],
)
def test_the_declared_images_per_class_are_what_the_loader_keeps(over: dict) -> None:
    """``ddx validate`` bounds ``ipc`` by the dataset entry's arithmetic (no data loaded): it must
    equal the smallest class of the training split the loader really builds."""
    from methods.datasets.loaders import digits_arrays
    from methods.datasets.options import train_images_left
    from methods.registry import DATASETS

    info = DATASETS.get("digits")
    assert info.smallest_class == int(np.bincount(digits_arrays()[1]).min())
    opts = DatasetOptions(name="digits", **over)
    kept = int(torch.bincount(load_dataset(opts).train_y).min())
    assert train_images_left(info.smallest_class, opts, info.test_split) == kept
