"""Network registry: every entry builds a :class:`Classifier` (``embed`` + linear head)."""

from methods.networks import convnet, resnet  # noqa: F401  (registration side effects)
from methods.networks.base import NETWORKS, Classifier, NetworkError, build_network

__all__ = ["NETWORKS", "Classifier", "NetworkError", "build_network"]
