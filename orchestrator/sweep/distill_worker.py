"""The worker side of a trial's distillation (launched by :mod:`orchestrator.sweep.distill_run`).

What runs where the CPUs/GPUs are: the one-worker streaming task's body and the Train
workers' loop. Imported by those processes only, so that the trial driver (which launches
them) never loads torch or the methods.
"""

from __future__ import annotations

import json
import os
import queue
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from methods.context import DistillContext
from methods.datasets import cached_dataset
from methods.distill.pipeline import run_distillation
from methods.parameterizations import (
    Parameterization,
    Payload,
    from_payload,
    payload_bytes,
    payload_from_bytes,
    synthetic_payload,
)
from orchestrator.cluster import compute_thread, processes
from orchestrator.errors import noting_log
from orchestrator.storage.artifacts import ArtifactStore
from orchestrator.storage.locations import exists, read_bytes, write_bytes_atomic
from orchestrator.storage.results import STOPPED, read_trial_record
from orchestrator.storage.staging import staged
from orchestrator.sweep.distill_job import (
    JOB_KEY,
    OBJECTIVE_FIELDS,
    PREREQUISITE_FIELDS,
    PROGRESS_KEY,
    STOPPED_AT,
    Card,
    DistillJob,
    Metrics,
    Report,
    set_card_location,
    worker_record_location,
)


def load_state(location: str) -> Payload | None:
    return payload_from_bytes(read_bytes(location)) if exists(location) else None


def progress_metrics(info: Mapping[str, Any]) -> Metrics:
    """The distillation loop's progress as the metrics a trial reports to Tune."""
    metrics: Metrics = {
        "phase": "distill",
        "distill_step": int(info["step"]),
        "distill_steps": int(info["total_steps"]),
        "distill_loss": float(info["loss"]),
    }
    if info.get("probe_val_acc") is not None:
        metrics["probe_val_acc"] = float(info["probe_val_acc"])
    return metrics


def record_worker(job: DistillJob, rank: int) -> None:
    """Record where this rank's process runs and logs (:func:`worker_record_location`): when the
    process dies (a crash in gloo, a segfault, the OOM killer) Ray says only that it died; the
    trial then names this log and, when it can read it, its last line."""
    if not job.workers_location:
        return
    try:
        import ray

        node = ray.util.get_node_ip_address()
    except Exception:  # not in a Ray worker (a test, a local run)
        node = None
    info = {
        "rank": rank,
        "hostname": socket.gethostname(),
        "node_ip": node,
        "pid": os.getpid(),
        "log": processes.stream_file(2),  # stderr: tracebacks, a crash's last words, gloo's errors
    }
    write_bytes_atomic(worker_record_location(job.workers_location, rank), json.dumps(info).encode())


