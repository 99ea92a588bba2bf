"""The catalog: every name a sweep file may use, and what checking it needs — without torch.

One entry per dataset, network, objective, parameterization and prerequisite: its name, the
module that implements (and registers) it, and the torch-free facts the sweep validator needs:

* datasets: channels, native resolution, whether a ``root`` is needed;
* networks: the minimum input resolution (per resolution regime: inputs up to
  :data:`~methods.networks.info.SMALL_IMAGE_MAX` px get small-image stems);
* objectives: their ``Options`` dataclass and the prerequisites they ``require``;
* parameterizations: their ``Options`` and the scalars one instance stores (the budget);
* prerequisites: their ``Options`` (the sweep file's top-level block of the same name).

``Options`` are named ``"module:Class"`` and must live in modules that import no torch
(``*_options.py`` / ``options.py`` next to the implementation). The registries
(:class:`methods.registry.Registry` with ``catalog=True``) import the implementation modules
listed here on first use, and ``tests/test_catalog.py`` asserts that every registry holds
exactly these names, the same ``Options`` and ``requires``, and that each network's minimum
resolution is what its builder accepts. Adding a component = its module + one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from methods.augment.options import OPS as AUGMENT_OPS
from methods.networks.info import SMALL_IMAGE_MAX
from methods.registry import unknown_name_message


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    module: str
    channels: int
    native_resolution: int | None  # None: depends on the files
    needs_root: bool
    smallest_class: int | None = None  # training images of its smallest class, as shipped (None: depends on the files)
    test_split: bool = True  # False: the loader carves the test set out of the training images


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    module: str
    min_resolution: int  # smallest input (px) the small-image design accepts
    min_resolution_large: int | None = None  # the same for inputs > SMALL_IMAGE_MAX (None: as above)

    def minimum(self, resolution: int) -> int:
        """The smallest input accepted in ``resolution``'s regime."""
        if resolution > SMALL_IMAGE_MAX and self.min_resolution_large is not None:
            return self.min_resolution_large
        return self.min_resolution

    def accepts(self, resolution: int) -> bool:
        return resolution >= self.minimum(resolution)


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    module: str
    options: str  # "module:Class" of its Options dataclass
    requires: tuple[str, ...] = ()  # prerequisites (methods.prerequisites) it needs


@dataclass(frozen=True)
class ParameterizationInfo:
    name: str
    module: str
    options: str
    scalars: str  # "module:function" (shape, options dict) -> scalars of one instance


@dataclass(frozen=True)
class PrerequisiteInfo:
    name: str
    module: str
    options: str


_NET = "methods.networks."

DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo("digits", "methods.datasets.loaders", 1, 8, needs_root=False, smallest_class=174, test_split=False),
    DatasetInfo("cifar10", "methods.datasets.loaders", 3, 32, needs_root=True, smallest_class=5000),
    DatasetInfo("cifar100", "methods.datasets.loaders", 3, 32, needs_root=True, smallest_class=500),
    DatasetInfo("tiny_imagenet", "methods.datasets.loaders", 3, 64, needs_root=True, smallest_class=500),
    DatasetInfo("imagefolder", "methods.datasets.loaders", 3, None, needs_root=True),
)

NETWORKS: tuple[NetworkInfo, ...] = (
    # ConvNet-Dn halves the map n times: ≥ 2ⁿ px; `convnet` picks a depth that always fits (≥ 2 px)
    NetworkInfo("convnet", _NET + "scaling", 2),
    *(NetworkInfo(f"convnet_d{n}", _NET + "convnet", 2**n) for n in range(1, 8)),
    NetworkInfo("convnet_bn", _NET + "scaling", 2),  # the same with BatchNorm
    *(NetworkInfo(f"convnet_bn_d{n}", _NET + "convnet", 2**n) for n in range(1, 8)),
    NetworkInfo("resnet18", _NET + "resnet", 1),
    NetworkInfo("resnet50", _NET + "resnet", 1),
    NetworkInfo("resnet101", _NET + "resnet", 1),
    NetworkInfo("alexnet", _NET + "zoo", 16, 63),  # three max-pools on a 5×5 stride-1 stem
    NetworkInfo("vgg11", _NET + "zoo", 32),  # five max-pools
    NetworkInfo("densenet121", _NET + "zoo", 8, 32),
    NetworkInfo("regnety_400mf", _NET + "zoo", 1),
    NetworkInfo("regnety_8gf", _NET + "zoo", 1),
    NetworkInfo("convnext_tiny", _NET + "zoo", 8, 32),  # three 2×2 stride-2 downsamplers
    NetworkInfo("vit_tiny", _NET + "zoo", 1),
    NetworkInfo("vit_small", _NET + "zoo", 1),
)

