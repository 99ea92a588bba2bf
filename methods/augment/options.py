"""The augmentation-strategy language, without torch (the sweep validator reads it).

A *strategy* is a string of **groups** separated by ``_``; a group is one op or several ops
joined by ``+``::

    color_crop_cutout_flip_scale_rotate   six groups of one op (DSA's default strategy)
    crop+flip                             one group: crop AND flip
    color_crop+flip                       two groups: colour, or crop-and-flip

How groups combine is the *mode* of the context that applies the strategy (the reference
DSA code's ``aug_mode``, Zhao & Bilen 2021):

* ``single`` — one group drawn at random per call (DSA's ``'S'`` mode; hard-label students
  and DM's Siamese augmentation);
* ``all`` — every group, in order (DSA's ``'M'`` mode; real-data training, teachers and
  soft-label students: ``crop_flip`` there is the standard random crop *and* flip).

Ops: DSA's ``color``, ``crop``, ``cutout``, ``flip``, ``scale``, ``rotate`` (see
:mod:`methods.augment.ops` for their exact definitions), and ``rrc`` (RandomResizedCrop to the
input size), used by soft-label protocols (``rrc_flip`` in mode ``all``).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, get_args

from methods.options import Checked

#: DSA's ops (the reference ``AUGMENT_FNS`` keys)
DSA_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
#: every op a strategy may name
OPS = (*DSA_OPS, "rrc")
DSA_DEFAULT = "color_crop_cutout_flip_scale_rotate"
GROUP_SEP = "_"
JOINT_SEP = "+"
AugmentMode = Literal["single", "all"]
AUGMENT_MODES: tuple[str, ...] = get_args(AugmentMode)

#: the reference DSA parameters (``ParamDiffAug``)
DSA_SCALE = 1.2  # grid scale factors uniform in [1/1.2, 1.2], per axis
DSA_ROTATE_DEG = 15.0  # rotation uniform in [-15°, 15°]
DSA_CROP = 0.125  # integer shift up to round(0.125 · side) pixels, zero fill
DSA_CUTOUT = 0.5  # square of round(0.5 · side) pixels, centre anywhere, clipped
DSA_FLIP_P = 0.5
DSA_BRIGHTNESS = 1.0
DSA_SATURATION = 2.0
DSA_CONTRAST = 0.5


def parse_groups(strategy: str | None) -> list[list[str]]:
    """The groups of ``strategy`` (``[]`` for ``None``, ``""`` or ``"none"``); unknown ops raise."""
    if strategy is not None and not isinstance(strategy, str):
        raise ValueError(f"an augmentation strategy is a string of ops ({', '.join(OPS)}) or 'none'")
    if not strategy or strategy.strip().lower() == "none":
        return []
    groups: list[list[str]] = []
    for part in strategy.split(GROUP_SEP):
        ops = part.split(JOINT_SEP)
        for op in ops:
            if op not in OPS:
                close = difflib.get_close_matches(op, OPS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"unknown augmentation {op!r} in {strategy!r}{hint}; known: {', '.join(OPS)} "
                    f"(groups joined by {GROUP_SEP!r}, ops within a group by {JOINT_SEP!r}, or 'none')"
                )
        groups.append(ops)
    return groups


def parse_strategy(strategy: str | None) -> list[str]:
    """Every op ``strategy`` names, in order (validates it)."""
    return [op for group in parse_groups(strategy) for op in group]


def _check_strategy(strategy: Any) -> None:
    parse_groups(strategy)


#: the field type of an augmentation strategy in option dataclasses (checked op by op)
AugmentStrategy = Annotated[str, Checked(_check_strategy)]


def check_mode(mode: str) -> str:
    if mode not in AUGMENT_MODES:
        raise ValueError(f"augmentation mode must be one of {AUGMENT_MODES}, got {mode!r}")
    return mode


__all__ = [
    "AUGMENT_MODES",
    "DSA_DEFAULT",
    "DSA_OPS",
    "OPS",
    "AugmentMode",
    "AugmentStrategy",
    "check_mode",
    "parse_groups",
    "parse_strategy",
]
