"""Real datasets: registry, loading, seeded splits (train / validation carved from train / test)."""

from methods.datasets.base import DatasetError, RealData, resize_images
from methods.datasets.loaders import DATASETS, NATIVE_SHAPES, NEEDS_ROOT, DatasetOptions, load_dataset

__all__ = [
    "DATASETS",
    "NATIVE_SHAPES",
    "NEEDS_ROOT",
    "DatasetError",
    "DatasetOptions",
    "RealData",
    "cached_dataset",
    "load_dataset",
    "resize_images",
]


from functools import lru_cache


@lru_cache(maxsize=4)
def cached_dataset(opts: DatasetOptions, resolution: int | None = None) -> RealData:
    """:func:`load_dataset` memoised per process (Ray reuses worker processes across tasks)."""
    data = load_dataset(opts)
    return data if resolution is None else data.resized(resolution)
