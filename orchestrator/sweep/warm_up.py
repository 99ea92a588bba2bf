"""Warm a worker for the first trial's tasks while Tune starts (a one-node Ray: the embedded one, or a local one).

The first distillation task of a sweep lands on a fresh worker process, which imports torch
and the methods and loads the dataset before its first step (~5 s on 2 CPUs), after Tune has
started the trial. Ray reuses a worker only for tasks of the same runtime environment, and a
trial's tasks inherit the trial's (Ray's documented inheritance): the job's environment plus
the variables Tune gives every trial process, which Tune does not publish. This starts one task
in that same environment as soon as Ray is up: it imports what the tasks import and loads the
dataset into the worker's in-process cache, on the compute thread, while the driver builds the
Tuner and Tune starts the trial. The trial's first task then finds that worker idle and warm.

Which environment that is, ddx learns from the trials themselves, through Ray's public API: a
trial reads its own runtime environment (``ray.get_runtime_context().runtime_env``) and records
it in ``$DDX_CACHE/trial-env.json`` (:class:`EnvRecorder`), for this Ray version; the next
sweep's warm-up runs in the environment recorded (:func:`trial_task_env`). A variable that the
driver's own environment has is recorded by name alone, its value taken from the driver's
environment when the warm-up starts (Tune copies those from there; a credential is never
written down). So the first sweep on a machine, or after Ray is upgraded, starts no warm-up;
every later one does. Were the environments ever to differ (a variable Tune copies set only
since), the warm-up would warm a worker nobody uses — the first task would start cold, as
without it — and that trial records the environment anew; any error of the warm-up is
ignored (the real task reports it).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import ray

from methods.artifacts import default_cache_dir
from methods.atomic import atomic_path
from methods.datasets.options import DatasetOptions
from methods.records import JsonObject

#: the record of the trials' runtime environment, in ``$DDX_CACHE``
RECORD_NAME = "trial-env.json"


def record_path() -> Path:
    """``$DDX_CACHE/trial-env.json``: the runtime environment this machine's last trial ran in."""
    return default_cache_dir() / RECORD_NAME


def trial_task_env(path: Path | None = None) -> JsonObject | None:
    """The runtime environment a trial's tasks run in, as the last trial on this machine recorded
    it (``path``, default :func:`record_path`) for this Ray version; None when there is no such
    record (none yet, another Ray version's, unreadable)."""
    try:
        record = json.loads((path or record_path()).read_text())
        if record["ray"] != ray.__version__:
            return None
        env = {str(k): str(v) for k, v in record["set"].items()}
        env.update({k: os.environ[k] for k in record["from_driver"] if k in os.environ})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {"env_vars": env}


@dataclass(frozen=True)
class EnvRecorder:
    """Given to each trial: records the trial's runtime environment for the next sweep's warm-up.

    ``path``: where (the driver's :func:`record_path`); ``driver_names``: the names of the driver's
    environment variables, whose values are left out of the record (:func:`trial_task_env` takes
    them from the driver's environment then)."""

    path: str
    driver_names: frozenset[str]

    @classmethod
    def here(cls) -> EnvRecorder:
        return cls(str(record_path()), frozenset(os.environ))

    def record(self, env_vars: dict[str, str]) -> JsonObject:
        """What is written for a trial whose runtime environment has ``env_vars``."""
        return {
            "ray": ray.__version__,
            "set": {k: v for k, v in sorted(env_vars.items()) if k not in self.driver_names},
            "from_driver": sorted(k for k in env_vars if k in self.driver_names),
        }

    def __call__(self) -> None:
        """In a trial: write the record when it differs from the one there. Never fails the trial."""
        with contextlib.suppress(Exception):
            env_vars = dict(ray.get_runtime_context().runtime_env.get("env_vars") or {})
            record = self.record(env_vars)
            path = Path(self.path)
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text()) == record:
                    return
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")


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


def start(dataset: DatasetOptions, cpus: float, env: JsonObject) -> ray.ObjectRef:
    """Launch the warm-up in the runtime environment ``env`` (:func:`trial_task_env`), reserving
    one distillation worker's CPUs, so the task it warms for waits for it rather than starting a
    second fresh process; returns its reference."""
    return (
        ray.remote(warm)
        .options(num_cpus=cpus, runtime_env=env, max_retries=0, name="ddx_warm_up")
        .remote(dataset, max(1, int(cpus)))
    )
