"""Cross-architecture test networks, built from torchvision and timm (never hand-written copies).

Every builder takes ``(channels, num_classes, resolution)`` and returns a
:class:`~methods.networks.base.Classifier`: the library backbone with its own classification
layer removed (``embed``) and a fresh linear head. Inputs of at most
:data:`SMALL_IMAGE_MAX` pixels (CIFAR, Tiny-ImageNet, digits) get the small-image
adaptations the field uses; larger inputs keep the ImageNet design. Each choice:

* **AlexNet** (torchvision). Small images: the 11×11 stride-4 first convolution becomes
  5×5 stride 1 (as in the AlexNet of DC/DM/MTT/DDiF's evaluation code), the three max-pools
  are kept, and the head is one linear layer on the flattened map (the DD convention; the
  ImageNet 9216→4096→4096 MLP has 55 M parameters for a ten-image-per-class set). Needs
  ≥ 16 px. Large images: torchvision's design, the 4096-d penultimate layer as features.
* **VGG11** (torchvision ``vgg11_bn`` with every BatchNorm replaced by instance norm, i.e.
  ``GroupNorm(c, c)``: the "VGG11" of DC/DM/MTT/DDiF uses instance norm). Small images: a
  linear head on the flattened last map (512 features at 32 px); needs ≥ 32 px (five
  max-pools). Large images: torchvision's 7×7 average pool and 4096-d MLP.
* **ResNet-18/50/101**: see :mod:`methods.networks.resnet` (3×3 stride-1 stem, no max-pool).
* **DenseNet-121** (torchvision). Small images: the 7×7 stride-2 stem becomes 3×3 stride 1
  and its max-pool is dropped (the CIFAR DenseNet convention, Huang et al. 2017 §3).
* **RegNet-Y** (torchvision): ``regnety_400mf`` (small, for CPU runs) and ``regnety_8gf``
  (CFM Table 4). Small images: the stem's 3×3 stride-2 convolution becomes stride 1, as for
  ResNet.
* **ConvNeXt-Tiny** (torchvision). Small images: the 4×4 stride-4 "patchify" stem becomes
  a 3×3 stride-1 convolution (overall stride 8, so 32 px ends on a 4×4 map instead of 1×1).
* **ViT** (timm ``VisionTransformer``): ``vit_tiny`` (192-d, 12 blocks, 3 heads) and
  ``vit_small`` (384-d, 12 blocks, 6 heads). The patch size follows the resolution so that
  the image is cut into about 8×8 tokens: 4 px at 32 (the CIFAR ViT convention), 8 at 64,
  16 from 128 up (the ImageNet one); it is the largest divisor of the resolution ≤ r/8.
"""

from __future__ import annotations

import timm
from torch import nn
from torchvision import models

from methods.networks.base import Classifier, feature_dim_of
from methods.networks.info import SMALL_IMAGE_MAX


def _instance_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by instance norm (``GroupNorm(c, c)``, affine)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(child.num_features, child.num_features, affine=True))
        else:
            _instance_norm(child)
    return module


def build_alexnet(channels: int, num_classes: int, resolution: int) -> Classifier:
    """torchvision AlexNet; 5×5 stride-1 stem and a linear head for small images."""
    model = models.alexnet(weights=None)
    if resolution <= SMALL_IMAGE_MAX:
        model.features[0] = nn.Conv2d(channels, 64, kernel_size=5, stride=1, padding=2)
        features = nn.Sequential(model.features, nn.Flatten(1))
        return Classifier(features, feature_dim_of(features, channels, resolution), num_classes)
    if channels != 3:
        model.features[0] = nn.Conv2d(channels, 64, kernel_size=11, stride=4, padding=2)
    features = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *list(model.classifier)[:-1])
    return Classifier(features, model.classifier[-1].in_features, num_classes)


def build_vgg11(channels: int, num_classes: int, resolution: int) -> Classifier:
    """torchvision VGG11 with instance norm; a linear head on the last map for small images."""
    model = _instance_norm(models.vgg11_bn(weights=None))
    if channels != 3:
        model.features[0] = nn.Conv2d(channels, 64, kernel_size=3, padding=1)
    if resolution <= SMALL_IMAGE_MAX:
        features = nn.Sequential(model.features, nn.Flatten(1))
        return Classifier(features, feature_dim_of(features, channels, resolution), num_classes)
    features = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *list(model.classifier)[:-1])
    return Classifier(features, model.classifier[-1].in_features, num_classes)


def build_densenet121(channels: int, num_classes: int, resolution: int) -> Classifier:
    """torchvision DenseNet-121; 3×3 stride-1 stem without max-pool for small images."""
    model = models.densenet121(weights=None)
    if resolution <= SMALL_IMAGE_MAX:
        model.features.conv0 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.features.pool0 = nn.Identity()
    elif channels != 3:
        model.features.conv0 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    # torchvision's DenseNet.forward: features → ReLU → global average pool → classifier
    features = nn.Sequential(model.features, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return Classifier(features, model.classifier.in_features, num_classes)


REGNETS = {"400mf": models.regnet_y_400mf, "8gf": models.regnet_y_8gf}


def build_regnet(channels: int, num_classes: int, resolution: int, size: str) -> Classifier:
    """torchvision RegNet-Y of ``size`` (``400mf``, ``8gf``); a stride-1 stem for small images."""
    model = REGNETS[size](weights=None)
    stem_conv = model.stem[0]
    stride = 1 if resolution <= SMALL_IMAGE_MAX else 2
    if stride == 1 or channels != 3:
        model.stem[0] = nn.Conv2d(channels, stem_conv.out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return Classifier(model, feature_dim, num_classes)


def build_convnext_tiny(channels: int, num_classes: int, resolution: int) -> Classifier:
    """torchvision ConvNeXt-Tiny; 3×3 stride-1 stem instead of the 4×4 patchify for small images."""
    model = models.convnext_tiny(weights=None)
    if resolution <= SMALL_IMAGE_MAX:
        model.features[0][0] = nn.Conv2d(channels, 96, kernel_size=3, stride=1, padding=1)
    else:
        if channels != 3:
            model.features[0][0] = nn.Conv2d(channels, 96, kernel_size=4, stride=4)
    # torchvision's ConvNeXt.forward: features → avgpool → classifier (LayerNorm2d, Flatten, Linear)
    features = nn.Sequential(model.features, model.avgpool, *list(model.classifier)[:-1])
    return Classifier(features, model.classifier[-1].in_features, num_classes)


def vit_patch_size(resolution: int) -> int:
    """The largest divisor of ``resolution`` not above ``min(16, resolution // 8)`` (≈ 8×8 tokens)."""
    target = max(1, min(16, resolution // 8))
    return next(p for p in range(target, 0, -1) if resolution % p == 0)


def build_vit(channels: int, num_classes: int, resolution: int, model: str) -> Classifier:
    """timm's VisionTransformer ``model`` at ``resolution`` with the patch size of :func:`vit_patch_size`."""
    net = timm.create_model(
        model,
        pretrained=False,
        img_size=resolution,
        patch_size=vit_patch_size(resolution),
        in_chans=channels,
        num_classes=0,  # timm: the head becomes Identity; forward returns pooled features
    )
    return Classifier(net, int(net.num_features), num_classes)