class DistillationStopped(Exception):
    """The scheduler stopped the trial: its distillation ends at this step, without a set."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped by the scheduler at step {step}")
        self.step = step


def stop_requested(job: DistillJob, ctx: DistillContext) -> bool:
    """Whether the trial's record says the scheduler stopped it (:data:`DistillJob.stop_record`):
    rank 0 reads it, and every rank gets its answer (one all-reduce), so that all stop at the
    same step. An unreadable record (a storage hiccup) does not stop the distillation."""
    if not job.stop_record:
        return False
    flag = 0.0
    if ctx.is_main:
        try:
            record = read_trial_record(job.stop_record)
        except Exception:  # any storage's error: read again at the next report
            record = None
        flag = float(record is not None and record.get("status") == STOPPED)
    if ctx.distributed:
        flag = float(ctx.all_reduce(torch.tensor([flag], device=ctx.device), op="max").item())
    return flag > 0


@noting_log  # an error carries where this process logs: the trial's failed rows name it
def distill_body(job: DistillJob, report: Report) -> dict[str, float]:
    """Distil on this rank (one process of W); rank 0 checkpoints and writes the final set.

    Before each progress report it asks whether the scheduler has stopped the trial
    (:func:`stop_requested`); if so it ends there and returns ``{STOPPED_AT: step}``, writing no set
    (the last checkpoint stays in storage)."""
    torch.set_num_threads(max(1, job.threads))
    store = ArtifactStore(job.store_root)
    config = job.config
    ctx: DistillContext

    def progress(info: Mapping[str, Any]) -> None:
        if stop_requested(job, ctx):
            raise DistillationStopped(int(info["step"]))
        report(progress_metrics(info))

    ctx = DistillContext.from_environment(seed=config.seed, progress=progress, cache=store)
    record_worker(job, ctx.rank)
    data = cached_dataset(staged(config.dataset))
    needs = job.prerequisites.load(store, ctx.device)
    resume = load_state(job.state_location)

    def on_checkpoint(state: Payload) -> None:
        if ctx.is_main:
            write_bytes_atomic(job.state_location, payload_bytes(state))

    try:
        param, objective, summary = run_distillation(config, data, ctx, needs, resume, on_checkpoint)
    except DistillationStopped as stop:
        return {STOPPED_AT: float(stop.step)}
    summary = {**summary, "resumed_from_step": _resumed_step(resume)}
    if ctx.is_main:
        resolved = objective.row_fields()
        extra = {**summary, **resolved, "world_size": ctx.world_size, OBJECTIVE_FIELDS: resolved}
        # the prerequisites' row columns, read here where their files already are (the trial driver
        # would otherwise download every expert onto its node just to describe them)
        extra[PREREQUISITE_FIELDS] = job.prerequisites.row_fields(store)
        extra["class_names"] = list(data.class_names)
        stats = data.display_stats()  # None for ZCA-whitened data: viewers contrast-stretch instead
        if stats is not None:
            extra.update(mean=list(stats[0]), std=list(stats[1]))  # ddx export / report grids
        if data.zca:
            extra["zca"] = True  # the set's space: ddx evaluate whitens the real data to judge it
        write_set(job.synthetic_location, param, extra)
    return summary


def _resumed_step(resume: Payload | None) -> int:
    """Steps already done by the state the run resumed from (-1: it started from scratch)."""
    return -1 if resume is None else int(resume["done"])


_DONE = object()


def stream_body(job: DistillJob) -> Iterator[Metrics]:
    """Streaming task body: yields progress dicts, then ``{"distill_done": 1, **summary}``.

    The body runs on the process's compute thread (:mod:`orchestrator.cluster.compute_thread`, where
    every ddx task computes) so that its progress callback can feed this generator.
    """
    items: queue.Queue[Any] = queue.Queue()
    future = compute_thread.submit(distill_body, job, items.put)
    future.add_done_callback(lambda _: items.put(_DONE))
    while (item := items.get()) is not _DONE:
        yield dict(item)
    yield {"distill_done": 1, **future.result()}  # raises the body's error, if any


def train_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of the multi-worker path: rank 0 puts its progress on the trial's
    queue (``config[PROGRESS_KEY]``, see :func:`orchestrator.sweep.distill_run.run_train`)."""
    import ray.train  # here: the one-worker task never needs Ray Train (0.6 s of imports)

    job: DistillJob = config[JOB_KEY]
    progress = config.get(PROGRESS_KEY)
    main = ray.train.get_context().get_world_rank() == 0

    def report(info: Metrics) -> None:
        if progress is not None and main:  # every rank reports at the same steps (the loop is in lockstep)
            progress.put_nowait({**info, "trial_key": job.trial_key})  # an unbounded queue: never blocks

    distill_body(job, report)


def set_card(payload: Payload, param: Parameterization | None = None) -> Card:
    """What the trial driver needs to know of a set without loading its tensors (JSON-able):
    its config, its ``extra`` metadata and its row columns (:meth:`Parameterization.describe`
    of ``param``, rebuilt from the payload when not given)."""
    described = (param if param is not None else from_payload(payload)).describe()
    return {"config": payload["config"], "extra": payload.get("extra", {}), "describe": described}


def write_set(location: str, param: Parameterization, extra: Mapping[str, Any]) -> None:
    """Save the set, then its card next to it (a set without a card is described from its tensors)."""
    payload = synthetic_payload(param, extra)
    write_bytes_atomic(location, payload_bytes(payload))
    write_bytes_atomic(set_card_location(location), json.dumps(set_card(payload, param), default=str).encode())


__all__ = [
    "DistillationStopped",
    "distill_body",
    "load_state",
    "set_card",
    "stop_requested",
    "stream_body",
    "train_worker",
    "write_set",
]
