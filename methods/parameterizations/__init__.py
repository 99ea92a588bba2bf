"""Parameterization registry (pixels, neural fields, …) and synthetic-set save/load."""

from methods.parameterizations import neural_field, pixels  # noqa: F401  (registration)
from methods.parameterizations.base import (
    PARAMETERIZATIONS,
    BudgetError,
    ParamConfig,
    Parameterization,
    SetShape,
    build_parameterization,
    check_budget,
    from_payload,
    load_synthetic,
    save_synthetic,
    synthetic_payload,
)

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
    "save_synthetic",
    "synthetic_payload",
]
