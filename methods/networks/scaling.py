"""``convnet`` / ``convnet_bn``: the ConvNets whose depth follows the input resolution (the rule is
in :mod:`methods.networks.info`, torch-free)."""

from __future__ import annotations

from methods.networks.base import NETWORKS, Classifier
from methods.networks.convnet import build_convnet
from methods.networks.info import (
    AUTO_DEPTH,
    CONVNET_AUTO,
    CONVNET_BN_AUTO,
    MAX_DEPTH,
    MIN_DEPTH,
    convnet_depth_for,
    resolve_arch,
)

__all__ = [
    "AUTO_DEPTH",
    "CONVNET_AUTO",
    "CONVNET_BN_AUTO",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "build_convnet_auto",
    "build_convnet_bn_auto",
    "convnet_depth_for",
    "resolve_arch",
]


def build_convnet_auto(channels: int, num_classes: int, resolution: int) -> Classifier:
    return build_convnet(convnet_depth_for(resolution), channels, num_classes, resolution)


def build_convnet_bn_auto(channels: int, num_classes: int, resolution: int) -> Classifier:
    return build_convnet(convnet_depth_for(resolution), channels, num_classes, resolution, norm="batch")


NETWORKS.add(CONVNET_AUTO, build_convnet_auto)
NETWORKS.add(CONVNET_BN_AUTO, build_convnet_bn_auto)
