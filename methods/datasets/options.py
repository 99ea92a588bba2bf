"""How to load and split a dataset (torch-free): the ``dataset:`` block of a sweep file.

The dataset names and their shapes live in :mod:`methods.catalog`; :mod:`methods.datasets.loaders`
loads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt, Lt

from methods.options import PositiveFloat, PositiveInt, named

Fraction = Annotated[float, Gt(0), Lt(1)]
#: kornia's regularisation of the covariance eigenvalues in ZCA whitening (MTT/DDiF: 0.1)
ZCA_EPS = 0.1


@dataclass(frozen=True)
class DatasetOptions:
    """How to load and split a dataset (the ``dataset:`` block of a sweep file)."""

    name: Annotated[str, named("dataset")]
    root: str | None = None  # a folder, or a URI (s3://…, gs://…) staged by the orchestrator
    resolution: PositiveInt | None = None  # None: the dataset's native size
    train_per_class: Annotated[int, Ge(2)] | None = None  # seeded subset of the training set (CPU-scale runs)
    test_per_class: PositiveInt | None = None  # seeded subset of the test set
    val_per_class: PositiveInt | None = None  # validation images carved from train, per class …
    val_fraction: Fraction = 0.1  # … or this fraction of each class (when val_per_class is None)
    test_fraction: Fraction = 0.3  # test carve for sets without a test split (digits)
    split_seed: int = 0
    cache_dir: str | None = None  # node-local cache for decoded images (set by the orchestrator)
    zca: bool = False  # ZCA-whiten every split with the transform fitted on the training split (methods.datasets.zca)
    zca_eps: PositiveFloat = ZCA_EPS  # kornia's regularisation of the covariance eigenvalues


__all__ = ["ZCA_EPS", "DatasetOptions"]
