"""DDiF's saved neural fields (``SynSet/DDiF.py``'s per-field SIREN state dicts) onto ddx's stacked
``neural_field`` state, with the file's value space folded into the fields' linear output layer.

Used by :func:`methods.evaluation.published_sets.read_ddif`; see that module's docstring for the
file format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from methods.datasets import RealData
from methods.evaluation.set_spaces import SetError, Stats


def siren_shape(field: Mapping[str, object]) -> tuple[int, int, int]:
    """(sine layers L, width d, coordinate dims n) of one DDiF field's state dict."""
    depth = 0
    while f"net.{depth}.linear.weight" in field:
        depth += 1
    needed = [f"net.{i}.linear.{p}" for i in range(depth) for p in ("weight", "bias")]
    needed += ["last_layer.linear.weight", "last_layer.linear.bias"]
    missing = [key for key in needed if key not in field]
    if depth == 0 or missing:
        raise SetError(f"a field's state dict lacks {missing or ['net.0.linear.weight']} (DDiF's Siren layers)")
    width, dims = (int(v) for v in field["net.0.linear.weight"].shape)
    return depth, width, dims


def field_state(fields: Sequence[Mapping[str, object]], order: list[int], depth: int, width: int) -> dict[str, Tensor]:
    """ddx's stacked ``weight_k``/``bias_k`` from DDiF's per-field state dicts, in ``order``."""
    names = [f"net.{i}.linear" for i in range(depth)] + ["last_layer.linear"]
    ref = {f"{n}.{p}": tuple(fields[0][f"{n}.{p}"].shape) for n in names for p in ("weight", "bias")}
    state: dict[str, Tensor] = {}
    for k, n in enumerate(names):
        for p, key in (("weight", f"weight_{k}"), ("bias", f"bias_{k}")):
            rows = []
            for j in order:
                t = fields[j].get(f"{n}.{p}")
                if not isinstance(t, Tensor) or tuple(t.shape) != ref[f"{n}.{p}"]:
                    raise SetError(f"field {j}: {n}.{p} differs in shape from field 0's {ref[f'{n}.{p}']}")
                rows.append(t.detach().float())
            state[key] = torch.stack(rows)
    return state


def ipc_of(per_class: int, scalars: int, per_image: int) -> int:
    """The IPC whose budget holds exactly ``per_class`` fields of ``scalars`` (⌊IPC·per_image/scalars⌋)."""
    ipc = max(1, math.ceil(per_class * scalars / per_image))
    if ipc * per_image // scalars != per_class:
        raise SetError(
            f"{per_class} fields per class of {scalars} scalars match no IPC budget (IPC {ipc} holds "
            f"{ipc * per_image // scalars}); ddx counts fields by the budget (DDiF's dipc is not supported)"
        )
    return ipc


def affine(used: str, data: RealData, stats: Stats | None) -> tuple[Tensor, Tensor] | None:
    """Per-channel (a, c) with x_ddx = a·x + c for values held in ``used`` (None: used as they are)."""
    d_mean, d_std = torch.tensor(data.mean), torch.tensor(data.std)
    if used == "pixels":
        return 1.0 / d_std, -d_mean / d_std
    if used == "normalized" and stats is not None:
        s_mean, s_std = torch.tensor(stats[0]), torch.tensor(stats[1])
        return s_std / d_std, (s_mean - d_mean) / d_std
    return None


def fold_output(state: dict[str, Tensor], depth: int, used: str, data: RealData, stats: Stats | None) -> None:
    """Fold the space conversion into the fields' linear output layer (exact: the layer is affine)."""
    ac = affine(used, data, stats)
    if ac is None:
        return
    a, c = ac
    state[f"weight_{depth}"] = state[f"weight_{depth}"] * a.view(1, -1, 1)
    state[f"bias_{depth}"] = state[f"bias_{depth}"] * a.view(1, -1) + c.view(1, -1)


def source_values(decoded: Tensor, used: str, data: RealData, stats: Stats | None) -> Tensor:
    """The decoded images back in the space the file declared (for :func:`check_space`)."""
    ac = affine(used, data, stats)
    if ac is None:
        return decoded
    a, c = ac
    return (decoded - c.view(1, -1, 1, 1)) / a.view(1, -1, 1, 1)
