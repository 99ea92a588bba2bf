"""The dc objective: DC's layer-wise distance, its per-IPC loops, learning on pixels and neural fields, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from methods.context import DistillContext
from methods.datasets import DatasetOptions, load_dataset
from methods.dc.objective import GradientMatching, layer_distance, match_distance
from methods.dc.options import DCOptions, dc_loops
from methods.distill.pipeline import make_components, run_distillation
from methods.registry import OBJECTIVES
from tests.helpers import trial_of

HP: dict[str, Any] = {
    "objective": "dc",
    "ipc": 2,
    "iterations": 4,
    "outer_loop": 3,
    "inner_loop": 2,
    "batch_real": 32,
    "batch_train": 64,
    "distill_arch": "convnet_d1",
    "augment": "none",
}


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset(DatasetOptions(name="digits"))


def test_layer_distance_is_dc_s() -> None:
    g = torch.randn(4, 3, 3, 3)
    assert float(layer_distance(g, g)) == pytest.approx(0.0, abs=1e-5)  # identical: 0
    assert float(layer_distance(g, -g)) == pytest.approx(8.0, abs=1e-5)  # opposite: 2 per output unit
    assert float(layer_distance(g, 3.0 * g)) == pytest.approx(0.0, abs=1e-5)  # scale-free
    h = g.clone()
    h[1] = torch.randn(3, 3, 3)
    a, b = g[1].reshape(-1), h[1].reshape(-1)
    assert float(layer_distance(h, g)) == pytest.approx(float(1 - a @ b / (a.norm() * b.norm())), abs=1e-5)
    assert float(layer_distance(torch.randn(5), torch.randn(5))) == 0.0  # biases / norm scales skipped
    assert float(match_distance([g, torch.randn(4)], [-g, torch.randn(4)])) == pytest.approx(8.0, abs=1e-5)


def test_loops_follow_the_paper_table() -> None:
    assert [dc_loops(i) for i in (1, 10, 50)] == [(1, 1), (10, 50), (50, 10)]
    assert dc_loops(2) == (1, 1) and dc_loops(15) == (10, 50) and dc_loops(100) == (50, 10)
    assert DCOptions(outer_loop=3).loops(10) == (3, 50)
    assert OBJECTIVES.get("dc").implementation() is GradientMatching


def test_dc_learns_pixels(digits) -> None:
    start, _, _ = run_distillation(trial_of(digits, {**HP, "iterations": 0}), digits, DistillContext(seed=0))
    param, obj, summary = run_distillation(trial_of(digits, HP), digits, DistillContext(seed=0))
    assert summary["steps"] == 4 * 3  # iterations × outer_loop updates
    assert not torch.equal(param.images, start.images)
    ctx = DistillContext(seed=0)
    phase = obj.phases(param, 1, ctx)[0]

    def loss_at(images: torch.Tensor) -> float:  # the matching loss under the networks of updates 0, 3, 6
        total = 0.0
        for step in (0, 3, 6):
            obj.net = None
            total += float(obj.loss(images, param.labels, phase, step, ctx).detach())
        return total

    before, after = loss_at(start.images.detach()), loss_at(param.images.detach())
    assert after < 0.9 * before, (before, after)


def test_dc_learns_neural_fields(digits, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    hp = {**HP, "parameterization": "neural_field", "nf_width": 4, "nf_depth": 1, "warmup_iterations": 30,
          "lr_images": 1e-2}  # fmt: skip
    c = make_components(trial_of(digits, hp), digits)
    assert c.param.budget_used_per_class() <= c.param.config.shape.budget_scalars
    start, _, _ = run_distillation(trial_of(digits, {**hp, "iterations": 0}), digits, DistillContext(seed=0))
    param, obj, _ = run_distillation(trial_of(digits, hp), digits, DistillContext(seed=0))
    moved = [not torch.equal(v, start.state_dict()[k]) for k, v in param.state_dict().items() if k != "labels"]
    assert moved and all(moved)
    ctx = DistillContext(seed=0)
    phase = obj.phases(param, 1, ctx)[0]
    obj.net = None
    before = float(obj.loss(start.decode().detach(), param.labels, phase, 0, ctx).detach())
    obj.net = None
    after = float(obj.loss(param.decode().detach(), param.labels, phase, 0, ctx).detach())
    assert after < before, (before, after)


def test_resume_mid_iteration_is_exact(digits) -> None:
    hp = {**HP, "iterations": 2, "checkpoint_every": 4}  # a checkpoint after update 4: inside iteration 1
    states: list[dict[str, Any]] = []
    full, _, _ = run_distillation(trial_of(digits, hp), digits, DistillContext(seed=0), on_checkpoint=states.append)
    assert states and states[0]["step"] == 4 and int(states[0]["objective"]["net_iteration"]) == 1
    resumed, _, _ = run_distillation(trial_of(digits, hp), digits, DistillContext(seed=0), resume=states[0])
    torch.testing.assert_close(resumed.images, full.images, rtol=0, atol=1e-6)
