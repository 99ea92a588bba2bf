"""SRe²L's hyper-parameters (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from methods.options import NonNegativeFloat
from methods.recover.options import RecoverOptions

#: where SRe²L's statistics come from: BatchNorm running stats, conv-input stats, or auto
Sre2lStats = Literal["auto", "bn", "conv"]


@dataclass
class SRe2LOptions(RecoverOptions):
    """SRe²L hyper-parameters: the statistics weight r_bn and the statistics' source."""

    bn_weight: NonNegativeFloat = 0.01
    sre2l_stats: Sre2lStats = "auto"


__all__ = ["SRe2LOptions", "Sre2lStats"]
