"""Parameterizations (pixels, neural fields, …) and synthetic-set save/load.

:data:`PIXELS` and :data:`NEURAL_FIELD` declare ddx's parameterizations (their options and the
storage arithmetic, torch-free in :mod:`methods.parameterizations.options`) for the plugin
registry (:mod:`methods.registry`, entry-point group ``ddx.parameterizations``). The package
loads its torch modules lazily.
"""

from methods.lazy import lazy_exports
from methods.parameterizations.options import NeuralFieldOptions, PixelOptions, field_scalars, pixel_scalars
from methods.registry import ParameterizationEntry

PIXELS = ParameterizationEntry(
    "pixels", "methods.parameterizations.pixels:Pixels", options=PixelOptions, scalars=pixel_scalars
)
NEURAL_FIELD = ParameterizationEntry(
    "neural_field",
    "methods.parameterizations.neural_field:NeuralField",
    options=NeuralFieldOptions,
    scalars=field_scalars,
)

__all__ = [
    "NEURAL_FIELD",
    "PIXELS",
    "BudgetError",
    "ParamConfig",
    "Parameterization",
    "Payload",
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
    {
        **{name: "methods.parameterizations.base" for name in __all__[2:]},
        "SetShape": "methods.parameterizations.options",
    },
    extra=["NEURAL_FIELD", "PIXELS"],
)
