"""Evaluation settings and protocol presets: valid, round-tripping, preset + overrides, torch-free."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from methods.evaluation.options import EvalSettings
from methods.evaluation.presets import preset_values
from methods.evaluation.protocol import build_eval_settings, settings_from_dict
from methods.registry import PRESETS
from orchestrator.spec.schema import resolve_options


def _variants(name: str) -> list[tuple[str | None, int | None]]:
    p = PRESETS.get(name)
    out: list[tuple[str | None, int | None]] = [(None, None)]
    out += [(d, None) for d in p.by_dataset]
    out += [(d, ipc) for d, by_ipc in p.batch_size_by_ipc.items() for ipc in by_ipc]
    return out


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_builds_valid_settings_and_round_trips(name: str) -> None:
    p = PRESETS.get(name)
    assert p.name == name and p.source and p.summary
    fields = {f.name for f in dataclasses.fields(EvalSettings)}
    assert set(p.settings) <= fields
    for extra in p.by_dataset.values():
        assert set(extra) <= fields
    for dataset, ipc in _variants(name):
        s = build_eval_settings(preset=name, dataset=dataset, ipc=ipc)
        assert s.preset == name
        assert s.label_mode == p.settings["label_mode"]
        as_dict = s.to_dict()
        assert settings_from_dict(as_dict) == s  # settings → dict → settings
        assert build_eval_settings(as_dict) == s  # a full dict rebuilds the same settings
        for key, value in preset_values(name, dataset, ipc).items():
            assert getattr(s, key) == value


def test_preset_archs_are_registered_networks() -> None:
    from methods.registry import NETWORKS

    for p in PRESETS.entries():
        for arch in p.archs or ():
            assert arch in NETWORKS, (p.name, arch)


def test_explicit_keys_win_and_epochs_follow_the_preset() -> None:
    assert build_eval_settings({"preset": "sre2l_soft"}).epochs == 400
    assert build_eval_settings({"preset": "dd_standard"}).epochs == 1000
    s = build_eval_settings({"preset": "cfm_paper", "epochs": 7, "temperature": 2.0})
    assert (s.epochs, s.temperature, s.optimizer, s.preset) == (7, 2.0, "adam", "cfm_paper")
    # dataset and IPC variants, and explicit keys over them
    assert build_eval_settings(preset="cfm_paper", dataset="cifar100").optimizer == "sgd"
    assert build_eval_settings(preset="cfm_code", dataset="cifar10", ipc=10).batch_size == 50
    assert build_eval_settings(preset="cfm_code", dataset="cifar10", ipc=20).batch_size == 100
    assert build_eval_settings({"batch_size": 8}, preset="cfm_code", dataset="cifar10", ipc=10).batch_size == 8
    # without a preset: the dataclass defaults, which are dd_standard's values
    plain = build_eval_settings({})
    assert plain.preset is None
    assert dataclasses.replace(plain, preset="dd_standard") == build_eval_settings(preset="dd_standard")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        build_eval_settings(preset="nope")
    with pytest.raises(ValueError, match="unknown evaluation settings"):
        build_eval_settings({"epoch": 3})
    # the one rule set: every value strictly against its field's type (what ddx validate runs) …
    for values, field in (
        ({"schedule": "linear"}, "schedule"),
        ({"epochs": 0}, "epochs"),
        ({"label_mode": "soft", "mix": "cutmix", "mix_prob": 1.5}, "mix_prob"),
        ({"channels_last": "yes"}, "channels_last"),
        ({"lr": "0.1"}, "lr"),
    ):
        with pytest.raises(ValidationError) as info:
            resolve_options(EvalSettings, values)
        assert info.value.errors()[0]["loc"][0] == field
    # … and the rules between fields, which the dataclass itself holds
    with pytest.raises(ValueError, match="needs label_mode 'soft'"):
        EvalSettings(mix="cutmix")
    with pytest.raises(ValueError, match="soft_augment"):
        EvalSettings(soft_augment="rrc_blur")


def test_cfm_code_differs_from_the_paper_where_the_texts_do() -> None:
    paper = build_eval_settings(preset="cfm_paper", dataset="cifar10")
    code = build_eval_settings(preset="cfm_code", dataset="cifar10", ipc=10)
    assert (paper.temperature, code.temperature) == (30.0, 20.0)
    assert (paper.optimizer, code.optimizer) == ("adam", "adamw")
    assert (paper.mix, code.mix) == ("none", "cutmix")
    assert (paper.soft_augment, code.soft_augment) == ("crop_flip", "rrc_flip")
    assert PRESETS.get("cfm_code").archs == ("convnet_bn_d3", "resnet18")


def test_cosine_half_schedule_ends_at_half_the_rate() -> None:
    from methods.evaluation.student import lr_at

    s = EvalSettings(lr=1.0, epochs=100, schedule="cosine_half")
    assert lr_at(s, 0) == 1.0
    assert lr_at(s, 50) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(s, 99) == pytest.approx(0.5, abs=0.01)
    assert lr_at(EvalSettings(lr=1.0, epochs=100), 50) == pytest.approx(0.1)  # step: ×0.1 at half


def test_options_and_presets_import_without_torch() -> None:
    code = (
        "import sys; import methods.evaluation.presets, methods.evaluation.options, methods.augment.options; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