OBJECTIVES: tuple[ObjectiveInfo, ...] = (
    ObjectiveInfo("random", "methods.random_real.objective", "methods.random_real.options:RandomOptions"),
    ObjectiveInfo("dm", "methods.dm.objective", "methods.dm.options:DMOptions"),
    ObjectiveInfo("dc", "methods.dc.objective", "methods.dc.options:DCOptions"),
    ObjectiveInfo("tm", "methods.tm.objective", "methods.tm.options:TMOptions", ("experts",)),
    ObjectiveInfo("cfm", "methods.cfm.objective", "methods.cfm.options:CFMOptions", ("teacher",)),
    ObjectiveInfo("lfm", "methods.cfm.objective", "methods.cfm.options:SpectralMatchingOptions", ("teacher",)),
    ObjectiveInfo(
        "filter_matching", "methods.cfm.objective", "methods.cfm.options:FilterMatchingOptions", ("teacher",)
    ),
    ObjectiveInfo("sre2l", "methods.sre2l.objective", "methods.sre2l.options:SRe2LOptions", ("teacher",)),
)

_PAR = "methods.parameterizations."
PARAMETERIZATIONS: tuple[ParameterizationInfo, ...] = (
    ParameterizationInfo("pixels", _PAR + "pixels", _PAR + "options:PixelOptions", _PAR + "options:pixel_scalars"),
    ParameterizationInfo(
        "neural_field", _PAR + "neural_field", _PAR + "options:NeuralFieldOptions", _PAR + "options:field_scalars"
    ),
)

PREREQUISITES: tuple[PrerequisiteInfo, ...] = (
    PrerequisiteInfo("teacher", "methods.teacher.squeeze", "methods.teacher.options:TeacherOptions"),
    PrerequisiteInfo("experts", "methods.tm.experts", "methods.tm.options:ExpertOptions"),
)

_KINDS: dict[str, tuple[Any, ...]] = {
    "dataset": DATASETS,
    "network": NETWORKS,
    "objective": OBJECTIVES,
    "parameterization": PARAMETERIZATIONS,
    "prerequisite": PREREQUISITES,
}
KINDS: tuple[str, ...] = tuple(_KINDS)

#: datasets that need ``dataset.root``; (channels, native resolution) per dataset
NEEDS_ROOT: set[str] = {d.name for d in DATASETS if d.needs_root}
NATIVE_SHAPES: dict[str, tuple[int, int | None]] = {d.name: (d.channels, d.native_resolution) for d in DATASETS}


def _table(kind: str) -> dict[str, Any]:
    if kind not in _KINDS:
        raise ValueError(f"unknown catalog kind {kind!r}; known: {', '.join(_KINDS)}")
    return {e.name: e for e in _KINDS[kind]}


def names(kind: str) -> list[str]:
    """Every name of ``kind``, sorted."""
    return sorted(_table(kind))


def unknown_message(kind: str, name: object) -> str:
    return unknown_name_message(kind, name, _table(kind))


def info(kind: str, name: str) -> Any:
    """The catalog entry of ``name``; ``ValueError`` naming the known ones."""
    table = _table(kind)
    if not isinstance(name, str) or name not in table:
        raise ValueError(unknown_message(kind, name))
    return table[name]


def check_name(kind: str, value: Any) -> Any:
    """``value`` if it is a known name of ``kind``, else ``ValueError`` (what :func:`methods.options.named` checks)."""
    info(kind, value)
    return value


@cache
def resolve(ref: str) -> Any:
    """The object a ``"module:attr"`` reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def options_class(kind: str, name: str) -> type | None:
    """The ``Options`` dataclass of an objective, parameterization or prerequisite."""
    ref = getattr(info(kind, name), "options", None)
    return resolve(ref) if ref else None


def requires(objective: str) -> tuple[str, ...]:
    """The prerequisites ``objective`` needs (e.g. ``("teacher",)``)."""
    return info("objective", objective).requires


def network(name: str) -> NetworkInfo:
    return info("network", name)


def load_implementations(kind: str) -> None:
    """Import every module implementing a ``kind`` (they register themselves; imports torch)."""
    for module in dict.fromkeys(e.module for e in _KINDS[kind]):
        importlib.import_module(module)


def load_implementation(kind: str, name: str) -> None:
    """Import the module implementing ``name`` (it registers itself); nothing for an unknown name."""
    entry = _table(kind).get(name) if isinstance(name, str) else None
    if entry is not None:
        importlib.import_module(entry.module)


__all__ = [
    "AUGMENT_OPS",
    "DATASETS",
    "KINDS",
    "NATIVE_SHAPES",
    "NEEDS_ROOT",
    "NETWORKS",
    "OBJECTIVES",
    "PARAMETERIZATIONS",
    "PREREQUISITES",
    "DatasetInfo",
    "NetworkInfo",
    "ObjectiveInfo",
    "ParameterizationInfo",
    "PrerequisiteInfo",
    "check_name",
    "info",
    "load_implementation",
    "load_implementations",
    "names",
    "network",
    "options_class",
    "requires",
    "resolve",
]
