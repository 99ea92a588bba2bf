"""The tm objective: it learns on pixels and neural fields, carries its learned step size, resumes exactly."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from experts_helper import TINY_EXPERTS, load_buffer, make_experts

from methods.context import DistillContext
from methods.datasets import DatasetOptions, load_dataset
from methods.distill.loop import DistillSettings, resolve_optim
from methods.distill.pipeline import make_components, run_distillation
from methods.evaluation.student import LEARNED_LR_KEY, EvalSettings, learned_lr, train_student
from methods.parameterizations import load_synthetic, save_synthetic
from methods.parameterizations.neural_field import field_lr
from methods.registry import OBJECTIVES
from methods.tm.objective import TrajectoryMatching
from methods.tm.options import TMOptions
from tests.helpers import trial_of

HP: dict[str, Any] = {
    "objective": "tm",
    "ipc": 2,
    "iterations": 12,
    "syn_steps": 4,
    "expert_epochs": 2,
    "max_start_epoch": 2,
    "batch_syn": 10,
    "augment": "none",
    "lr_images": 100.0,
    "syn_lr_lr": 1e-4,
    "tm_gradient": "constant_memory",
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetOptions(name="digits"))


@pytest.fixture(scope="module")
def experts(digits, tmp_path_factory):
    torch.set_num_threads(1)
    return make_experts(digits, tmp_path_factory.mktemp("experts"))


def fixed_loss(obj: TrajectoryMatching, images: torch.Tensor, labels: torch.Tensor, steps: int = 4) -> float:
    """TM's loss of ``images`` over the trajectories of iterations 0…steps−1 (fixed draws)."""
    ctx = DistillContext(seed=0)
    phase = obj.phases(_Rows(images.shape[0]), 1, ctx)[0]  # type: ignore[arg-type]
    return sum(float(obj.loss(images, labels, phase, s, ctx).detach()) for s in range(steps)) / steps


class _Rows:  # what TM's phases() reads of a parameterization
    def __init__(self, n: int) -> None:
        self.num_instances = n


def test_registered_with_mtt_defaults() -> None:
    assert OBJECTIVES.get("tm").implementation() is TrajectoryMatching and OBJECTIVES.get("tm").requires == ("experts",)
    o = TMOptions()
    assert (o.syn_steps, o.expert_epochs, o.max_start_epoch, o.syn_lr_init, o.syn_lr_lr) == (50, 2, 2, 0.01, 1e-7)
    assert o.tm_gradient == "unrolled" and o.batch_syn is None and o.last_epoch_needed() == 3
    obj = TrajectoryMatching(o)
    assert float(obj.syn_lr.detach()) == pytest.approx(0.01)


def test_datm_schedule_widens_the_start_range() -> None:
    o = TMOptions(max_start_epoch=20, start_epoch_initial_max=10, start_epoch_expand_until=100)
    assert [o.start_upper(s) for s in (0, 50, 100, 500)] == [10, 15, 20, 20]
    assert TMOptions(max_start_epoch=20).start_upper(0) == 20
    with pytest.raises(ValueError, match="min_start_epoch"):
        TrajectoryMatching(TMOptions(max_start_epoch=3, min_start_epoch=3))


@pytest.mark.parametrize("gradient", ["constant_memory", "unrolled"])
def test_tm_learns_pixels(digits, experts, gradient: str) -> None:
    buffer = load_buffer(experts)
    hp = {**HP, "tm_gradient": gradient}
    start, _, _ = run_distillation(
        trial_of(digits, {**hp, "iterations": 0}), digits, DistillContext(seed=0), {"experts": buffer}
    )
    param, obj, summary = run_distillation(trial_of(digits, hp), digits, DistillContext(seed=0), {"experts": buffer})
    assert summary["steps"] == 12 and math.isfinite(summary["loss"])
    assert not torch.equal(param.images, start.images)
    assert param.budget_used_per_class() <= param.config.shape.budget_scalars
    assert obj.row_fields()[LEARNED_LR_KEY] != pytest.approx(0.01)  # α moved
    labels = param.labels
    before = fixed_loss(obj, start.decode().detach(), labels)
    after = fixed_loss(obj, param.decode().detach(), labels)
    assert after < 0.9 * before, (before, after)
    assert buffer.max_held == 1


