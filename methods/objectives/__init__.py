"""Objective registry: random, DM, DC, TM, CFM and the UniDD filter family, SRe²L.

The names (and the prerequisites each objective requires) are listed in :mod:`methods.catalog`;
option dataclasses live in torch-free modules (:mod:`methods.objectives.options`). The package
loads lazily, so importing those modules does not import torch.
"""

from methods.lazy import lazy_exports

__all__ = ["OBJECTIVES", "Objective", "OptimDefaults", "Phase"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {name: "methods.objectives.base" for name in __all__},
)
