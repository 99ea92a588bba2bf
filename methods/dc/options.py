"""Options of gradient matching (DC, Zhao et al. 2021; with DSA, Zhao & Bilen 2021). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt

from methods.augment.options import AugmentStrategy
from methods.options import named
from methods.tm.options import DSA_DEFAULT_STRATEGY

#: DC's ``get_loops``: IPC → (outer_loop, inner_loop), the papers' per-IPC settings
DC_LOOPS: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def dc_loops(ipc: int) -> tuple[int, int]:
    """DC's (outer_loop, inner_loop) for ``ipc``; IPCs the paper does not list take the nearest listed one
    (ties: the smaller)."""
    if ipc in DC_LOOPS:
        return DC_LOOPS[ipc]
    nearest = min(DC_LOOPS, key=lambda k: (abs(k - ipc), k))
    return DC_LOOPS[nearest]


@dataclass
class DCOptions:
    """DC hyper-parameters (keys of the sweep's ``method`` block; defaults: the DC/DSA code).

    Each iteration draws a fresh ``distill_arch`` network and runs ``outer_loop`` synthetic
    updates; between two of them the network trains ``inner_loop`` epochs on the current
    synthetic set (SGD ``lr_net``, momentum ``net_momentum``, batch ``batch_train``, DSA);
    ``net_momentum`` 0 is the reference's plain SGD (DatasetCondensation ``main.py``:
    ``optimizer_net = torch.optim.SGD(net.parameters(), lr=args.lr_net)``, no momentum).
    ``outer_loop``/``inner_loop`` ``None`` take DC's per-IPC table (:data:`DC_LOOPS`).
    ``batch_real`` real images per class per update; ``augment`` the DSA strategy
    (``none``: DC without DSA).
    """

    batch_real: Annotated[int, Ge(1)] = 256
    outer_loop: Annotated[int, Ge(1)] | None = None
    inner_loop: Annotated[int, Ge(0)] | None = None
    lr_net: Annotated[float, Gt(0)] = 0.01
    net_momentum: Annotated[float, Ge(0)] = 0.0
    batch_train: Annotated[int, Ge(1)] = 256
    augment: AugmentStrategy = DSA_DEFAULT_STRATEGY
    distill_arch: Annotated[str, named("network")] = "convnet_d3"

    def loops(self, ipc: int) -> tuple[int, int]:
        outer, inner = dc_loops(ipc)
        return (self.outer_loop if self.outer_loop is not None else outer,
                self.inner_loop if self.inner_loop is not None else inner)  # fmt: skip


__all__ = ["DC_LOOPS", "DCOptions", "dc_loops"]
