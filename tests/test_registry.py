"""The plugin registry: ddx's own components are entry points like a plugin's, declared once, torch-free."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest
import torch

from methods.evaluation.options import LABEL_MODE_REQUIRES, LABEL_MODES
from methods.networks.info import SMALL_IMAGE_MAX
from methods.registry import (
    DATASETS,
    NETWORKS,
    OBJECTIVES,
    PARAMETERIZATIONS,
    PREREQUISITES,
    PRESETS,
    ObjectiveEntry,
    PluginError,
    Registry,
    UnknownNameError,
)
from tests.helpers import fresh_output

BUILTIN = {
    "dataset": {"digits", "cifar10", "cifar100", "tiny_imagenet", "imagefolder"},
    "objective": {"random", "dm", "dc", "tm", "cfm", "lfm", "filter_matching", "sre2l"},
    "parameterization": {"pixels", "neural_field"},
    "prerequisite": {"teacher", "experts"},
    "preset": {"dd_standard", "ddif_paper", "cfm_paper", "cfm_code", "sre2l_soft", "sre2l_imagenet"},
}


@pytest.mark.parametrize("registry", [DATASETS, OBJECTIVES, PARAMETERIZATIONS, PREREQUISITES, PRESETS])
def test_the_builtins_are_registered_by_entry_point(registry: Registry) -> None:
    assert BUILTIN[registry.kind] <= set(registry.names())
    for name in BUILTIN[registry.kind]:
        assert registry.origin(name).startswith("ddx (ddx."), registry.origin(name)  # ddx's own pyproject


def test_declarations_are_consistent() -> None:
    """An objective's requires are registered prerequisites; each entry's implementation exists and
    is the kind of thing it declares; every option class is a dataclass."""
    from methods.distill.objective import Objective
    from methods.parameterizations.base import Parameterization
    from methods.prerequisites import Prerequisite

    for entry in OBJECTIVES.entries():
        assert set(entry.requires) <= set(PREREQUISITES.names()), entry.name
        assert issubclass(entry.implementation(), Objective) and dataclasses.is_dataclass(entry.options)
    for entry in PARAMETERIZATIONS.entries():
        assert issubclass(entry.implementation(), Parameterization) and dataclasses.is_dataclass(entry.options)
    for entry in PREREQUISITES.entries():
        assert issubclass(entry.implementation(), Prerequisite) and dataclasses.is_dataclass(entry.options)
    assert set(LABEL_MODES) == set(LABEL_MODE_REQUIRES)
    assert {p for ps in LABEL_MODE_REQUIRES.values() for p in ps} <= set(PREREQUISITES.names())


def test_budget_functions_are_the_parameterizations_own() -> None:
    from methods.parameterizations import SetShape

    shape = SetShape(num_classes=10, ipc=3, channels=3, resolution=32)
    for entry in PARAMETERIZATIONS.entries():
        for options in (
            entry.options(),
            *([entry.options(nf_width=10, nf_depth=3)] if entry.name == "neural_field" else []),
        ):
            assert entry.scalars(shape, options) == entry.implementation().scalars_per_instance(shape, options)


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


def test_declarations_and_the_validator_import_no_torch() -> None:
    """Listing every component, reading their options and validating a sweep load no torch."""
    code = (
        "import sys\n"
        "from methods.registry import REGISTRIES\n"
        "for r in REGISTRIES.values():\n    r.entries()\n"
        "import orchestrator.spec.load, orchestrator.spec.plan\n"
        "print([m for m in ('torch', 'torchvision', 'kornia', 'timm', 'ray', 'numpy') if m in sys.modules])\n"
    )
    assert fresh_output(code) == "[]"


def _builds(name: str, resolution: int) -> bool:
    """Whether network ``name`` builds for ``resolution`` px and maps a batch to logits."""
    from methods.networks import NetworkError, build_network

    try:
        net = build_network(name, 3, 10, resolution).eval()
    except NetworkError:
        return False
    with torch.no_grad():
        out = net(torch.zeros(1, 3, resolution, resolution))
    return tuple(out.shape) == (1, 10)


@pytest.mark.parametrize("name", NETWORKS.names())
def test_a_network_builds_at_its_declared_minimum_and_is_refused_below(name: str) -> None:
    """The entry's minimum is the one check (the builder does not repeat it): at it the network runs,
    one pixel less is refused, in each regime."""
    torch.manual_seed(0)
    net = NETWORKS.get(name)
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
        "from methods.networks import build_network\n"
        "from methods.registry import NETWORKS, OBJECTIVES\n"
        "build_network('convnet_d3', 1, 10, 8); OBJECTIVES.get('dm')\n"
        "load_dataset(DatasetOptions(name='digits', resolution=8))\n"
        "print(sorted(m for m in ('torchvision', 'timm', 'methods.tm', 'methods.dm.objective') if m in sys.modules))\n"
        "build_network('resnet18', 1, 10, 8)\n"
        "print(sorted(m for m in ('torchvision', 'timm') if m in sys.modules))\n"
        "try:\n    NETWORKS.get('resnet_18')\nexcept KeyError as err:\n    print(err)\n"
        "print('timm' in sys.modules)\n"
    )
    lines = fresh_output(code).splitlines()
    assert lines[0] == "[]" and lines[1] == "['torchvision']"
    assert lines[2].startswith("unknown network 'resnet_18' (did you mean 'resnet18'?)")
    assert lines[3] == "False"  # listing names loads declarations, never an implementation


def test_registering_checks_names_and_types() -> None:
    """A name declared twice, or a declaration of the wrong kind, is one line naming both origins."""
    registry: Registry[ObjectiveEntry] = Registry("objective", "ddx.objectives", ObjectiveEntry)
    mine = ObjectiveEntry("mine", "my_package.objective:Mine", options=object)
    registry.register(mine, origin="my-package")
    assert registry.get("mine") is mine
    with pytest.raises(PluginError, match=r"objective 'dm' is declared twice: by ddx .* and by my-package"):
        registry.register(ObjectiveEntry("dm", "x:Y", options=object), origin="my-package")
    with pytest.raises(PluginError, match="declares a str as a objective"):
        registry.register("dm", origin="my-package")  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="did you mean 'mine'"):
        registry.get("mien")
    assert isinstance(UnknownNameError("x"), ValueError) and isinstance(UnknownNameError("x"), KeyError)
