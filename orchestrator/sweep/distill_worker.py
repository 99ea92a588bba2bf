"""The worker side of a trial's distillation (launched by :mod:`orchestrator.sweep.distill_run`).

What runs where the CPUs/GPUs are: the one-worker streaming task's body and the Train
workers' loop. Imported by those processes only, so that the trial driver (which launches
them) never loads torch or the methods.
"""

from __future__ import annotations

import json
import queue
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
from orchestrator.cluster import compute_thread
from orchestrator.storage.artifacts import ArtifactStore
from orchestrator.storage.locations import exists, read_bytes, write_bytes_atomic
from orchestrator.storage.staging import staged
from orchestrator.sweep.distill_job import (
    JOB_KEY,
    OBJECTIVE_FIELDS,
    PREREQUISITE_FIELDS,
    Card,
    DistillJob,
    Metrics,
    Report,
    set_card_location,
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


def distill_body(job: DistillJob, report: Report) -> dict[str, float]:
    """Distil on this rank (one process of W); rank 0 checkpoints and writes the final set."""
    torch.set_num_threads(max(1, job.threads))
    store = ArtifactStore(job.store_root)
    config = job.config
    ctx = DistillContext.from_environment(
        seed=config.seed, progress=lambda info: report(progress_metrics(info)), cache=store
    )
    data = cached_dataset(staged(config.dataset))
    needs = job.prerequisites.load(store, ctx.device)
    resume = load_state(job.state_location)

    def on_checkpoint(state: Payload) -> None:
        if ctx.is_main:
            write_bytes_atomic(job.state_location, payload_bytes(state))

    param, objective, summary = run_distillation(config, data, ctx, needs, resume, on_checkpoint)
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
    """``train_loop_per_worker`` of the multi-worker path."""
    import ray.train  # here: the one-worker task never needs Ray Train (0.6 s of imports)

    job: DistillJob = config[JOB_KEY]

    def report(info: Metrics) -> None:
        ray.train.report(dict(info))  # every rank reports at the same steps (the loop is in lockstep)

    summary = distill_body(job, report)
    # not "done": in a Tune result that key ends the trial (this report reaches Tune)
    ray.train.report({"phase": "distill", "distill_done": 1, **summary})


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


__all__ = ["distill_body", "load_state", "set_card", "stream_body", "train_worker", "write_set"]
