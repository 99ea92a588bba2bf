"""Networks: every entry builds a :class:`Classifier` (``embed`` + linear head).

ConvNet-D1…D7 and ``convnet`` (depth follows resolution) are the field's own design; every
other network comes from torchvision or timm with the small-image adaptations documented in
:mod:`methods.networks.zoo` and :mod:`methods.networks.resnet`. :data:`ENTRIES` declares them
(name, builder, smallest input) for the plugin registry (:mod:`methods.registry`, entry-point
group ``ddx.networks``); the package loads its torch modules lazily.
"""

from methods.lazy import lazy_exports
from methods.networks.info import AUTO_DEPTH, MAX_DEPTH, MIN_DEPTH
from methods.registry import NetworkEntry

_CONVNET = "methods.networks.convnet:build_convnet"
_ZOO = "methods.networks.zoo:"

#: ddx's networks. ``min_resolution``: the smallest input the small-image design accepts (a
#: ConvNet-Dn halves the map n times: ≥ 2ⁿ px); ``min_resolution_large``: above 64 px, where it differs
ENTRIES: tuple[NetworkEntry, ...] = (
    *(
        NetworkEntry(f"{prefix}{depth}", _CONVNET, 2**depth, kwargs=(("depth", depth), ("norm", norm)))
        for prefix, norm in ((AUTO_DEPTH["convnet"], "instance"), (AUTO_DEPTH["convnet_bn"], "batch"))
        for depth in range(MIN_DEPTH, MAX_DEPTH + 1)
    ),
    # the ConvNets whose depth follows the resolution (methods.networks.info): always ≥ 2 px
    NetworkEntry("convnet", _CONVNET, 2, kwargs=(("norm", "instance"),)),
    NetworkEntry("convnet_bn", _CONVNET, 2, kwargs=(("norm", "batch"),)),
    NetworkEntry("resnet18", "methods.networks.resnet:build_resnet", 1, kwargs=(("depth", 18),)),
    NetworkEntry("resnet50", "methods.networks.resnet:build_resnet", 1, kwargs=(("depth", 50),)),
    NetworkEntry("resnet101", "methods.networks.resnet:build_resnet", 1, kwargs=(("depth", 101),)),
    NetworkEntry("alexnet", _ZOO + "build_alexnet", 16, 63),  # three max-pools on a 5×5 stride-1 stem
    NetworkEntry("vgg11", _ZOO + "build_vgg11", 32),  # five max-pools
    NetworkEntry("densenet121", _ZOO + "build_densenet121", 8, 32),
    NetworkEntry("regnety_400mf", _ZOO + "build_regnet", 1, kwargs=(("size", "400mf"),)),
    NetworkEntry("regnety_8gf", _ZOO + "build_regnet", 1, kwargs=(("size", "8gf"),)),
    NetworkEntry("convnext_tiny", _ZOO + "build_convnext_tiny", 8, 32),  # three 2×2 stride-2 downsamplers
    NetworkEntry("vit_tiny", _ZOO + "build_vit", 1, kwargs=(("model", "vit_tiny_patch16_224"),)),
    NetworkEntry("vit_small", _ZOO + "build_vit", 1, kwargs=(("model", "vit_small_patch16_224"),)),
)

__all__ = ["ENTRIES", "Classifier", "NetworkError", "build_network", "convnet_depth_for", "resolve_arch"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Classifier": "methods.networks.base",
        "NetworkError": "methods.networks.base",
        "build_network": "methods.networks.base",
        "convnet_depth_for": "methods.networks.info",
        "resolve_arch": "methods.networks.info",
    },
    extra=["ENTRIES"],
)
