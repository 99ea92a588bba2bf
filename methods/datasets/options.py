"""How to load and split a dataset (torch-free): the ``dataset:`` block of a sweep file.

The dataset names and their shapes live in :mod:`methods.catalog`; :mod:`methods.datasets.loaders`
loads them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from annotated_types import Ge, Gt, Lt

from methods.options import PositiveFloat, PositiveInt, Resolution, named

Fraction = Annotated[float, Gt(0), Lt(1)]
#: kornia's regularisation of the covariance eigenvalues in ZCA whitening (MTT/DDiF: 0.1)
ZCA_EPS = 0.1
#: what ZCA whitens: ``pixels`` — the [0, 1] pixels, with no per-channel normalisation (MTT's
#: ``utils.py`` ``get_dataset``); ``normalized`` — the per-channel normalised images (ddx before
#: it matched MTT: ε = 0.1 is then ~16× weaker relative to CIFAR's variances)
ZcaSpace = Literal["pixels", "normalized"]
ZCA_SPACES: tuple[str, ...] = get_args(ZcaSpace)
ZCA_SPACE_DEFAULT = "pixels"


@dataclass(frozen=True)
class DatasetOptions:
    """How to load and split a dataset (the ``dataset:`` block of a sweep file)."""

    name: Annotated[str, named("dataset")]
    root: str | None = None  # a folder, or a URI (s3://…, gs://…) staged by the orchestrator
    resolution: Resolution | None = None  # None: the dataset's native size
    train_per_class: Annotated[int, Ge(2)] | None = None  # seeded subset of the training set (CPU-scale runs)
    test_per_class: PositiveInt | None = None  # seeded subset of the test set
    val_per_class: PositiveInt | None = None  # validation images carved from train, per class …
    val_fraction: Fraction = 0.1  # … or this fraction of each class (when val_per_class is None)
    test_fraction: Fraction = 0.3  # test carve for sets without a test split (digits)
    split_seed: int = 0
    cache_dir: str | None = None  # node-local cache for decoded images (set by the orchestrator)
    zca: bool = False  # ZCA-whiten every split with the transform fitted on the training split (methods.datasets.zca)
    zca_eps: PositiveFloat = ZCA_EPS  # kornia's regularisation of the covariance eigenvalues
    zca_space: ZcaSpace = ZCA_SPACE_DEFAULT  # whiten [0, 1] pixels (MTT) or the per-channel normalised images

    def identity(self) -> dict[str, object]:
        """The options that determine the data (artifact identities): all but the node-local ``cache_dir``
        (``root`` as the sweep names it, never a node-local copy).

        ``zca_space`` enters only for ZCA data: data whitened before ZCA fitted the raw pixels (MTT's
        way) was normalise-first and its identities lack the key, so artifacts made from it are not
        reused, while the identities of un-whitened data stay as they were.
        """
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "cache_dir"}
        if not self.zca:
            del out["zca_space"]
        return out


def carve_size(available: int, per_class: int | None, fraction: float | None) -> int:
    """Images of one class carved out of its ``available`` ones: ``per_class``, else
    round(``available`` · ``fraction``) (the loader's validation and test carves)."""
    return per_class if per_class is not None else round(available * float(fraction or 0.0))


def train_images_left(class_images: int, opts: DatasetOptions, has_test_split: bool) -> int:
    """Training images a class of ``class_images`` keeps after the loader's splits, in its order:
    the test carve (``test_fraction``, datasets without a test split), ``train_per_class``, then the
    validation carve. Non-decreasing in ``class_images``, so the smallest class gives the minimum."""
    left = class_images
    if not has_test_split:
        left -= carve_size(left, None, opts.test_fraction)
    if opts.train_per_class is not None:
        left = min(left, opts.train_per_class)
    return left - carve_size(left, opts.val_per_class, opts.val_fraction)


__all__ = [
    "ZCA_EPS",
    "ZCA_SPACES",
    "ZCA_SPACE_DEFAULT",
    "DatasetOptions",
    "ZcaSpace",
    "carve_size",
    "train_images_left",
]
