"""DSA augmentation strategies as names (torch-free): the vocabulary :mod:`methods.augment` builds.

A strategy is ``_``-joined op names, e.g. ``color_crop_cutout_flip_scale_rotate`` (DSA's
default), or ``none``. :data:`AugmentStrategy` is the field type option dataclasses use for a
strategy, so the sweep validator rejects a mistyped op before anything runs.
"""

from __future__ import annotations

import difflib
from typing import Annotated

from methods.options import Checked

#: the op names of a strategy (DSA, Zhao & Bilen 2021)
OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DSA_DEFAULT = "color_crop_cutout_flip_scale_rotate"


def parse_strategy(strategy: str | None) -> list[str]:
    """The op names of ``strategy`` (``none``/empty → no ops); ``ValueError`` naming an unknown op."""
    if strategy is not None and not isinstance(strategy, str):
        raise ValueError(f"an augmentation strategy is a string of {'_'.join(OPS)} ops or 'none'")
    if not strategy or strategy.lower() == "none":
        return []
    ops = strategy.split("_")
    for op in ops:
        if op not in OPS:
            close = difflib.get_close_matches(op, OPS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown augmentation {op!r} in {strategy!r}{hint}; known ops: {', '.join(OPS)} "
                "(join them with '_', or 'none')"
            )
    return ops


#: a DSA strategy name (checked op by op)
AugmentStrategy = Annotated[str, Checked(parse_strategy)]

__all__ = ["DSA_DEFAULT", "OPS", "AugmentStrategy", "parse_strategy"]
