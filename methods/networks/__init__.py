"""Network registry: every entry builds a :class:`Classifier` (``embed`` + linear head).

ConvNet-D1…D7 and ``convnet`` (depth follows resolution) are the field's own design;
every other network comes from torchvision or timm with the small-image adaptations
documented in :mod:`methods.networks.zoo` and :mod:`methods.networks.resnet`.
"""

from methods.networks import convnet, resnet, scaling, zoo  # noqa: F401  (registration side effects)
from methods.networks.base import NETWORKS, Classifier, NetworkError, build_network
from methods.networks.scaling import convnet_depth_for, resolve_arch

__all__ = ["NETWORKS", "Classifier", "NetworkError", "build_network", "convnet_depth_for", "resolve_arch"]
