"""Distillation of one trial: a streaming Ray task for one worker, a Ray Train run for several.

This module is the trial driver's side (what to run, and launching it); it imports neither
torch nor the methods. Both paths run the same body (:func:`orchestrator.sweep.distill_worker.distill_body`,
imported only where it runs): load the (staged) dataset and the trial's
prerequisites (fetched from the artifact store onto this node), resume from the trial's
state in storage if there is one, distil, checkpoint the gathered state to
``<experiment>/train/<trial key>/state.pt`` every ``checkpoint_every`` steps (rank 0 writes,
through :mod:`orchestrator.storage.locations`, so any node can resume it), and finally write the
synthetic set to ``<experiment>/synthetic/<trial key>.pt``. Progress (step, loss, probe
accuracy) is handed to a ``report`` function at every ``progress_every`` steps.

* **One worker** (``resources.distill_workers: 1``): a Ray *streaming generator* task that
  reserves the worker's CPUs/GPUs, runs the body and yields its progress to the trial. It
  runs in a pooled worker process, so a trial pays no process start, no placement group and
  no controller: the fixed cost per trial is a task submission. If its node dies, Ray runs
  the task again elsewhere and the body resumes from the last state in storage.
* **Several workers**: a Ray Train ``TorchTrainer`` (gloo on CPU, nccl on GPU) named after
  the trial key; each worker runs the body on its rank; ``ray.train.report`` carries progress
  to Tune (``TuneReportCallback``); ``FailureConfig(max_failures)`` restarts the worker group
  after a failure and the body resumes from the state in storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import ray

from orchestrator.storage.locations import add_suffix

Report = Callable[[dict[str, Any]], None]


@dataclass
class DistillJob:
    """Everything a distillation worker needs (plain data: it crosses processes and nodes)."""

    dataset: dict[str, Any]
    hp: dict[str, Any]
    seed: int
    store_root: str  # the artifact store (``<storage>/cache``)
    state_location: str  # resumable state, rewritten at every checkpoint
    synthetic_location: str  # the finished set
    needs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # prerequisite refs (as dicts)
    blocks: dict[str, Any] = field(default_factory=dict)  # the sweep's prerequisite blocks
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


#: key of the synthetic set's ``extra`` holding the prerequisites' result-row columns
PREREQUISITE_FIELDS = "prerequisite_fields"


def set_card_location(synthetic_location: str) -> str:
    """Where the set's card (:func:`orchestrator.sweep.distill_worker.set_card`) lies: next to the set."""
    return add_suffix(synthetic_location, ".card.json")  # a URI's query string stays at its end


def distill_stream(job_data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The streaming task: :func:`orchestrator.sweep.distill_worker.stream_body`, imported where it runs."""
    from orchestrator.sweep.distill_worker import stream_body

    yield from stream_body(job_data)


distill_stream_remote = ray.remote(num_returns="streaming")(distill_stream)


def stream_distillation(job: DistillJob, cpus: float, gpus: float, retries: int) -> Iterator[dict[str, Any]]:
    """Launch the one-worker distillation task and yield what it yields (the last item has ``distill_done``)."""
    job.threads = max(1, int(cpus))
    gen = distill_stream_remote.options(
        num_cpus=cpus,
        num_gpus=gpus,
        max_retries=retries,  # node or process loss: run again, resuming from the saved state
        retry_exceptions=False,  # an error of the method (e.g. a diverged loss) is not retried
        scheduling_strategy="DEFAULT",
    ).remote(asdict(job))
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
    job.threads = max(1, int(cpus_per_worker))
    fs, path = filesystem(storage_path)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=asdict(job),
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


__all__ = ["PREREQUISITE_FIELDS", "DistillJob", "run_train", "set_card_location", "stream_distillation"]
