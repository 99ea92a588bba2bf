"""ConvNet-D*n*: the dataset-distillation standard (Gidaris & Komodakis 2018; DC/DM/MTT).

Each of the *n* blocks is Conv3×3(width) → norm → ReLU → AvgPool2×2; a linear head reads the
flattened map. Width 128 and instance norm (``GroupNorm`` with one group per channel, affine)
are the field's defaults (``convnet_d<n>``).

``convnet_bn_d<n>`` is the same network with ``BatchNorm2d`` (affine, running statistics):
the "ConvNetBN" of the DC/DM code and the CIFAR teacher/student of the CFM reference code
(ConvNet, width 128, depth 3, ``net_norm="batch"``). In training mode it normalises with the
batch's statistics and updates running ones; in eval mode it uses the running statistics.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from methods.networks.base import Classifier
from methods.networks.info import convnet_depth_for

CONVNET_WIDTH = 128
Norm = Literal["instance", "batch"]


def _norm(kind: Norm, width: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(width, affine=True)
    raise ValueError(f"ConvNet norm must be instance or batch, got {kind!r}")


def convnet_features(channels: int, depth: int, width: int = CONVNET_WIDTH, norm: Norm = "instance") -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = channels
    for _ in range(depth):
        layers += [
            nn.Conv2d(in_ch, width, kernel_size=3, padding=1),
            _norm(norm, width),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=2, stride=2),
        ]
        in_ch = width
    return nn.Sequential(*layers)


def build_convnet(
    channels: int, num_classes: int, resolution: int, depth: int | None = None, norm: Norm = "instance"
) -> Classifier:
    """ConvNet-D``depth`` (None: the depth that follows ``resolution``, :func:`convnet_depth_for`)."""
    depth = convnet_depth_for(resolution) if depth is None else depth
    final = resolution // 2**depth
    return Classifier(convnet_features(channels, depth, norm=norm), CONVNET_WIDTH * final * final, num_classes)
