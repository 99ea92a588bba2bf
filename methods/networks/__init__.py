"""Network registry: every entry builds a :class:`Classifier` (``embed`` + linear head).

ConvNet-D1…D7 and ``convnet`` (depth follows resolution) are the field's own design;
every other network comes from torchvision or timm with the small-image adaptations
documented in :mod:`methods.networks.zoo` and :mod:`methods.networks.resnet`. The names and
each network's minimum input resolution are listed in :mod:`methods.catalog`; the package
loads lazily (:mod:`methods.networks.info` imports no torch).
"""

from methods.lazy import lazy_exports

__all__ = ["NETWORKS", "Classifier", "NetworkError", "build_network", "convnet_depth_for", "resolve_arch"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "NETWORKS": "methods.networks.base",
        "Classifier": "methods.networks.base",
        "NetworkError": "methods.networks.base",
        "build_network": "methods.networks.base",
        "convnet_depth_for": "methods.networks.info",
        "resolve_arch": "methods.networks.info",
    },
)
