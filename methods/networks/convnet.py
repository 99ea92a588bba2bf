"""ConvNet-D*n*: the dataset-distillation standard (Gidaris & Komodakis 2018; DC/DM/MTT).

Each of the *n* blocks is Conv3×3(width) → instance norm → ReLU → AvgPool2×2; a linear head
reads the flattened map. Width 128 and instance norm (``GroupNorm`` with one group per
channel, affine) are the field's defaults.
"""

from __future__ import annotations

from torch import nn

from methods.networks.base import NETWORKS, Classifier, NetworkError

CONVNET_WIDTH = 128


def convnet_features(channels: int, depth: int, width: int = CONVNET_WIDTH) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = channels
    for _ in range(depth):
        layers += [
            nn.Conv2d(in_ch, width, kernel_size=3, padding=1),
            nn.GroupNorm(width, width, affine=True),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=2, stride=2),
        ]
        in_ch = width
    return nn.Sequential(*layers)


def build_convnet(depth: int, channels: int, num_classes: int, resolution: int) -> Classifier:
    final = resolution // 2**depth
    if final < 1:
        raise NetworkError(
            f"convnet_d{depth} halves the image {depth} times; a {resolution}px input is too small "
            f"(needs ≥ {2**depth}px; use a shallower ConvNet)"
        )
    return Classifier(convnet_features(channels, depth), CONVNET_WIDTH * final * final, num_classes)


def _register(depth: int) -> None:
    NETWORKS.add(f"convnet_d{depth}", lambda c, k, r: build_convnet(depth, c, k, r))


for _depth in range(1, 8):
    _register(_depth)
