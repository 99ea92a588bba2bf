"""Objective registry: random, DM, DC, TM, … (CFM and the UniDD filter family register here too)."""

from methods.objectives import dc, dm, filter_matching, random_real, sre2l, tm  # noqa: F401  (registration)
from methods.objectives.base import OBJECTIVES, Objective, OptimDefaults, Phase

__all__ = ["OBJECTIVES", "Objective", "OptimDefaults", "Phase"]
