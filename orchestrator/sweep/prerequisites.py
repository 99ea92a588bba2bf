"""Producing the prerequisites objectives declare (teacher, experts, …) once, as parallel Ray tasks.

A trial names what it needs (:func:`needed`: its objective's ``requires``, plus the teacher
when students learn from soft labels). :func:`ensure` looks every piece up in the artifact
store; for each missing piece the trial driver takes the piece's lease lock and launches one
Ray task (``scheduling_strategy="DEFAULT"``, the spec's evaluation resources, retried by Ray)
that produces the piece on whatever node runs it and publishes it to the storage. Pieces
another trial is producing are waited for, and taken over if that trial dies. What comes
back are :class:`~orchestrator.storage.artifacts.ArtifactRef` s — storage locations and hashes — which
the Train workers and evaluation tasks turn into local files with :func:`load`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from methods import catalog
from methods.artifacts import content_key
from methods.datasets import DatasetOptions, cached_dataset
from methods.evaluation.options import LABEL_MODE_REQUIRES
from methods.options import take
from methods.prerequisites import PREREQUISITES, Prerequisite
from orchestrator.cluster.compute_thread import on_compute_thread
from orchestrator.storage.artifacts import ArtifactRef, ArtifactStore, LeaseLock
from orchestrator.storage.staging import staged_dataset_options

if TYPE_CHECKING:
    import torch


def needed(objective: str, label_modes: list[str]) -> list[str]:
    """The prerequisites a trial of ``objective`` evaluated with ``label_modes`` needs."""
    names = list(catalog.requires(objective))  # from the catalog: a trial driver need not import the objective
    for mode in label_modes:
        names += [p for p in LABEL_MODE_REQUIRES.get(mode, ()) if p not in names]
    return names


def options_for(name: str, block: Any) -> Any:
    """The prerequisite's ``Options`` from the sweep's top-level block of that name (None: defaults)."""
    data = block.model_dump() if hasattr(block, "model_dump") else dict(block or {})
    return take(catalog.options_class("prerequisite", name), data)


def build(name: str, options: Any) -> Prerequisite:
    return PREREQUISITES.get(name)(options)


def produce_piece(
    name: str, options: dict[str, Any], dataset: dict[str, Any], unit: int, root: str, threads: int, use_gpu: bool
) -> dict[str, Any]:
    """Ray task body: produce one piece and publish it to the artifact store at ``root``."""
    import torch

    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
    prereq = build(name, take(catalog.options_class("prerequisite", name), options))
    store = ArtifactStore(root)
    description = prereq.describe(dataset, unit)
    data = cached_dataset(DatasetOptions(**staged_dataset_options(dataset)))
    key = content_key(description)
    tmp = store.local_dir / name / f".{key}.{unit}.produce.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        prereq.produce(data, unit, tmp, device)
        return asdict(store.publish(name, description, tmp))
    finally:
        tmp.unlink(missing_ok=True)


produce_remote = ray.remote(on_compute_thread(produce_piece))


@dataclass
class Resources:
    cpus: float
    gpus: float
    retries: int


@dataclass
class _Piece:
    name: str
    unit: int
    description: dict[str, Any]
    lock: LeaseLock
    ref: ArtifactRef | None = None
    task: ray.ObjectRef | None = None
    options: dict[str, Any] = field(default_factory=dict)


def ensure(
    names: list[str],
    blocks: dict[str, Any],
    dataset: dict[str, Any],
    store: ArtifactStore,
    resources: Resources,
    poll: float = 1.0,
    on_produced: Callable[[str, int], None] | None = None,
) -> dict[str, list[ArtifactRef]]:
    """Every piece of every prerequisite in ``names``, produced (in parallel) where missing.

    ``blocks`` maps a prerequisite name to its sweep block (or None for defaults). Returns
    ``name → [ref per unit]``. Pieces are produced by Ray tasks launched here; a piece whose
    lock another process holds is waited for (and produced here if that lease expires).
    ``on_produced(name, unit)`` is called for every piece a task launched here produced (not
    for pieces found in the store or made by another process). Raises the task's error if a
    piece cannot be produced after Ray's retries.
    """
    pieces: list[_Piece] = []
    for name in names:
        options = options_for(name, blocks.get(name))
        prereq = build(name, options)
        for unit in range(prereq.units()):
            description = prereq.describe(dataset, unit)
            key = content_key(description)
            piece = _Piece(name, unit, description, store.lock(name, key), options=asdict(options))
            piece.ref = store.ref(name, description)
            pieces.append(piece)
    task_options = {
        "num_cpus": resources.cpus,
        "num_gpus": resources.gpus,
        "scheduling_strategy": "DEFAULT",
        "max_retries": resources.retries,
        "retry_exceptions": True,
    }
    threads = max(1, int(resources.cpus))
    try:
        while True:
            waiting = [p for p in pieces if p.ref is None and p.task is None]
            for p in waiting:
                p.ref = store.ref(p.name, p.description)
                if p.ref is None and p.lock.try_acquire():
                    p.ref = store.ref(p.name, p.description)  # finished just before we took the lock
                    if p.ref is not None:
                        p.lock.release()
                        continue
                    p.task = produce_remote.options(**task_options).remote(
                        p.name, p.options, dataset, p.unit, store.root, threads, resources.gpus > 0
                    )
            running = {p.task: p for p in pieces if p.task is not None}
            if not running and all(p.ref is not None for p in pieces):
                break
            if running:
                done, _ = ray.wait(list(running), num_returns=1, timeout=poll)
                for task in done:
                    p = running[task]
                    p.task = None
                    try:
                        p.ref = ArtifactRef(**ray.get(task))
                    finally:
                        p.lock.release()
                    if on_produced is not None:
                        on_produced(p.name, p.unit)
            else:
                time.sleep(poll)
    finally:
        for p in pieces:
            if p.task is not None:
                ray.cancel(p.task, force=True)
                p.lock.release()
    out: dict[str, list[ArtifactRef]] = {name: [] for name in names}
    for p in pieces:
        assert p.ref is not None
        out[p.name].append(p.ref)
    return out


def load(
    refs: dict[str, list[ArtifactRef]], blocks: dict[str, Any], store: ArtifactStore, device: torch.device
) -> dict[str, Any]:
    """Fetch every piece onto this node and load each prerequisite for the objective."""
    out = {}
    for name, pieces in refs.items():
        prereq = build(name, options_for(name, blocks.get(name)))
        out[name] = prereq.load([store.fetch(r) for r in pieces], device)
    return out


def row_fields(refs: dict[str, list[ArtifactRef]], blocks: dict[str, Any], store: ArtifactStore) -> dict[str, Any]:
    """Result-row columns describing the prerequisites (e.g. the teacher's accuracy)."""
    out: dict[str, Any] = {}
    for name, pieces in refs.items():
        prereq = build(name, options_for(name, blocks.get(name)))
        if type(prereq).row_fields is Prerequisite.row_fields:
            continue  # contributes no columns: fetch nothing (expert buffers can be gigabytes)
        paths: list[Path] = [store.fetch(r) for r in pieces]
        out.update(prereq.row_fields(paths))
    return out


__all__ = ["Resources", "ensure", "load", "needed", "options_for", "produce_piece", "row_fields"]
