"""UniDD's spectral view of dataset distillation: filters (Table 1) and layer statistics (Eq. 17–19)."""

from methods.spectral.filters import BETA_SCHEDULES, FILTER_KINDS, SpectralFilter, beta_at, spectral_apply
from methods.spectral.statistics import (
    LayerMoments,
    MovingStatistics,
    accumulate_moments,
    batch_statistics,
    cached_real_statistics,
    channel_mean_var,
    conv_inputs,
    distinct_input_convs,
    real_statistics,
    select_convs,
    statistics_key,
)

__all__ = [
    "BETA_SCHEDULES",
    "FILTER_KINDS",
    "LayerMoments",
    "MovingStatistics",
    "SpectralFilter",
    "accumulate_moments",
    "batch_statistics",
    "beta_at",
    "cached_real_statistics",
    "channel_mean_var",
    "conv_inputs",
    "distinct_input_convs",
    "real_statistics",
    "select_convs",
    "spectral_apply",
    "statistics_key",
]
