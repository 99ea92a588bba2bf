"""Real datasets: loading, seeded splits (train / validation carved from train / test).

:data:`ENTRIES` declares ddx's datasets (shape, whether a root is needed, the layout check, the
loader) for the plugin registry (:mod:`methods.registry`, entry-point group ``ddx.datasets``).
The package loads lazily: this module and :mod:`methods.datasets.options` (``DatasetOptions``)
import no torch, so the sweep validator can read them; everything else is imported on first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from methods.lazy import lazy_exports
from methods.registry import DatasetEntry

if TYPE_CHECKING:
    from methods.datasets.base import RealData
    from methods.datasets.options import DatasetOptions

_LOADERS = "methods.datasets.loaders:"
_LAYOUT = "methods.datasets.layout:"

#: ddx's datasets; ``smallest_class``: training images of the smallest class as shipped
ENTRIES: tuple[DatasetEntry, ...] = (
    DatasetEntry("digits", _LOADERS + "load_digits", 1, 8, needs_root=False, smallest_class=174, test_split=False),
    DatasetEntry("cifar10", _LOADERS + "load_cifar10", 3, 32, True, 5000, layout=_LAYOUT + "cifar_problem"),
    DatasetEntry("cifar100", _LOADERS + "load_cifar100", 3, 32, True, 500, layout=_LAYOUT + "cifar_problem"),
    DatasetEntry(
        "tiny_imagenet", _LOADERS + "load_tiny_imagenet", 3, 64, True, 500, layout=_LAYOUT + "tiny_imagenet_problem"
    ),
    DatasetEntry("imagefolder", _LOADERS + "load_imagefolder", 3, None, True, layout=_LAYOUT + "imagefolder_problem"),
)

__all__ = [
    "ENTRIES",
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
        "load_dataset": "methods.datasets.loaders",
        "DatasetOptions": "methods.datasets.options",
        "DatasetError": "methods.datasets.base",
        "RealData": "methods.datasets.base",
        "resize_images": "methods.datasets.base",
        "EvalData": "methods.datasets.eval_data",
        "as_eval_data": "methods.datasets.eval_data",
        "cached_eval_data": "methods.datasets.eval_data",
    },
    extra=["ENTRIES", "cached_dataset"],
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
