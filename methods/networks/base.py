"""The classifier contract every registered network follows: ``embed`` then a linear head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from methods.registry import NETWORKS


class Classifier(nn.Module):
    """A feature extractor followed by one linear layer.

    ``embed(x)`` gives the penultimate features (what distribution matching compares);
    ``forward(x)`` gives logits. Torchvision/timm backbones are wrapped by replacing their
    own head with :class:`torch.nn.Identity`.
    """

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.classifier = nn.Linear(feature_dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


class NetworkError(ValueError):
    """A network cannot be built for the requested input (e.g. too small a resolution)."""


def build_network(name: str, channels: int, num_classes: int, resolution: int) -> Classifier:
    """Build the registered network ``name`` for ``channels``×``resolution``² inputs.

    Inputs smaller than its entry's minimum (:class:`methods.registry.NetworkEntry`) are refused
    here, the one place that check lives (``ddx validate`` asks the same entry).
    """
    entry = NETWORKS.get(name)
    if not entry.accepts(resolution):
        raise NetworkError(f"{name} needs inputs of at least {entry.minimum(resolution)}px (got {resolution}px)")
    return entry.implementation()(channels, num_classes, resolution, **dict(entry.kwargs))


def feature_dim_of(features: nn.Module, channels: int, resolution: int) -> int:
    """Infer a backbone's flattened feature size with one dummy forward pass."""
    was_training = features.training
    features.eval()
    with torch.no_grad():
        out = features(torch.zeros(2, channels, resolution, resolution))
    features.train(was_training)
    return int(out.flatten(1).shape[1])
