"""The evaluation task: train the students of one group (one set, network, resolution and label mode,
several seeds) on the decoded set, and the row columns each seed gets.

Tasks are launched from inside a Tune trial with ``scheduling_strategy="DEFAULT"`` (else the
trial's placement group would capture them), reserve the evaluation's CPUs/GPUs (fractions
allowed, so several small students share a GPU) and are retried by Ray on failure; a group
that still fails becomes one ``failed`` row per seed carrying its error — never a silently
missing one (:mod:`orchestrator.evaluation.sets` launches and collects them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import ray

from methods.datasets.options import DatasetOptions
from methods.evaluation.options import LABEL_MODE_REQUIRES, LEARNED_LABELS_KEY, LEARNED_SOFT, label_source
from methods.evaluation.protocol import Protocol, settings_json
from methods.records import Needs
from orchestrator.cluster.compute_thread import on_compute_thread
from orchestrator.errors import error_line, failed_cause, noted_log, noting_log
from orchestrator.evaluation.jobs import EvalJob
from orchestrator.provenance import node_columns
from orchestrator.storage.artifacts import ArtifactStore
from orchestrator.storage.results import Row
from orchestrator.storage.staging import staged
from orchestrator.sweep.prerequisites import Prerequisites


@dataclass(frozen=True)
class TaskResources:
    """What one evaluation (or reference) task reserves, and Ray's retries of it."""

    cpus: float = 1.0
    gpus: float = 0.0
    retries: int = 1

    def options(self) -> dict[str, Any]:
        """Ray options: the reservation, and retries of a lost worker and of an exception alike."""
        return {
            "num_cpus": self.cpus,
            "num_gpus": self.gpus,
            "scheduling_strategy": "DEFAULT",
            "max_retries": self.retries,
            "retry_exceptions": True,
        }

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))


def protocol_columns(protocol: Protocol, job: EvalJob, dataset: str | None, ipc: int | None) -> Row:
    """The row's ``protocol`` (named from the settings, for this dataset, IPC and the network's own
    epochs) and ``eval_settings`` (the student's effective settings as JSON) — docs/evaluation.md."""
    try:
        student = protocol.settings(job.label_mode, dataset, ipc, job.epochs)
    except ValueError:  # settings that cannot train a student: the row fails; say so in its protocol
        return {"protocol": None, "eval_settings": None}
    return {"protocol": protocol.name(dataset, ipc, job.epochs), "eval_settings": settings_json(student)}


def evaluate_group(
    set_bytes: bytes,
    jobs: list[EvalJob],
    dataset: DatasetOptions,
    protocol: Protocol,
    threads: int,
    use_gpu: bool,
    prerequisites: Prerequisites | None = None,
    store_root: str | None = None,
) -> list[Row]:
    """Train the students of one group (``jobs``: one network, resolution and label mode, one job
    per seed) on the decoded set; return each seed's measured columns, in ``jobs`` order.

    A label mode that requires prerequisites (soft labels: a teacher) loads them from
    ``prerequisites``, fetched from the artifact store at ``store_root`` onto this node (never
    produced here). ``set_bytes`` are the saved set's file (:func:`methods.parameterizations.payload_bytes`).
    A set that carries learned soft labels (``extra[LEARNED_LABELS_KEY]``) trains on them where the
    label mode uses the set's own labels (:func:`methods.evaluation.options.label_source`).
    """
    import torch

    from methods.datasets import cached_eval_data
    from methods.evaluation.student import learned_lr
    from methods.evaluation.student_batch import train_students
    from methods.parameterizations import from_payload, payload_from_bytes

    first = jobs[0]
    assert all(j.group == first.group for j in jobs), "a group's jobs differ only in their seed"
    payload = payload_from_bytes(set_bytes)
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
    start = time.perf_counter()
    param = from_payload(payload)
    data = cached_eval_data(staged(dataset)).at(first.resolution)
    with torch.no_grad():
        images = param.decode(first.resolution).detach()
    ipc = int(param.config.shape.ipc)
    settings = protocol.settings(first.label_mode, dataset.name, ipc, first.epochs)
    required = LABEL_MODE_REQUIRES.get(first.label_mode, ())
    loaded: Needs = {}
    if required:
        given = prerequisites.only(required) if prerequisites is not None else Prerequisites()
        if any(n not in given.refs for n in required) or store_root is None:
            raise ValueError(f"label_mode {first.label_mode!r} needs {', '.join(required)}, but none was supplied")
        loaded = given.load(ArtifactStore(store_root), device)
    soft = payload.get("extra", {}).get(LEARNED_LABELS_KEY)
    own = LEARNED_SOFT if soft is not None else "hard"
    labels = soft if label_source(first.label_mode, own) == LEARNED_SOFT else param.labels.clone()
    outcomes = train_students(
        images, labels, data, first.arch, [j.seed for j in jobs], settings, device,
        set_lr=learned_lr(payload.get("extra", {})), needs=loaded,
    )  # fmt: skip
    seconds = (time.perf_counter() - start) / len(jobs)
    where = {
        **node_columns(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "resize_mode": "none" if first.resolution == param.config.shape.resolution else param.resize_mode,
    }
    return [
        {
            **where,
            "status": "ok",
            "error": None,
            "error_log": None,
            "val_acc": out.val_acc,
            "test_acc": out.test_acc,
            "max_over_test": out.max_over_test,
            "epochs": out.epochs,
            "eval_lr": out.lr,  # the student's (initial) learning rate: TM's learned α under lr_from_set
            "eval_seconds": seconds,  # the group's time, shared by its seeds
            "batched": out.batched,
            "curve": json.dumps(out.curve),
        }
        for out in outcomes
    ]


#: the task: its errors carry where its worker logged (:func:`orchestrator.errors.noting_log`)
evaluate_remote = ray.remote(on_compute_thread(noting_log(evaluate_group)))


def failed_result(error: BaseException) -> Row:
    """The measured columns of an evaluation that failed (after Ray's retries): its error line — of a
    Ray task's, the worker's own exception (``ValueError: …``), not Ray's wrapper — and where the
    worker that raised it logged (``error_log``: ``node:path``; None when unknown, e.g. its process died)."""
    if failed_cause(error)[0] is not error:  # Ray's wrapper of the worker's error
        line = error_line(error)
    else:
        text = str(error).strip().splitlines()
        line = (text[-1] if text else type(error).__name__)[:2000]
    return {
        "status": "failed",
        "error": line,
        "error_log": noted_log(error),
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
        "batched": None,
        "curve": None,
    }


__all__ = ["Row", "TaskResources", "evaluate_group", "evaluate_remote", "failed_result", "protocol_columns"]
