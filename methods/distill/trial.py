"""The hyper-parameters every trial holds (torch-free): which components, and the storage budget.

:mod:`methods.distill.pipeline` assembles a distillation from them; the sweep validator checks them
like any component's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from methods.options import PositiveInt, named


@dataclass
class TrialOptions:
    """``objective`` and ``parameterization`` name the components; ``distill_arch`` the network
    objectives that embed with one use; ``ipc`` the storage budget in real images per class."""

    objective: Annotated[str, named("objective")]
    ipc: PositiveInt
    parameterization: Annotated[str, named("parameterization")] = "pixels"
    distill_arch: Annotated[str, named("network")] = "convnet_d3"


__all__ = ["TrialOptions"]
