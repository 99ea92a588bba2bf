"""Distillation of one trial: a streaming Ray task for one worker, a Ray Train run for several.

Both run the same body (:func:`distill_body`): load the (staged) dataset and the trial's
prerequisites (fetched from the artifact store onto this node), resume from the trial's
state in storage if there is one, distil, checkpoint the gathered state to
``<experiment>/train/<trial key>/state.pt`` every ``checkpoint_every`` steps (rank 0 writes,
through :mod:`orchestrator.storage`, so any node can resume it), and finally write the
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

import io
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
import ray.train
import torch
from ray.train.torch import TorchConfig, TorchTrainer

from methods.context import DistillContext
from methods.datasets import DatasetOptions, cached_dataset
from methods.parameterizations import synthetic_payload
from methods.pipeline import run_distillation
from orchestrator import prerequisites
from orchestrator.cache import ArtifactStore, ref_from_dict
from orchestrator.staging import staged_dataset_options
from orchestrator.storage import exists, read_bytes, write_bytes_atomic

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


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_state(location: str) -> dict[str, Any] | None:
    if not exists(location):
        return None
    return torch.load(io.BytesIO(read_bytes(location)), map_location="cpu", weights_only=True)


def progress_metrics(info: dict[str, Any]) -> dict[str, Any]:
    """The distillation loop's progress as the metrics a trial reports to Tune."""
    metrics: dict[str, Any] = {
        "phase": "distill",
        "distill_step": int(info["step"]),
        "distill_steps": int(info["total_steps"]),
        "distill_loss": float(info["loss"]),
    }
    if info.get("probe_val_acc") is not None:
        metrics["probe_val_acc"] = float(info["probe_val_acc"])
    return metrics


def distill_body(job: DistillJob, report: Report) -> dict[str, Any]:
    """Distil on this rank (one process of W); rank 0 checkpoints and writes the final set."""
    torch.set_num_threads(max(1, job.threads))
    store = ArtifactStore(job.store_root)
    ctx = DistillContext.from_environment(
        seed=job.seed, progress=lambda info: report(progress_metrics(info)), cache=store
    )
    data = cached_dataset(DatasetOptions(**staged_dataset_options(job.dataset)))
    refs = {name: [ref_from_dict(r) for r in pieces] for name, pieces in job.needs.items()}
    needs = prerequisites.load(refs, job.blocks, store, ctx.device)
    resume = load_state(job.state_location)

    def on_checkpoint(state: dict[str, Any]) -> None:
        if ctx.is_main:
            write_bytes_atomic(job.state_location, _torch_bytes(state))

    param, objective, summary = run_distillation(job.hp, data, ctx, needs, resume, on_checkpoint)
    summary = {**summary, "resumed_from_step": _resumed_step(resume)}
    if ctx.is_main:
        extra = {**summary, **objective.row_fields(), "world_size": ctx.world_size, **job.extra}
        # the prerequisites' row columns, read here where their files already are (the trial driver
        # would otherwise download every expert onto its node just to describe them)
        extra[PREREQUISITE_FIELDS] = prerequisites.row_fields(refs, job.blocks, store)
        extra["class_names"] = list(data.class_names)
        stats = data.display_stats()  # None for ZCA-whitened data: viewers contrast-stretch instead
        if stats is not None:
            extra.update(mean=list(stats[0]), std=list(stats[1]))  # ddx export / report grids
        write_bytes_atomic(job.synthetic_location, _torch_bytes(synthetic_payload(param, extra)))
    return summary


def _resumed_step(resume: dict[str, Any] | None) -> int:
    """Steps already done by the state the run resumed from (-1: it started from scratch)."""
    return -1 if resume is None else int(resume["done"])


_DONE = object()


def distill_stream(job_data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Streaming task body: yields progress dicts, then ``{"distill_done": 1, **summary}``.

    The body runs in a thread so that its progress callback can feed this generator.
    """
    job = DistillJob(**job_data)
    items: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["summary"] = distill_body(job, items.put)
        except BaseException as err:  # handed to the consumer below
            outcome["error"] = err
        finally:
            items.put(_DONE)

    worker = threading.Thread(target=work, name="ddx-distill", daemon=True)
    worker.start()
    while (item := items.get()) is not _DONE:
        yield dict(item)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    yield {"distill_done": 1, **outcome["summary"]}


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


def train_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of the multi-worker path."""
    job = DistillJob(**config)

    def report(info: dict[str, Any]) -> None:
        ray.train.report(dict(info))  # every rank reports at the same steps (the loop is in lockstep)

    summary = distill_body(job, report)
    # not "done": in a Tune result that key ends the trial (this report reaches Tune)
    ray.train.report({"phase": "distill", "distill_done": 1, **summary})


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
    from ray.tune.integration.ray_train import TuneReportCallback

    from orchestrator.storage import filesystem, is_uri

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


__all__ = ["DistillJob", "distill_body", "distill_stream", "load_state", "run_train", "stream_distillation"]
