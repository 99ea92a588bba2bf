"""What an evaluation needs from the real data: validation and test splits, resized lazily.

A student is trained on a synthetic set and measured on the real validation and test splits
at the synthetic images' resolution. :class:`EvalData` holds those two splits **as loaded**
(normalised, at the dataset's loaded resolution) and never the training split; the resize to
the evaluation resolution happens batch by batch while the accuracy is computed
(:meth:`EvalData.batches`), so an evaluation at 256 or 512 px holds one resized batch at a
time — of :func:`eval_batch_size` images, fewer at higher resolutions so that a batch's
activations stay bounded — instead of whole resized splits (CIFAR-10's training split alone is ~35 GB at 256 px).
The resized batches are exactly the rows of :func:`~methods.datasets.base.resize_images` of
the whole split (the resize is per image).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

from torch import Tensor

from methods.datasets.base import RealData, resize_images
from methods.datasets.loaders import DatasetOptions, load_dataset

SPLITS = ("val", "test")
#: images × pixels per evaluation batch: 256 images at 32 px, 16 at 128 px, 4 at 256 px, 1 at 512 px,
#: so a batch's activations (∝ batch · r²) do not grow with the resolution
EVAL_BATCH_PIXELS = 256 * 32 * 32
MAX_EVAL_BATCH = 1024


def eval_batch_size(resolution: int) -> int:
    """Images per evaluation batch at ``resolution`` px (:data:`EVAL_BATCH_PIXELS` / r², 1…1024)."""
    return max(1, min(MAX_EVAL_BATCH, EVAL_BATCH_PIXELS // max(1, resolution * resolution)))


@dataclass(frozen=True)
class EvalData:
    """Validation/test splits at their stored resolution, served at ``resolution``."""

    name: str
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resolution: int  # the resolution batches are served at
    zca: bool = False  # the splits are ZCA-whitened (RealData.zca)

    @classmethod
    def from_real(cls, data: RealData, resolution: int | None = None) -> EvalData:
        """A view of ``data``'s validation and test splits (no copy; the training split is not kept)."""
        return cls(
            name=data.name,
            val_x=data.val_x,
            val_y=data.val_y,
            test_x=data.test_x,
            test_y=data.test_y,
            num_classes=data.num_classes,
            class_names=tuple(data.class_names),
            mean=tuple(data.mean),
            std=tuple(data.std),
            resolution=int(resolution or data.resolution),
            zca=data.zca,
        )

    @property
    def channels(self) -> int:
        return int(self.val_x.shape[1])

    @property
    def stored_resolution(self) -> int:
        return int(self.val_x.shape[-1])

    def at(self, resolution: int) -> EvalData:
        """The same splits served at ``resolution`` (no data is copied or resized here)."""
        return self if resolution == self.resolution else replace(self, resolution=int(resolution))

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return (self.val_x, self.val_y) if name == "val" else (self.test_x, self.test_y)

    def batches(self, name: str, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """``(images at self.resolution, labels)`` of split ``name``, resized one batch at a time.

        ``batch_size`` defaults to :func:`eval_batch_size` of the resolution.
        """
        x, y = self.split(name)
        batch_size = batch_size or eval_batch_size(self.resolution)
        for i in range(0, len(y), batch_size):
            yield resize_images(x[i : i + batch_size], self.resolution), y[i : i + batch_size]


def as_eval_data(data: RealData | EvalData, resolution: int) -> EvalData:
    """``data`` as an :class:`EvalData` served at ``resolution``."""
    if isinstance(data, EvalData):
        return data.at(resolution)
    return EvalData.from_real(data, resolution)


@lru_cache(maxsize=4)
def cached_eval_data(opts: DatasetOptions) -> EvalData:
    """The evaluation splits of ``opts`` at the loaded resolution, memoised per process.

    The dataset is loaded once (the training split is needed for the normalisation constants
    and the validation carve) and only the validation and test splits are kept.
    """
    return EvalData.from_real(load_dataset(opts))


__all__ = ["EVAL_BATCH_PIXELS", "SPLITS", "EvalData", "as_eval_data", "cached_eval_data", "eval_batch_size"]
