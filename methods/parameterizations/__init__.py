"""Parameterization registry (pixels, neural fields, …) and synthetic-set save/load.

The names are listed in :mod:`methods.catalog`; ``SetShape``, the option dataclasses and the
storage arithmetic live in the torch-free :mod:`methods.parameterizations.options`. The
package loads lazily, so importing that module does not import torch.
"""

from methods.lazy import lazy_exports

__all__ = [
    "PARAMETERIZATIONS",
    "BudgetError",
    "ParamConfig",
    "Parameterization",
    "SetShape",
    "build_parameterization",
    "check_budget",
    "from_payload",
    "load_synthetic",
    "payload_bytes",
    "payload_from_bytes",
    "save_synthetic",
    "synthetic_payload",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {**{name: "methods.parameterizations.base" for name in __all__}, "SetShape": "methods.parameterizations.options"},
)
