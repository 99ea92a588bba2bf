"""Evaluation fan-out: one Ray task per (architecture × resolution × seed × label mode).

Tasks are launched from inside a Tune trial with ``scheduling_strategy="DEFAULT"`` (else
the trial's placement group would capture them), reserve the spec's CPUs/GPUs (fractions
allowed, so several small students share a GPU), are retried by Ray on failure, and a task
that still fails becomes a ``failed`` row carrying its error — never a silently missing one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import ray

from methods.datasets.options import DatasetOptions
from methods.evaluation.options import LABEL_MODE_REQUIRES, EvalSettings
from methods.evaluation.presets import protocol_name, settings_json
from methods.evaluation.presets import student_settings as regime_settings
from orchestrator.cluster.compute_thread import on_compute_thread
from orchestrator.evaluation.jobs import EvalJob, plan_jobs, row_key_of
from orchestrator.provenance import node_columns
from orchestrator.storage.artifacts import ArtifactStore
from orchestrator.storage.staging import staged
from orchestrator.sweep.prerequisites import Prerequisites


def student_settings(
    settings: dict[str, Any],
    label_mode: str,
    dataset: str | None = None,
    ipc: int | None = None,
    arch: str | None = None,
) -> EvalSettings:
    """The student training settings of one evaluation: the spec's ``evaluation`` settings
    (:func:`orchestrator.sweep.trial.eval_settings`; preset + overrides or every value) with the job's
    label mode (:func:`methods.evaluation.presets.student_settings`: hard labels train without CutMix/Mixup),
    and ``arch_epochs[arch]`` instead of ``epochs`` when the spec sizes that network separately."""
    return regime_settings(settings_values(settings, arch), label_mode, dataset, ipc)


_SETTINGS_KEYS = {f.name for f in dataclasses.fields(EvalSettings)}


def settings_values(settings: dict[str, Any], arch: str | None = None) -> dict[str, Any]:
    """The entries of an ``evaluation`` block that are :class:`EvalSettings` fields (``preset``
    included); ``epochs`` is ``arch_epochs[arch]`` where the block gives ``arch`` its own."""
    values = {k: v for k, v in settings.items() if k in _SETTINGS_KEYS}
    per_arch = settings.get("arch_epochs") or {}
    if arch is not None and arch in per_arch:
        values["epochs"] = per_arch[arch]
    return values


def protocol_columns(
    settings: dict[str, Any], label_mode: str, dataset: str | None, ipc: int | None, arch: str | None = None
) -> dict[str, Any]:
    """The row's ``protocol`` (named from the evaluation settings, for this dataset and IPC) and
    ``eval_settings`` (the student's effective settings as JSON) — see docs/evaluation.md."""
    try:
        student = student_settings(settings, label_mode, dataset, ipc, arch)
    except ValueError:  # settings that cannot train a student: the row fails; say so in its protocol
        return {"protocol": None, "eval_settings": None}
    return {
        "protocol": protocol_name(settings_values(settings, arch), dataset, ipc),
        "eval_settings": settings_json(student),
    }


def evaluate_job(
    set_bytes: bytes,
    job: EvalJob,
    dataset: DatasetOptions,
    settings: dict[str, Any],
    threads: int,
    use_gpu: bool,
    prerequisites: Prerequisites | None = None,
    store_root: str | None = None,
) -> dict[str, Any]:
    """Train one student on the decoded synthetic set; return the row's measured columns.

    A label mode that requires prerequisites (``soft``: the teacher) loads them from
    ``prerequisites``, fetched from the artifact store at ``store_root`` onto this node (never
    produced here). ``set_bytes`` are the saved set's file (:func:`methods.parameterizations.payload_bytes`).
    """
    import torch

    from methods.datasets import cached_eval_data
    from methods.evaluation.student import learned_lr, train_student
    from methods.parameterizations import from_payload, payload_from_bytes

    payload = payload_from_bytes(set_bytes)
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
    start = time.perf_counter()
    param = from_payload(payload)
    distill_res = param.config.shape.resolution
    data = cached_eval_data(staged(dataset)).at(job.resolution)
    with torch.no_grad():
        images = param.decode(job.resolution).detach()
    ipc = int(param.config.shape.ipc)
    s = student_settings(settings, job.label_mode, dataset.name, ipc, job.requested or job.arch)
    required = LABEL_MODE_REQUIRES.get(job.label_mode, ())
    loaded: dict[str, Any] = {}
    if required:
        given = prerequisites.only(required) if prerequisites is not None else Prerequisites()
        missing = [n for n in required if n not in given.refs]
        if missing or store_root is None:
            raise ValueError(f"label_mode {job.label_mode!r} needs {', '.join(required)}, but none was supplied")
        loaded = given.load(ArtifactStore(store_root), device)
    out = train_student(
        images, param.labels.clone(), data, job.arch, job.seed, s, device,
        teacher=loaded.get("teacher"), set_lr=learned_lr(payload.get("extra", {})),
    )  # fmt: skip
    return {
        **node_columns(),
        "status": "ok",
        "error": None,
        "val_acc": out.val_acc,
        "test_acc": out.test_acc,
        "max_over_test": out.max_over_test,
        "epochs": out.epochs,
        "eval_lr": out.lr,  # the student's (initial) learning rate: TM's learned α under lr_from_set
        "eval_seconds": time.perf_counter() - start,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "resize_mode": "none" if job.resolution == distill_res else param.resize_mode,
        "curve": json.dumps(out.curve),
    }


evaluate_remote = ray.remote(on_compute_thread(evaluate_job))


def failed_result(job: EvalJob, error: BaseException) -> dict[str, Any]:
    text = str(error).strip().splitlines()
    return {
        "status": "failed",
        "error": (text[-1] if text else type(error).__name__)[:2000],
        "val_acc": float("nan"),
        "test_acc": float("nan"),
        "max_over_test": None,
        "epochs": None,
        "eval_lr": None,
        "node_id": None,
        "hostname": None,
        "eval_seconds": None,
        "device": None,
        "resize_mode": None,
        "curve": None,
    }


def task_options(cpus: float, gpus: float, retries: int) -> dict[str, Any]:
    """Ray options of one evaluation or reference task: what it reserves, and Ray's retries (of a
    lost worker and of an exception alike)."""
    return {
        "num_cpus": cpus,
        "num_gpus": gpus,
        "scheduling_strategy": "DEFAULT",
        "max_retries": retries,
        "retry_exceptions": True,
    }


def submit_evaluations(
    set_ref: ray.ObjectRef,
    jobs: list[EvalJob],
    dataset: DatasetOptions,
    settings: dict[str, Any],
    cpus: float,
    gpus: float,
    retries: int,
    prerequisites: Prerequisites | None = None,
    store_root: str | None = None,
) -> dict[ray.ObjectRef, EvalJob]:
    """Launch one Ray task per job (nothing is awaited); returns task → job."""
    options = task_options(cpus, gpus, retries)
    threads = max(1, int(cpus))
    return {
        evaluate_remote.options(**options).remote(
            set_ref, job, dataset, settings, threads, gpus > 0, prerequisites, store_root
        ): job
        for job in jobs
    }


def wait_one(
    pending: dict[ray.ObjectRef, Any], job_of: Callable[[Any], EvalJob] = lambda j: j
) -> list[tuple[Any, dict]]:
    """Wait for at least one task of ``pending``; pop and return ``(value, result)`` for each finished
    one, a task that failed after its retries giving a ``failed`` result (never a missing row)."""
    done, _ = ray.wait(list(pending), num_returns=1)
    out = []
    for ref in done:
        value = pending.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as err:  # the task failed after its retries: record it
            result = failed_result(job_of(value), err)
        out.append((value, result))
    return out


def run_evaluations(
    set_ref: ray.ObjectRef,
    jobs: list[EvalJob],
    dataset: DatasetOptions,
    settings: dict[str, Any],
    cpus: float,
    gpus: float,
    retries: int,
    on_result: Callable[[EvalJob, dict[str, Any]], None],
    prerequisites: Prerequisites | None = None,
    store_root: str | None = None,
    ipc: int | None = None,
) -> None:
    """Launch every job, and hand each result (or failure) to ``on_result`` as it completes.

    ``prerequisites``: what the label modes require (the teacher of ``soft`` jobs), fetched by
    each task from the artifact store at ``store_root``. Every result carries
    :func:`protocol_columns` (``ipc``: the set's, for presets whose batch size follows it).
    """
    pending = submit_evaluations(set_ref, jobs, dataset, settings, cpus, gpus, retries, prerequisites, store_root)
    while pending:
        for job, result in wait_one(pending):
            cols = protocol_columns(settings, job.label_mode, dataset.name, ipc, job.requested or job.arch)
            on_result(job, {**result, **cols})


__all__ = [
    "EvalJob",
    "evaluate_job",
    "plan_jobs",
    "protocol_columns",
    "row_key_of",
    "run_evaluations",
    "student_settings",
    "submit_evaluations",
    "wait_one",
]
