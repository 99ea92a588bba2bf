"""Two gloo workers on CPU: TM and DC in replicated phases give one worker's result.

Documented behaviour under test: a replicated phase keeps every row on every rank, splits the
work (TM: trajectory t on rank t % W; DC: class c on rank c % W), sums the gradients over
ranks and takes the same step everywhere. Every draw is seeded by (seed, step, t or c), so
for a fixed ``trajectories_per_step`` the set equals one worker's up to summation order, and
both ranks hold the same set and the same learned step size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from methods.context import DistillContext
from methods.distill.pipeline import run_distillation
from tests.helpers import trial_of

TM_HP: dict[str, Any] = {
    "objective": "tm", "ipc": 2, "iterations": 4, "syn_steps": 3, "expert_epochs": 2, "max_start_epoch": 2,
    "batch_syn": 10, "lr_images": 100.0, "syn_lr_lr": 1e-4, "trajectories_per_step": 3,
    "tm_gradient": "constant_memory",
}  # fmt: skip
DC_HP: dict[str, Any] = {
    "objective": "dc", "ipc": 1, "iterations": 2, "outer_loop": 2, "inner_loop": 1, "batch_real": 16,
    "distill_arch": "convnet_d1",
}  # fmt: skip


def _data():
    from methods.datasets import DatasetOptions, load_dataset

    return load_dataset(DatasetOptions(name="digits"))


def _worker(rank: int, world: int, init: str, expert_paths: list[str], out_dir: str) -> None:
    from experts_helper import load_buffer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        data = _data()
        buffer = load_buffer([Path(p) for p in expert_paths])
        ctx = DistillContext.from_environment(seed=5)
        tm_param, tm_obj, tm_summary = run_distillation(trial_of(data, dict(TM_HP)), data, ctx, {"experts": buffer})
        dc_param, _, dc_summary = run_distillation(trial_of(data, dict(DC_HP)), data, ctx)
        torch.save(
            {
                "tm_images": tm_param.images.detach().clone(),
                "tm_lr": tm_obj.syn_lr.detach().clone(),
                "tm_loss": tm_summary["loss"],
                "tm_trajectories": [t for t, _, _ in tm_obj.last_starts],
                "dc_images": dc_param.images.detach().clone(),
                "dc_loss": dc_summary["loss"],
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
        dist.barrier()  # no rank tears gloo down while the other still talks to it (an abort at exit, seen once)
    finally:
        dist.destroy_process_group()
    # results are saved: skip the interpreter's teardown, where gloo's threads abort the process now and
    # then (SIGABRT, 'terminate called without an active exception'), failing a test that passed
    os._exit(0)


def test_two_gloo_workers_equal_one(tmp_path: Path) -> None:
    from experts_helper import load_buffer, make_experts

    data = _data()
    paths = make_experts(data, tmp_path / "experts")
    init = f"file://{tmp_path / 'rendezvous'}"
    env_backup = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    tests_dir = str(Path(__file__).resolve().parent)
    path_backup = os.environ.get("PYTHONPATH")
    # the spawned workers import the test helpers
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tests_dir, path_backup) if p)
    try:
        mp.start_processes(
            _worker, args=(2, init, [str(p) for p in paths], str(tmp_path)), nprocs=2, join=True, start_method="spawn"
        )
    finally:
        for key, value in (("OMP_NUM_THREADS", env_backup), ("PYTHONPATH", path_backup)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["tm_trajectories"] == [0, 2] and ranks[1]["tm_trajectories"] == [1]  # t on rank t % 2

    torch.set_num_threads(1)
    ctx = DistillContext(seed=5)
    one, one_obj, one_summary = run_distillation(
        trial_of(data, dict(TM_HP)), data, ctx, {"experts": load_buffer(paths)}
    )
    dc_one, _, dc_summary = run_distillation(trial_of(data, dict(DC_HP)), data, ctx)
    assert one_obj.last_starts and [t for t, _, _ in one_obj.last_starts] == [0, 1, 2]
    for r in ranks:
        torch.testing.assert_close(r["tm_images"], one.images.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r["tm_lr"], one_obj.syn_lr.detach(), rtol=1e-5, atol=1e-8)
        assert r["tm_loss"] == pytest.approx(one_summary["loss"], rel=1e-5)
        torch.testing.assert_close(r["dc_images"], dc_one.images.detach(), rtol=1e-5, atol=1e-5)
        assert r["dc_loss"] == pytest.approx(dc_summary["loss"], rel=1e-5)
    assert torch.equal(ranks[0]["tm_images"], ranks[1]["tm_images"])  # the ranks stay identical
    assert torch.equal(ranks[0]["dc_images"], ranks[1]["dc_images"])
    assert not torch.equal(one.images, run_distillation(trial_of(data, {**TM_HP, "iterations": 0}), data, ctx,
                                                        {"experts": load_buffer(paths)})[0].images)  # fmt: skip
