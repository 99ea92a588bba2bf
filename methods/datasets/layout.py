"""Where each dataset's files lie below ``dataset.root``, found without reading any image.

The loaders (:mod:`methods.datasets.loaders`) check their root with :func:`layout_problem` and
find their folders through these functions, and the sweep validator calls it on a local root,
so a root one level too high or too low, or a folder without the expected splits, is one line
before anything runs instead of a failed trial after Ray's start-up. Standard library only
(the validator imports no torch).
"""

from __future__ import annotations

from pathlib import Path

#: torchvision's CIFAR folders and the files its readers open (their checksums are torchvision's check)
TORCHVISION_CIFAR: dict[str, tuple[str, tuple[str, ...]]] = {
    "cifar10": ("cifar-10-batches-py", (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")),
    "cifar100": ("cifar-100-python", ("train", "test")),
}


def has_torchvision_cifar(root: Path, name: str) -> bool:
    """Whether ``root`` holds torchvision's download of CIFAR ``name`` (its batch files)."""
    folder, files = TORCHVISION_CIFAR[name]
    return all((root / folder / f).is_file() for f in files)


def cifar_folders(root: Path, name: str) -> tuple[Path, Path] | None:
    """``train/`` and ``test/`` class folders of a CIFAR tree, in ``root`` or ``root/<name>``."""
    for base in (root, root / name):
        if (base / "train").is_dir() and (base / "test").is_dir():
            return base / "train", base / "test"
    return None


def tiny_imagenet_base(root: Path) -> Path:
    """Tiny-ImageNet's folder: ``root/tiny-imagenet-200`` (as unpacked) or ``root`` itself."""
    return root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root


def imagefolder_splits(root: Path) -> tuple[Path, Path] | None:
    """``root/train`` and ``root/test`` (or ``root/val``) of an ImageFolder tree."""
    test = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    return (root / "train", test) if (root / "train").is_dir() and test is not None else None


def _no_class_folders(split: Path) -> str | None:
    if not any(p.is_dir() for p in split.iterdir()):
        return f"{split} has no class sub-folders (one folder of images per class)"
    return None


def cifar_problem(root: Path, name: str) -> str | None:
    if has_torchvision_cifar(root, name):
        return None
    splits = cifar_folders(root, name)
    if splits is None:
        return (
            f"{str(root)!r} holds neither torchvision's {TORCHVISION_CIFAR[name][0]}/ batches nor train/ and test/ "
            f"class folders (looked in it and in {name}/ below it)"
        )
    return _no_class_folders(splits[0]) or _no_class_folders(splits[1])


def tiny_imagenet_problem(root: Path, name: str) -> str | None:
    base = tiny_imagenet_base(root)
    if not (base / "train").is_dir():
        return f"{str(root)!r} has no train/ (nor tiny-imagenet-200/train/): not Tiny-ImageNet as unpacked"
    if not (base / "val" / "val_annotations.txt").is_file():
        return f"missing {base / 'val' / 'val_annotations.txt'} (Tiny-ImageNet's validation labels)"
    return _no_class_folders(base / "train")


def imagefolder_problem(root: Path, name: str) -> str | None:
    splits = imagefolder_splits(root)
    if splits is None:
        return f"{str(root)!r} needs train/ and test/ (or val/) class folders"
    return _no_class_folders(splits[0]) or _no_class_folders(splits[1])


def layout_problem(name: str, root: Path) -> str | None:
    """What is wrong with ``root`` as the local folder of dataset ``name`` (None: its layout is
    right; the files themselves are read, and checked, by the loader). The check is the one the
    dataset's entry declares (``layout``); datasets without one (digits) are not checked."""
    from methods.registry import DATASETS

    return DATASETS.get(name).layout_problem(root)


__all__ = [
    "TORCHVISION_CIFAR",
    "cifar_folders",
    "cifar_problem",
    "has_torchvision_cifar",
    "imagefolder_problem",
    "imagefolder_splits",
    "layout_problem",
    "tiny_imagenet_base",
    "tiny_imagenet_problem",
]
