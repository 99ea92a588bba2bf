"""torchvision ResNets with a stem for small images.

For inputs ≤ 64 px the ImageNet stem (7×7 stride-2 conv + max-pool) throws away three
quarters of the pixels before the first block; the CIFAR convention (He et al. 2016 §4.2,
and SRe²L/CFM's CIFAR code) replaces it with a 3×3 stride-1 conv and no max-pool. Larger
inputs keep the ImageNet stem.
"""

from __future__ import annotations

from torch import nn
from torchvision import models

from methods.networks.base import Classifier
from methods.networks.info import SMALL_IMAGE_MAX


def adapt_resnet(model: models.ResNet, channels: int, resolution: int) -> nn.Module:
    if resolution <= SMALL_IMAGE_MAX:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Identity()
    return model


RESNETS = {18: models.resnet18, 50: models.resnet50, 101: models.resnet101}


def build_resnet(channels: int, num_classes: int, resolution: int, depth: int) -> Classifier:
    """torchvision ResNet-``depth`` (18, 50, 101) with the small-image stem up to 64 px."""
    model = RESNETS[depth](weights=None)
    feature_dim = model.fc.in_features
    return Classifier(adapt_resnet(model, channels, resolution), feature_dim, num_classes)
