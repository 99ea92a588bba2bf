"""The catalog (torch-free names and facts) agrees with the registries and with the networks' builders."""

from __future__ import annotations

import importlib
import pkgutil
from typing import get_args

import pytest
import torch

import methods
from methods import catalog
from methods.evaluation.options import LABEL_MODE_REQUIRES, LABEL_MODES
from methods.networks.info import SMALL_IMAGE_MAX
from tests.helpers import fresh_output


def _import_every_module() -> None:
    """Import every module under methods/, so a component registered without a catalog entry shows up."""
    for mod in pkgutil.walk_packages(methods.__path__, "methods."):
        importlib.import_module(mod.name)


def _registries():
    from methods.datasets import DATASETS
    from methods.distill.objective import OBJECTIVES
    from methods.networks import NETWORKS
    from methods.parameterizations import PARAMETERIZATIONS
    from methods.prerequisites import PREREQUISITES

    return {
        "dataset": DATASETS,
        "network": NETWORKS,
        "objective": OBJECTIVES,
        "parameterization": PARAMETERIZATIONS,
        "prerequisite": PREREQUISITES,
    }


@pytest.mark.parametrize("kind", catalog.KINDS)
def test_catalog_names_are_the_registry_names(kind: str) -> None:
    _import_every_module()
    registry = _registries()[kind]
    assert sorted(registry._entries) == catalog.names(kind)  # what the modules registered themselves


def test_options_and_requires_match_the_implementations() -> None:
    registries = _registries()
    for name in catalog.names("objective"):
        cls = registries["objective"].get(name)
        assert cls.Options is catalog.options_class("objective", name), name
        assert tuple(cls.requires) == catalog.requires(name), name
        assert set(catalog.requires(name)) <= set(catalog.names("prerequisite"))
    for kind in ("parameterization", "prerequisite"):
        for name in catalog.names(kind):
            assert registries[kind].get(name).Options is catalog.options_class(kind, name), name
    assert set(LABEL_MODES) == set(LABEL_MODE_REQUIRES)
    assert {p for ps in LABEL_MODE_REQUIRES.values() for p in ps} <= set(catalog.names("prerequisite"))


def test_budget_functions_are_the_parameterizations_own() -> None:
    from methods.parameterizations import PARAMETERIZATIONS, SetShape

    shape = SetShape(num_classes=10, ipc=3, channels=3, resolution=32)
    for name in catalog.names("parameterization"):
        scalars = catalog.resolve(catalog.info("parameterization", name).scalars)
        for options in ({}, {"nf_width": 10, "nf_depth": 3}):
            assert scalars(shape, options) == PARAMETERIZATIONS.get(name).scalars_per_instance(shape, options)


def test_vocabularies_agree_with_the_code_that_reads_them() -> None:
    from methods.cfm.options import BetaSchedule, FilterKind
    from methods.spectral import BETA_SCHEDULES, FILTER_KINDS, SpectralFilter
    from methods.sre2l.objective import SRE2L_STATS
    from methods.sre2l.options import Sre2lStats

    assert tuple(FILTER_KINDS) == get_args(FilterKind)
    assert get_args(BetaSchedule) == BETA_SCHEDULES
    assert get_args(Sre2lStats) == SRE2L_STATS
    for kind in get_args(FilterKind):
        SpectralFilter(kind)  # every name the validator accepts builds


def test_option_modules_import_no_torch() -> None:
    """What the sweep validator reads: the catalog and every Options module it names."""
    refs = [
        e.options
        for kind in ("objective", "parameterization", "prerequisite")
        for e in getattr(catalog, kind.upper() + "S")
    ]
    refs += [e.scalars for e in catalog.PARAMETERIZATIONS]
    modules = [
        *sorted({r.partition(":")[0] for r in refs}),
        "methods.catalog",
        "methods.datasets.options",
        "methods.evaluation.options",
        "methods.evaluation.presets",
        "methods.distill.options",
        "methods.distill.trial",
        "methods.evaluation.real_training_options",
        "orchestrator.spec.sweep_file",
        "orchestrator.spec.plan",
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n    importlib.import_module(m)\n"
        "print([m for m in ('torch', 'torchvision', 'kornia', 'timm', 'ray', 'numpy') if m in sys.modules])\n"
    )
    assert fresh_output(code) == "[]"


def _builds(name: str, resolution: int) -> bool:
    """Whether network ``name`` builds for ``resolution`` px and maps a batch to logits."""
    from methods.networks import build_network

    try:
        net = build_network(name, 3, 10, resolution).eval()
        with torch.no_grad():
            out = net(torch.zeros(1, 3, resolution, resolution))
    except (ValueError, RuntimeError):  # NetworkError is a ValueError; a too-small map fails in a layer
        return False
    return tuple(out.shape) == (1, 10)


@pytest.mark.parametrize("name", catalog.names("network"))
def test_network_minimum_resolution_is_what_the_builder_accepts(name: str) -> None:
    """The catalog's minimum is exact: the builder takes it and refuses one pixel less, in each regime."""
    torch.manual_seed(0)
    net = catalog.network(name)
    small = net.min_resolution
    if small <= SMALL_IMAGE_MAX:
        assert _builds(name, small), f"{name} should build at {small} px"
        assert net.accepts(small) and not net.accepts(small - 1)
        if small > 1:
            assert not _builds(name, small - 1), f"{name} should refuse {small - 1} px"
    large = net.minimum(SMALL_IMAGE_MAX + 1)
    first_large = max(SMALL_IMAGE_MAX + 1, large)
    assert _builds(name, first_large), f"{name} should build at {first_large} px"
    if large > SMALL_IMAGE_MAX + 1:  # e.g. convnet_d7 needs 128 px
        assert not _builds(name, large - 1) and not net.accepts(large - 1)


def test_a_lookup_imports_only_the_module_of_its_name() -> None:
    """A ConvNet, DM and digits never import timm or torchvision; a ResNet needs torchvision only."""
    code = (
        "import sys\n"
        "from methods.datasets import DatasetOptions, load_dataset\n"
        "from methods.networks import NETWORKS, build_network\n"
        "from methods.distill.objective import OBJECTIVES\n"
        "build_network('convnet_d3', 1, 10, 8); OBJECTIVES.get('dm')\n"
        "load_dataset(DatasetOptions(name='digits', resolution=8))\n"
        "print(sorted(m for m in ('torchvision', 'timm', 'methods.tm.objective') if m in sys.modules))\n"
        "build_network('resnet18', 1, 10, 8)\n"
        "print(sorted(m for m in ('torchvision', 'timm') if m in sys.modules))\n"
        "try:\n    NETWORKS.get('resnet_18')\nexcept KeyError as err:\n    print(err)\n"
        "print('timm' in sys.modules, sorted(NETWORKS.names()) == sorted(NETWORKS._entries))\n"
    )
    lines = fresh_output(code).splitlines()
    assert lines[0] == "[]" and lines[1] == "['torchvision']"
    assert lines[2].startswith("unknown network 'resnet_18' (did you mean 'resnet18'?)")  # an unknown name: all loaded
    assert lines[3] == "True True"
