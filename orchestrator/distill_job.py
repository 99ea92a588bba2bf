"""Distillation as a Ray Train run: one ``TorchTrainer`` per trial, named after the trial.

Workers (gloo on CPU, nccl on GPU) each build the same components, shard the work through
:class:`methods.context.DistillContext`, checkpoint the gathered state every
``checkpoint_every`` steps, and rank 0 reports the final synthetic set as the run's last
checkpoint. A re-started run with the same name resumes from its latest checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray.train
import torch
from ray.train.torch import TorchConfig, TorchTrainer

from methods.artifacts import LocalArtifactCache
from methods.context import DistillContext
from methods.datasets import DatasetOptions, cached_dataset
from methods.parameterizations import save_synthetic
from methods.pipeline import run_distillation
from methods.real_training import load_network

STATE_FILE = "state.pt"
SYNTHETIC_FILE = "synthetic.pt"


@dataclass
class DistillJob:
    """Everything a Train worker needs (plain data: it crosses process boundaries)."""

    dataset: dict[str, Any]
    hp: dict[str, Any]
    seed: int
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    teacher_path: str | None = None  # squeeze-step teacher (orchestrator/teachers.py), loaded by every worker
    cache_dir: str | None = None  # artifact cache root: recover objectives cache real statistics there


def _load_state(checkpoint: ray.train.Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        path = Path(d) / STATE_FILE
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)


def distill_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker``: distil on this rank, checkpoint, report the final set."""
    job = DistillJob(**config)
    torch.set_num_threads(max(1, job.threads))
    rank = ray.train.get_context().get_world_rank()

    def progress(info: dict[str, Any]) -> None:
        return None  # progress travels with checkpoints; reporting each step would be a barrier

    cache = LocalArtifactCache(job.cache_dir) if job.cache_dir else None
    ctx = DistillContext.from_environment(seed=job.seed, progress=progress, cache=cache)
    data = cached_dataset(DatasetOptions(**job.dataset))
    resume = _load_state(ray.train.get_checkpoint())

    def on_checkpoint(state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as d:
            ckpt = None
            if rank == 0:
                torch.save(state, Path(d) / STATE_FILE)
                ckpt = ray.train.Checkpoint.from_directory(d)
            metrics = {"phase": int(state["phase"]), "step": int(state["step"]), "final": 0}
            ray.train.report(metrics, checkpoint=ckpt)

    needs = {"teacher": load_network(job.teacher_path, ctx.device)[0]} if job.teacher_path else {}
    param, objective, summary = run_distillation(job.hp, data, ctx, needs, resume, on_checkpoint)
    with tempfile.TemporaryDirectory() as d:
        ckpt = None
        if rank == 0:
            extra = {**summary, **objective.row_fields(), "world_size": ctx.world_size, **job.extra}
            extra.update(mean=list(data.mean), std=list(data.std), class_names=list(data.class_names))  # ddx export
            save_synthetic(param, Path(d) / SYNTHETIC_FILE, extra=extra)
            ckpt = ray.train.Checkpoint.from_directory(d)
        ray.train.report({**summary, "final": 1}, checkpoint=ckpt)


def run_train(
    job: DistillJob,
    run_name: str,
    storage_path: str,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
) -> tuple[Path, dict[str, Any]]:
    """Fit a ``TorchTrainer`` for ``job``; return the final synthetic set (local copy) and metrics."""
    use_gpu = gpus_per_worker > 0
    resources: dict[str, float] = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = gpus_per_worker
    job.threads = max(1, int(cpus_per_worker))
    trainer = TorchTrainer(
        distill_worker,
        train_loop_config=asdict(job),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage_path,
            failure_config=ray.train.FailureConfig(max_failures=1, controller_failure_limit=2),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Train run {run_name} finished without a checkpoint")
    local = Path(tempfile.mkdtemp(prefix="ddx-syn-"))
    with result.checkpoint.as_directory() as d:
        src = Path(d) / SYNTHETIC_FILE
        if not src.exists():
            raise RuntimeError(f"Train run {run_name}'s last checkpoint holds no {SYNTHETIC_FILE}")
        (local / SYNTHETIC_FILE).write_bytes(src.read_bytes())
    return local / SYNTHETIC_FILE, dict(result.metrics or {})


def worker_env() -> dict[str, str]:
    """Environment for Ray workers that keeps Train quiet and quick to fail on a laptop."""
    env = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    for k in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "DDX_CACHE"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env
