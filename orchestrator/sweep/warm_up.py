"""Warm a worker for the first trial's tasks while Tune starts (a one-node Ray: the embedded one, or a local one).

The first distillation task of a sweep lands on a fresh worker process, which imports torch
and the methods and loads the dataset before its first step (~5 s on 2 CPUs), after Tune has
started the trial. Tune gives trial processes a runtime environment of their own, and the
tasks a trial launches inherit it, so they cannot use the workers Ray prestarts for the
driver. This starts one task in that same environment as soon as Ray is up: it imports what
the tasks import and loads the dataset into the worker's in-process cache, on the compute
thread, while the driver builds the Tuner and Tune starts the trial. The trial's first task
then finds that worker idle and warm.

The environment is built from :data:`TUNE_TRIAL_ENV` and :data:`TUNE_PROPAGATED_ENV`, this
module's copy of the constants in ``ray.tune.execution.class_cache`` (Ray 2.60, the version
``pyproject.toml`` pins): importing that module imports all of Tune, ~0.8 s the warm-up would
otherwise wait for. A test holds the copy equal to Tune's own, and another runs a real trial
and checks its task's environment against the warm-up's. Were they ever to differ, the warm-up
would warm a worker nobody uses — the first task would start cold, as without it — and nothing
else would change; any error of the warm-up is ignored (the real task reports it).
"""

from __future__ import annotations

import os
from typing import Any

import ray

from methods.datasets.options import DatasetOptions

#: ``ray.tune.execution.class_cache.DEFAULT_ENV_VARS``: set in every trial process
TUNE_TRIAL_ENV = {"PL_DISABLE_FORK": "1"}

#: ``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE``: copied from the driver when set
TUNE_PROPAGATED_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SECURITY_TOKEN",
        "AWS_SESSION_TOKEN",
        "NCCL_RAS_ADDR",
        "RAY_CHDIR_TO_TRIAL_DIR",
        "RAY_TRAIN_CHECKPOINT_UPLOAD_WARN_INTERVAL_S",
        "RAY_TRAIN_COLLECTIVE_TIMEOUT_S",
        "RAY_TRAIN_COLLECTIVE_WARN_INTERVAL_S",
        "RAY_TRAIN_ENABLE_CONTROLLER_STRUCTURED_LOGGING",
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER",
        "RAY_TRAIN_ENABLE_PRINT_PATCH",
        "RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION",
        "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS",
        "RAY_TRAIN_ENABLE_WORKER_STRUCTURED_LOGGING",
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S",
        "RAY_TRAIN_PREEMPTION_POLL_INTERVAL_S",
        "RAY_TRAIN_STATE_ACTOR_RECONCILIATION_INTERVAL_S",
        "RAY_TRAIN_V2_ENABLED",
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S",
        "RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S",
        "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC",
        "TORCHFT_LIGHTHOUSE",
        "TRAIN_COPY_DIRECTORY_CHECKPOINTS_INSTEAD_OF_MOVING",
    }
)


def trial_task_env() -> dict[str, Any]:
    """The runtime environment Tune gives trial processes (and so every task a trial launches)."""
    env = dict(TUNE_TRIAL_ENV)
    env.update({k: os.environ[k] for k in sorted(TUNE_PROPAGATED_ENV) if k in os.environ})
    return {"env_vars": env}


def warm(dataset: DatasetOptions, threads: int) -> None:
    """Task body: import what distillation and evaluation tasks import; load the dataset."""
    import torch
    import torch._dynamo  # ~1.3 s: the first torch.optim optimizer of a task imports it

    from methods.datasets import cached_dataset
    from orchestrator.cluster.compute_thread import on_compute_thread
    from orchestrator.storage.staging import staged
    from orchestrator.sweep import distill_worker  # noqa: F401  (torch, the methods, the pipeline)

    def load() -> None:
        torch.set_num_threads(max(1, threads))
        cached_dataset(staged(dataset))

    on_compute_thread(load)()


def start(dataset: DatasetOptions, cpus: float) -> ray.ObjectRef:
    """Launch the warm-up (reserving one distillation worker's CPUs, so the task it warms for
    waits for it rather than starting a second fresh process); returns its reference."""
    env = trial_task_env()
    return (
        ray.remote(warm)
        .options(num_cpus=cpus, runtime_env=env, max_retries=0, name="ddx_warm_up")
        .remote(dataset, max(1, int(cpus)))
    )
