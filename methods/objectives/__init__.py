"""Objective registry: random, DM, … (CFM and the UniDD filter family register here too)."""

from methods.objectives import dm, filter_matching, random_real, sre2l  # noqa: F401  (registration)
from methods.objectives.base import OBJECTIVES, Objective, OptimDefaults, Phase

__all__ = ["OBJECTIVES", "Objective", "OptimDefaults", "Phase"]