def test_tm_learns_neural_fields(digits, experts, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    buffer = load_buffer(experts)
    hp = {**HP, "parameterization": "neural_field", "nf_width": 4, "nf_depth": 1, "warmup_iterations": 30,
          "lr_images": 1e-2, "batch_syn": 30}  # fmt: skip
    c = make_components(trial_of(digits, hp), digits)
    assert c.param.per_class >= 2 and c.param.budget_used_per_class() <= c.param.config.shape.budget_scalars
    start, _, _ = run_distillation(
        trial_of(digits, {**hp, "iterations": 0}), digits, DistillContext(seed=0), {"experts": buffer}
    )
    param, obj, _ = run_distillation(trial_of(digits, hp), digits, DistillContext(seed=0), {"experts": buffer})
    moved = [not torch.equal(v, start.state_dict()[k]) for k, v in param.state_dict().items() if k != "labels"]
    assert moved and all(moved)
    with torch.no_grad():
        before = fixed_loss(obj, start.decode(), param.labels)
        after = fixed_loss(obj, param.decode(), param.labels)
    assert after < before, (before, after)


def test_field_learning_rates_follow_ddif_table_9(digits) -> None:
    assert field_lr("tm", "cifar10", 1) == field_lr("tm", "cifar10", 10) == 1e-3
    assert field_lr("tm", "cifar10", 50) == 1e-4
    assert field_lr("tm", "cifar100", 50) == 1e-3
    assert field_lr("tm", "imagefolder", 1) == 1e-4
    assert field_lr("dm", "cifar10", 1) == field_lr("dc", "cifar100", 10) == 5e-5
    c = make_components(trial_of(digits, {"objective": "tm", "parameterization": "neural_field", "ipc": 2}), digits)
    assert c.param.config.shape.dataset == "digits"
    o = resolve_optim(c.objective, c.param, DistillSettings())
    assert (o.optimizer, o.lr) == ("adam", 1e-4)
    pix = make_components(trial_of(digits, {"objective": "tm", "ipc": 2}), digits)
    o = resolve_optim(pix.objective, pix.param, DistillSettings())
    assert (o.optimizer, o.lr, o.momentum) == ("sgd", 1000.0, 0.5)  # MTT's pixel optimiser


def test_learned_lr_is_saved_with_the_set_and_used_by_students(digits, experts, tmp_path: Path) -> None:
    param, obj, _ = run_distillation(trial_of(digits, {**HP, "iterations": 3}), digits, DistillContext(seed=0),
                                     {"experts": load_buffer(experts)})  # fmt: skip
    alpha = float(obj.syn_lr.detach())
    save_synthetic(param, tmp_path / "set.pt", extra={**obj.row_fields()})
    _, extra = load_synthetic(tmp_path / "set.pt")
    assert learned_lr(extra) == pytest.approx(alpha) and alpha != pytest.approx(0.01)
    settings = EvalSettings(epochs=2, batch_size=64, augment="none", lr=0.05)
    images = param.decode().detach()
    default = train_student(images, param.labels, digits, "convnet_d1", 0, settings, set_lr=learned_lr(extra))
    used = train_student(images, param.labels, digits, "convnet_d1", 0, replace(settings, lr_from_set=True),
                         set_lr=learned_lr(extra))  # fmt: skip
    assert default.lr == pytest.approx(0.05)  # default behaviour unchanged
    assert used.lr == pytest.approx(alpha)
    w_default = torch.cat([p.reshape(-1) for p in default.model.parameters()])
    w_used = torch.cat([p.reshape(-1) for p in used.model.parameters()])
    assert not torch.allclose(w_default, w_used)
    with pytest.raises(ValueError, match="lr_from_set"):
        train_student(images, param.labels, digits, "convnet_d1", 0, replace(settings, lr_from_set=True))


def test_resume_continues_exactly(digits, experts) -> None:
    buffer = load_buffer(experts)
    hp = {**HP, "iterations": 6, "checkpoint_every": 3}
    states: list[dict[str, Any]] = []
    full, full_obj, _ = run_distillation(trial_of(digits, hp), digits, DistillContext(seed=0), {"experts": buffer},
                                         on_checkpoint=states.append)  # fmt: skip
    assert len(states) == 1 and states[0]["step"] == 3 and "syn_lr_momentum" in states[0]["objective"]
    resumed, res_obj, _ = run_distillation(
        trial_of(digits, hp), digits, DistillContext(seed=0), {"experts": buffer}, resume=states[0]
    )
    torch.testing.assert_close(resumed.images, full.images, rtol=0, atol=1e-6)
    assert float(res_obj.syn_lr.detach()) == pytest.approx(float(full_obj.syn_lr.detach()), rel=1e-6)


def test_missing_or_short_experts_fail_clearly(digits, experts) -> None:
    obj = TrajectoryMatching(TMOptions(max_start_epoch=2, expert_epochs=2))
    with pytest.raises(ValueError, match="prerequisite 'experts'"):
        obj.prepare(digits, DistillContext(), {})
    short = TrajectoryMatching(TMOptions(max_start_epoch=3, expert_epochs=3))  # needs epoch 5; experts keep 0…4
    with pytest.raises(ValueError, match="keep 0…4"):
        short.prepare(digits, DistillContext(), {"experts": load_buffer(experts)})
    assert TINY_EXPERTS.epochs_trained == 4


def test_option_modules_import_no_torch() -> None:
    """The spec validator reads TMOptions / ExpertOptions / DCOptions without importing torch."""
    import subprocess
    import sys

    code = "import sys, methods.tm.options, methods.dc.options; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
