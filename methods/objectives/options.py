"""The objectives' hyper-parameters (torch-free): one dataclass per objective, its ``Options``.

Each field is a key of a sweep's flat ``method:``/``search:`` namespace; its type (``Literal``
vocabularies, ``annotated_types`` bounds) is what ``ddx validate`` checks, and
``__post_init__`` holds the rules that tie fields together. The implementations
(:mod:`methods.objectives.dm`, :mod:`~methods.objectives.filter_matching`, …) import these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from annotated_types import Gt, Le

from methods.augment_options import DSA_DEFAULT, AugmentStrategy
from methods.options import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, named

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
#: where SRe²L's statistics come from: BatchNorm running stats, conv-input stats, or auto
Sre2lStats = Literal["auto", "bn", "conv"]


@dataclass
class RandomOptions:
    """The random baseline reads no hyper-parameters: its set is the seeded real initialisation."""


@dataclass
class DMOptions:
    """DM hyper-parameters: real images per class per step, and the DSA strategy (``none`` to disable)."""

    batch_real: PositiveInt = 256
    augment: AugmentStrategy = DSA_DEFAULT
    distill_arch: Annotated[str, named("network")] = "convnet_d3"


@dataclass
class RecoverOptions:
    """Recover-step hyper-parameters shared by CFM, the filter family and SRe²L.

    ``iterations_per_batch``: optimisation steps per IPC batch (the loop's ``iterations`` is
    not read). ``stat_layers``: which teacher convolutions' inputs are matched (``all`` or a
    comma-separated list of conv indices / module names). ``crop_min_scale``: the lower
    area bound of RandomResizedCrop. ``clip``: clip pixels to [0, 1] after each step.
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


@dataclass
class SRe2LOptions(RecoverOptions):
    """SRe²L hyper-parameters: the statistics weight r_bn and the statistics' source."""

    bn_weight: NonNegativeFloat = 0.01
    sre2l_stats: Sre2lStats = "auto"


__all__ = [
    "FILTER_KINDS",
    "BetaSchedule",
    "CFMOptions",
    "DMOptions",
    "FilterKind",
    "FilterMatchingOptions",
    "RandomOptions",
    "RecoverOptions",
    "SRe2LOptions",
    "SpectralMatchingOptions",
    "Sre2lStats",
]
