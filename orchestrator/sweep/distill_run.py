"""Launching one trial's distillation: a streaming Ray task for one worker, a Ray Train run for several.

The trial driver's side; it imports neither torch nor the methods. Both paths run the same body
(:func:`orchestrator.sweep.distill_worker.distill_body`, imported only where it runs): load the
(staged) dataset and the trial's prerequisites (fetched from the artifact store onto this node),
resume from the trial's state in storage if there is one, distil, checkpoint the gathered state
to ``<experiment>/train/<trial key>/state.pt`` every ``checkpoint_every`` steps (rank 0 writes,
through :mod:`orchestrator.storage.locations`, so any node can resume it), and finally write the
synthetic set to ``<experiment>/synthetic/<trial key>.pt``. Progress (step, loss, probe accuracy)
is handed to a ``report`` function at every ``progress_every`` steps.

* **One worker** (``resources.distill_workers: 1``): a Ray *streaming generator* task that
  reserves the worker's CPUs/GPUs, runs the body and yields its progress to the trial. It runs in
  a pooled worker process, so a trial pays no process start, no placement group and no
  controller: the fixed cost per trial is a task submission. If its node dies, Ray runs the task
  again elsewhere and the body resumes from the last state in storage.
* **Several workers**: a Ray Train ``TorchTrainer`` (gloo on CPU, nccl on GPU) named after the
  trial key; each worker runs the body on its rank; ``ray.train.report`` carries progress to Tune
  (``TuneReportCallback``); ``FailureConfig(max_failures)`` restarts the worker group after a
  failure and the body resumes from the state in storage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import ray

from orchestrator.sweep.distill_job import JOB_KEY, DistillJob


def distill_stream(job: DistillJob) -> Iterator[dict[str, Any]]:
    """The streaming task: :func:`orchestrator.sweep.distill_worker.stream_body`, imported where it runs."""
    from orchestrator.sweep.distill_worker import stream_body

    yield from stream_body(job)


distill_stream_remote = ray.remote(num_returns="streaming")(distill_stream)


def stream_distillation(job: DistillJob, cpus: float, gpus: float, retries: int) -> Iterator[dict[str, Any]]:
    """Launch the one-worker distillation task and yield what it yields (the last item has ``distill_done``)."""
    job = dataclasses.replace(job, threads=max(1, int(cpus)))
    gen = distill_stream_remote.options(
        num_cpus=cpus,
        num_gpus=gpus,
        max_retries=retries,  # node or process loss: run again, resuming from the saved state
        retry_exceptions=False,  # an error of the method (e.g. a diverged loss) is not retried
        scheduling_strategy="DEFAULT",
    ).remote(job)
    for ref in gen:
        yield ray.get(ref)


def run_train(
    job: DistillJob,
    run_name: str,
    storage_path: str,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    max_failures: int = 2,
    report_to_tune: bool = True,
) -> dict[str, Any]:
    """Fit a ``TorchTrainer`` of ``workers`` workers for ``job``; its progress reaches Tune."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from orchestrator.storage.locations import filesystem, is_uri
    from orchestrator.sweep.distill_worker import train_worker

    use_gpu = gpus_per_worker > 0
    resources: dict[str, float] = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = gpus_per_worker
    job = dataclasses.replace(job, threads=max(1, int(cpus_per_worker)))
    fs, path = filesystem(storage_path)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={JOB_KEY: job},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=path,
            storage_filesystem=fs if is_uri(storage_path) else None,
            failure_config=ray.train.FailureConfig(max_failures=max_failures, controller_failure_limit=2),
            callbacks=[TuneReportCallback()] if report_to_tune else [],
        ),
    )
    result = trainer.fit()
    return dict(result.metrics or {})


__all__ = ["run_train", "stream_distillation"]
