"""Real datasets: registry, loading, seeded splits (train / validation carved from train / test)."""

from methods.datasets.base import DatasetError, RealData, resize_images
from methods.datasets.eval_data import EvalData, as_eval_data, cached_eval_data
from methods.datasets.loaders import DATASETS, NATIVE_SHAPES, NEEDS_ROOT, DatasetOptions, load_dataset

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


from functools import lru_cache


@lru_cache(maxsize=4)
def cached_dataset(opts: DatasetOptions, resolution: int | None = None) -> RealData:
    """:func:`load_dataset` memoised per process (Ray reuses worker processes across tasks).

    With ``resolution`` every split — the training split included — is resized and kept: use it
    where the training split is trained on (real-data training, references). Evaluations of a
    synthetic set use :func:`cached_eval_data`, which keeps only validation and test and resizes
    them lazily.
    """
    data = load_dataset(opts)
    return data if resolution is None else data.resized(resolution)
