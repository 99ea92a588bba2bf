"""The UniDD filter family's hyper-parameters (torch-free): CFM, LFM and ``filter_matching``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from methods.options import NonNegativeFloat, PositiveFloat, PositiveInt
from methods.recover.options import RecoverOptions

#: UniDD Table 1 filters: kind → (response on the filter term, response on the signal term)
FilterKind = Literal["all_pass", "dc", "mtt", "high_pass", "low_pass"]
FILTER_KINDS: dict[str, tuple[str, str]] = {
    "all_pass": ("one", "one"),
    "dc": ("identity", "one"),
    "mtt": ("power", "geometric"),
    "high_pass": ("resolvent", "resolvent"),
    "low_pass": ("identity", "identity"),
}
assert tuple(FILTER_KINDS) == get_args(FilterKind), "FilterKind must name every filter"
#: β over the IPC batches: cosine (CFM Eq. 16), linear, constant
BetaSchedule = Literal["cosine", "linear", "constant"]


@dataclass
class SpectralMatchingOptions(RecoverOptions):
    """Loss weights of Eq. 21: η on the filter and signal terms, and the Table 5 switches."""

    eta: NonNegativeFloat = 0.1
    use_filter: bool = True
    use_signal: bool = True

    def __post_init__(self) -> None:
        if not (self.use_filter or self.use_signal or self.use_ce):
            raise ValueError("every loss term is switched off (use_filter, use_signal, use_ce); enable one")


@dataclass
class CFMOptions(SpectralMatchingOptions):
    """CFM's frequency band β (Eq. 16) and its schedule over the IPC batches."""

    beta: PositiveFloat = 0.1
    beta_schedule: BetaSchedule = "cosine"


@dataclass
class FilterMatchingOptions(CFMOptions):
    """Any UniDD filter: ``filter`` names it; ``alpha``/``power`` parameterise ``mtt``."""

    filter: FilterKind = "high_pass"
    beta_schedule: BetaSchedule = "constant"
    alpha: PositiveFloat = 0.1
    power: PositiveInt = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.use_filter and not (self.use_signal or self.use_ce) and FILTER_KINDS[self.filter][0] == "one":
            raise ValueError(f"the {self.filter} filter's filter term is constant; enable use_signal or use_ce")


__all__ = [
    "FILTER_KINDS",
    "BetaSchedule",
    "CFMOptions",
    "FilterKind",
    "FilterMatchingOptions",
    "SpectralMatchingOptions",
]
