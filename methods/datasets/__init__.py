"""Real datasets: registry, loading, seeded splits (train / validation carved from train / test).

The package loads lazily: :mod:`methods.datasets.options` (``DatasetOptions``) imports no
torch, so the sweep validator can read it; everything else is imported on first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from methods.lazy import lazy_exports

if TYPE_CHECKING:
    from methods.datasets.base import RealData
    from methods.datasets.options import DatasetOptions

__all__ = [
    "DATASETS",
    "NATIVE_SHAPES",
    "NEEDS_ROOT",
    "DatasetError",
    "DatasetOptions",
    "EvalData",
    "RealData",
    "as_eval_data",
    "cached_dataset",
    "cached_eval_data",
    "load_dataset",
    "resize_images",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DATASETS": "methods.datasets.loaders",
        "load_dataset": "methods.datasets.loaders",
        "NATIVE_SHAPES": "methods.catalog",
        "NEEDS_ROOT": "methods.catalog",
        "DatasetOptions": "methods.datasets.options",
        "DatasetError": "methods.datasets.base",
        "RealData": "methods.datasets.base",
        "resize_images": "methods.datasets.base",
        "EvalData": "methods.datasets.eval_data",
        "as_eval_data": "methods.datasets.eval_data",
        "cached_eval_data": "methods.datasets.eval_data",
    },
    extra=["cached_dataset"],
)


@lru_cache(maxsize=4)
def cached_dataset(opts: DatasetOptions, resolution: int | None = None) -> RealData:
    """:func:`load_dataset` memoised per process (Ray reuses worker processes across tasks).

    With ``resolution`` every split — the training split included — is resized and kept: use it
    where the training split is trained on (real-data training, references). Evaluations of a
    synthetic set use :func:`cached_eval_data`, which keeps only validation and test and resizes
    them lazily.
    """
    from methods.datasets.loaders import load_dataset

    data = load_dataset(opts)
    return data if resolution is None else data.resized(resolution)
