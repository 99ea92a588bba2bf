"""A :class:`~methods.augment.ops.DSA` call split into its random draws and their application.

``apply(aug, x, draw(aug, x))`` is ``aug(x)``: :func:`draw` makes the draws ``aug(x)`` makes, in
the same order (no op draws while it applies), and :func:`apply` applies them. What this is for
is :func:`apply_each`: K batches whose draws were made apart — each on its own random stream, as
batched students make them (:mod:`methods.evaluation.student_batch`) — are applied in one call
per op group instead of K, each image with its own parameters, so each output is the one
:func:`apply` gives that batch alone (bitwise; ``tests/test_augment.py``).

Every DSA op splits (``draw``/``apply`` of :mod:`methods.augment.ops`, kornia's horizontal flip by
its ``forward_parameters``); the soft-label views' RandomResizedCrop does not
(:func:`splittable` is False for a strategy with ``rrc``: such views run one batch at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from methods.augment.ops import DSA, DSAColor, DSACrop, DSACutout, DSARotate, DSAScale, warp

#: ops whose draws can be made apart from their application
SPLITTABLE = (DSAColor, DSACrop, DSACutout, DSAScale, DSARotate, K.RandomHorizontalFlip)


@dataclass
class Drawn:
    """The random draws of one :class:`DSA` call: the group picked (None: every group) and each op's parameters."""

    pick: int | None
    params: list[Any]


def splittable(aug: DSA) -> bool:
    """Whether every op of ``aug`` can draw its parameters apart from applying them."""
    return all(isinstance(op, SPLITTABLE) for group in aug.ops for op in group)


def _groups(aug: DSA, pick: int | None) -> list[nn.Sequential]:
    return list(aug.ops) if pick is None else [aug.ops[pick]]  # type: ignore[list-item]


def draw(aug: DSA, x: Tensor) -> Drawn:
    """The random draws ``aug(x)`` makes, without applying them: the group picked (mode single;
    None in mode all) and each applied op's parameters, in the order ``aug(x)`` draws them."""
    if not aug.ops:
        return Drawn(None, [])
    pick = None if aug.mode == "all" else int(torch.randint(len(aug.ops), (1,)).item())
    return Drawn(pick, [_draw_op(op, x) for group in _groups(aug, pick) for op in group])


def apply(aug: DSA, x: Tensor, drawn: Drawn) -> Tensor:
    """``aug(x)`` with the draws ``drawn`` (:func:`draw`)."""
    params = iter(drawn.params)
    for group in _groups(aug, drawn.pick) if aug.ops else []:
        for op in group:
            x = _apply_op(op, x, next(params))
    return x


def apply_each(aug: DSA, x: Tensor, drawn: list[Drawn]) -> Tensor:
    """``stack([apply(aug, x[k], drawn[k]) for k …])`` for K batches ``x`` (K, B, C, H, W), in one call per op group.

    The batches that picked the same group are applied together with their draws, and the
    groups that are one rotation or one scaling share one resampling (each image with its own
    matrix); every op acts on each image alone, so each output is the one :func:`apply` gives.
    """
    k, b = x.shape[:2]
    if not aug.ops:
        return x
    by_pick: dict[int | None, list[int]] = {}
    for i, d in enumerate(drawn):
        by_pick.setdefault(d.pick, []).append(i)
    # batches are gathered by slicing and concatenating (no index tensor: on a GPU, copying one from the
    # host would wait for the queued work), and the outputs stacked back in order
    rows: list[Tensor | None] = [None] * k
    warps: list[tuple[list[int], Tensor, Tensor]] = []  # (members, images, matrices) of affine picks
    for pick, members in by_pick.items():
        flat = x.flatten(0, 1) if len(members) == k else torch.cat([x[i] for i in members])
        ops = [op for group in _groups(aug, pick) for op in group]
        params = [_cat_params(op, [drawn[i].params[j] for i in members], flat) for j, op in enumerate(ops)]
        if len(ops) == 1 and isinstance(ops[0], (DSAScale, DSARotate)):
            warps.append((members, flat, ops[0].matrix(flat, params[0])))  # one warp for all of them, below
            continue
        done = apply(aug, flat, Drawn(pick, params)).view(len(members), b, *x.shape[2:])
        if len(members) == k:
            return done
        _place(rows, members, done)
    if warps:
        members = [i for m, _, _ in warps for i in m]
        flat = warps[0][1] if len(warps) == 1 else torch.cat([f for _, f, _ in warps])
        done = warp(flat, torch.cat([m for _, _, m in warps])).view(len(members), b, *x.shape[2:])
        if members == list(range(k)):
            return done
        _place(rows, members, done)
    return torch.stack(rows)  # type: ignore[arg-type]


def _place(rows: list[Tensor | None], members: list[int], done: Tensor) -> None:
    for i, part in zip(members, done.unbind(0), strict=True):
        rows[i] = part


def _draw_op(op: nn.Module, x: Tensor) -> Any:
    if isinstance(op, K.RandomHorizontalFlip):  # kornia draws its parameters before applying them
        return op.forward_parameters(x.shape)
    return op.draw(x)  # type: ignore[operator]


def _apply_op(op: nn.Module, x: Tensor, params: Any) -> Tensor:
    if isinstance(op, K.RandomHorizontalFlip):
        return op(x, params=dict(params))
    return op.apply(x, params)  # type: ignore[operator]


def _cat_params(op: nn.Module, parts: list[Any], x: Tensor) -> Any:
    """The draws of several batches as the draw of their concatenation ``x``."""
    if isinstance(op, K.RandomHorizontalFlip):
        return {
            key: torch.tensor(tuple(x.shape), dtype=torch.long)
            if key == "forward_input_shape"
            else torch.cat([p[key] for p in parts])
            for key in parts[0]
        }
    return tuple(torch.cat(ts) for ts in zip(*parts, strict=True))


__all__ = ["SPLITTABLE", "Drawn", "apply", "apply_each", "draw", "splittable"]
