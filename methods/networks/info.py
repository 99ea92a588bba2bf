"""Facts about the networks that need no torch: the small-image regime and ConvNet's depth rule.

ConvNet depth that follows the input resolution (DDiF's cross-resolution protocol): the
field's ConvNet halves the map once per block, so a fixed depth sees ever larger final maps as
the resolution grows. DDiF (Table 13) therefore tests with ConvNet-D5 at 128 px, D6 at 256 px
and D7 at 512 px; the CIFAR standard is D3 at 32 px and Tiny-ImageNet's D4 at 64 px. The arch
name ``convnet`` (no depth) asks for that rule: depth = log₂(r) − 2, clamped to 1…7, so every
block count leaves a 4×4 map (digits: D1 at 8 px, D2 at 16 px). ``convnet_d<N>`` keeps a fixed
depth at every resolution. ``convnet_bn`` is the same rule for the BatchNorm ConvNet
(``convnet_bn_d<N>``).

Each network's minimum input resolution is in :mod:`methods.catalog` (``NetworkInfo``).
"""

from __future__ import annotations

import math

#: inputs up to this size get the small-image stems (CIFAR 32 px, Tiny-ImageNet 64 px)
SMALL_IMAGE_MAX = 64
#: the arch names whose depth follows the resolution → the prefix of their fixed-depth names
CONVNET_AUTO = "convnet"
CONVNET_BN_AUTO = "convnet_bn"
AUTO_DEPTH = {CONVNET_AUTO: "convnet_d", CONVNET_BN_AUTO: "convnet_bn_d"}
MIN_DEPTH, MAX_DEPTH = 1, 7


def convnet_depth_for(resolution: int) -> int:
    """ConvNet depth for a ``resolution``-px input: D3@32, D4@64, D5@128, D6@256, D7@512."""
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return max(MIN_DEPTH, min(MAX_DEPTH, round(math.log2(resolution)) - 2))


def resolve_arch(arch: str, resolution: int) -> str:
    """The concrete network trained for ``arch`` at ``resolution`` (``convnet`` → ``convnet_d<N>``,
    ``convnet_bn`` → ``convnet_bn_d<N>``).

    A resolution not known yet (≤ 0, e.g. a dataset at its native size before loading) leaves
    the name as it is.
    """
    if arch not in AUTO_DEPTH or resolution < 1:
        return arch
    return f"{AUTO_DEPTH[arch]}{convnet_depth_for(resolution)}"


__all__ = [
    "AUTO_DEPTH",
    "CONVNET_AUTO",
    "CONVNET_BN_AUTO",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "SMALL_IMAGE_MAX",
    "convnet_depth_for",
    "resolve_arch",
]
