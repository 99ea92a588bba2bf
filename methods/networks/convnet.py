"""ConvNet-D*n*: the dataset-distillation standard (Gidaris & Komodakis 2018; DC/DM/MTT).

Each of the *n* blocks is Conv3×3(width) → norm → ReLU → AvgPool2×2; a linear head reads the
flattened map. Width 128 and instance norm (``GroupNorm`` with one group per channel, affine)
are the field's defaults (``convnet_d<n>``).

``convnet_bn_d<n>`` is the same network with ``BatchNorm2d`` (affine, running statistics):
the "ConvNetBN" of the DC/DM code and the CIFAR teacher/student of the CFM reference code
(ConvNet, width 128, depth 3, ``net_norm="batch"``). In training mode it normalises with the
batch's statistics and updates running ones; in eval mode it uses the running statistics.

MNIST-like inputs (one channel, 28 px) pad the first convolution by 3 instead of 1, as
DatasetCondensation's ``networks.py`` ``ConvNet._make_layers`` does (``padding=3 if channel == 1
and d == 0``; ``im_size`` 28 counted as 32): the first map is 32×32 and ConvNet-D3 ends on 4×4
(317,706 parameters for 10 classes, against 308,746 with a 3×3 final map). The reference pads
every one-channel input that way, but only accounts for it at 28 px (its head size is computed
from ``im_size``, which is right for other sizes only by rounding luck), and its one-channel
datasets are all 28 px; ddx keeps padding 1 for other one-channel sizes (digits at 8 px).
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from methods.networks.base import Classifier
from methods.networks.info import convnet_depth_for

CONVNET_WIDTH = 128
#: (channels, side) of MNIST-like inputs and the first convolution's padding the reference gives them
MNIST_LIKE = (1, 28)
MNIST_FIRST_PADDING = 3
Norm = Literal["instance", "batch"]


def _norm(kind: Norm, width: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(width, affine=True)
    raise ValueError(f"ConvNet norm must be instance or batch, got {kind!r}")


def first_padding(channels: int, resolution: int) -> int:
    """Padding of the first convolution: 3 for MNIST-like inputs (1 channel, 28 px; DatasetCondensation
    ``networks.py``), else 1."""
    return MNIST_FIRST_PADDING if (channels, resolution) == MNIST_LIKE else 1


def convnet_features(
    channels: int, depth: int, width: int = CONVNET_WIDTH, norm: Norm = "instance", first_pad: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = channels
    for d in range(depth):
        layers += [
            nn.Conv2d(in_ch, width, kernel_size=3, padding=first_pad if d == 0 else 1),
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
    pad = first_padding(channels, resolution)
    final = (resolution + 2 * pad - 2) // 2**depth  # the first 3×3 convolution's output side, halved per block
    features = convnet_features(channels, depth, norm=norm, first_pad=pad)
    return Classifier(features, CONVNET_WIDTH * final * final, num_classes)
