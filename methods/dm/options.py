"""DM's hyper-parameters (torch-free): keys of a sweep's ``method``/``search`` block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from methods.augment.options import DSA_DEFAULT, AugmentStrategy
from methods.options import PositiveInt, named


@dataclass
class DMOptions:
    """DM hyper-parameters: real images per class per step, and the DSA strategy (``none`` to disable)."""

    batch_real: PositiveInt = 256
    augment: AugmentStrategy = DSA_DEFAULT
    distill_arch: Annotated[str, named("network")] = "convnet_d3"


__all__ = ["DMOptions"]
