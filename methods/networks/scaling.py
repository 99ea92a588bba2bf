"""``convnet``: the ConvNet whose depth follows the input resolution (the rule is in
:mod:`methods.networks.info`, torch-free)."""

from __future__ import annotations

from methods.networks.base import NETWORKS, Classifier
from methods.networks.convnet import build_convnet
from methods.networks.info import CONVNET_AUTO, MAX_DEPTH, MIN_DEPTH, convnet_depth_for, resolve_arch

__all__ = ["CONVNET_AUTO", "MAX_DEPTH", "MIN_DEPTH", "build_convnet_auto", "convnet_depth_for", "resolve_arch"]


def build_convnet_auto(channels: int, num_classes: int, resolution: int) -> Classifier:
    return build_convnet(convnet_depth_for(resolution), channels, num_classes, resolution)


NETWORKS.add(CONVNET_AUTO, build_convnet_auto)
