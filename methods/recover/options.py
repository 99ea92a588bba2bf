"""The recover step's hyper-parameters (torch-free), shared by CFM, the filter family and SRe²L."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Gt, Le

from methods.options import NonNegativeInt, PositiveInt


@dataclass
class RecoverOptions:
    """Recover-step hyper-parameters shared by CFM, the filter family and SRe²L.

    ``iterations_per_batch``: optimisation steps per IPC batch (the loop's ``iterations`` is
    not read). ``stat_layers``: which teacher convolutions' inputs are matched (``all`` or a
    comma-separated list of conv indices / module names). ``crop_min_scale``: the lower
    area bound of RandomResizedCrop. ``clip``: clip pixels to [0, 1] after each step (ZCA-whitened
    data has no per-channel pixel range, so there it clips nothing).
    ``use_ce``: add the teacher's cross-entropy on the synthetic batch. ``round_size``: IPC
    batches optimised concurrently per phase (0: the number of workers). ``stat_batch``:
    real images per forward pass of the statistics stream.
    """

    iterations_per_batch: PositiveInt = 1000
    stat_layers: str = "all"
    crop_min_scale: Annotated[float, Gt(0), Le(1)] = 0.08
    clip: bool = True
    use_ce: bool = True
    round_size: NonNegativeInt = 0
    stat_batch: PositiveInt = 256


__all__ = ["RecoverOptions"]
