"""Warm a worker for the first trial's tasks while Tune starts (a one-node Ray: the embedded one, or a local one).

The first distillation task of a sweep lands on a fresh worker process, which imports torch
and the methods and loads the dataset before its first step (~5 s on 2 CPUs), after Tune has
started the trial. Tune gives trial processes a runtime environment of their own, and the
tasks a trial launches inherit it, so they cannot use the workers Ray prestarts for the
driver. This starts one task in that same environment as soon as Ray is up: it imports what
the tasks import and loads the dataset into the worker's in-process cache, on the compute
thread, while the driver builds the Tuner and Tune starts the trial. The trial's first task
then finds that worker idle and warm.

It only saves time: if the environment cannot be matched (a Ray without Tune's
``class_cache`` constants) nothing is started, and any error of the warm-up is ignored (the
real task reports it).
"""

from __future__ import annotations

import os
from typing import Any

import ray


def trial_task_env() -> dict[str, Any] | None:
    """The runtime environment Tune gives trial processes (Ray 2.x ``_ActorClassCache``), or None."""
    try:
        from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE
    except ImportError:
        return None
    env = dict(DEFAULT_ENV_VARS)
    env.update({k: os.environ[k] for k in ENV_VARS_TO_PROPAGATE if k in os.environ})
    return {"env_vars": env}


def warm(dataset: dict[str, Any], threads: int) -> None:
    """Task body: import what distillation and evaluation tasks import; load the dataset."""
    import torch

    from methods.datasets import DatasetOptions, cached_dataset
    from orchestrator import distill_worker  # noqa: F401  (torch, the methods, the pipeline)
    from orchestrator.compute_thread import on_compute_thread
    from orchestrator.staging import staged_dataset_options

    def load() -> None:
        torch.set_num_threads(max(1, threads))
        cached_dataset(DatasetOptions(**staged_dataset_options(dataset)))

    on_compute_thread(load)()


def start(dataset: dict[str, Any], cpus: float) -> ray.ObjectRef | None:
    """Launch the warm-up (reserving one distillation worker's CPUs, so the task it warms for
    waits for it rather than starting a second fresh process); returns its reference."""
    env = trial_task_env()
    if env is None:
        return None
    return (
        ray.remote(warm)
        .options(num_cpus=cpus, runtime_env=env, max_retries=0, name="ddx_warm_up")
        .remote(dataset, max(1, int(cpus)))
    )
