"""Producing the prerequisites a trial needs (a teacher, expert trajectories, a plugin's …) once, as Ray tasks.

A trial names what it needs (:func:`needed`: its objective's ``requires``, plus what its label
modes require, e.g. the teacher of soft labels) with the options of each (the sweep's top-level
blocks, typed). :func:`ensure` looks every piece up in the artifact store; for each missing piece
the trial driver takes the piece's lease lock and launches one Ray task
(``scheduling_strategy="DEFAULT"``, the spec's evaluation resources, retried by Ray) that
produces the piece on whatever node runs it and publishes it to the storage. Pieces another
trial is producing are waited for, and taken over if that trial dies. What comes back is a
:class:`Prerequisites`: each one's options and :class:`~orchestrator.storage.artifacts.ArtifactRef` s
(storage locations and hashes), which the distillation workers and evaluation tasks turn into
local files and loaded objects with :meth:`Prerequisites.load`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from methods.artifacts import content_key
from methods.datasets import cached_dataset
from methods.datasets.options import DatasetOptions
from methods.evaluation.options import LABEL_MODE_REQUIRES
from methods.prerequisites import Prerequisite, build_prerequisite
from methods.records import Description, Needs, RowFields
from orchestrator.cluster.compute_thread import on_compute_thread
from orchestrator.storage.artifacts import ArtifactRef, ArtifactStore, LeaseLock
from orchestrator.storage.staging import staged

if TYPE_CHECKING:
    import torch


def needed(requires: Iterable[str], label_modes: Iterable[str]) -> list[str]:
    """The prerequisites of an objective that ``requires`` these, evaluated with ``label_modes``."""
    names = list(requires)
    for mode in label_modes:
        names += [p for p in LABEL_MODE_REQUIRES.get(mode, ()) if p not in names]
    return names


@dataclass(frozen=True)
class Prerequisites:
    """Produced prerequisites: each one's options and the artifact of each of its pieces (unit order)."""

    options: Mapping[str, Any] = field(default_factory=dict)
    refs: Mapping[str, tuple[ArtifactRef, ...]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.refs)

    def only(self, names: Iterable[str]) -> Prerequisites:
        """The subset of these prerequisites named ``names`` (those produced)."""
        keep = [n for n in names if n in self.refs]
        return Prerequisites({n: self.options[n] for n in keep}, {n: self.refs[n] for n in keep})

    def build(self, name: str) -> Prerequisite:
        return build_prerequisite(name, self.options[name])

    def load(self, store: ArtifactStore, device: torch.device) -> Needs:
        """Fetch every piece onto this node and load each prerequisite (name → what methods receive)."""
        return {name: self.build(name).load([store.fetch(r) for r in refs], device) for name, refs in self.refs.items()}

    def row_fields(self, store: ArtifactStore) -> RowFields:
        """Result-row columns describing the prerequisites (e.g. the teacher's accuracy)."""
        out: RowFields = {}
        for name, refs in self.refs.items():
            prereq = self.build(name)
            if type(prereq).row_fields is Prerequisite.row_fields:
                continue  # contributes no columns: fetch nothing (expert buffers can be gigabytes)
            paths: list[Path] = [store.fetch(r) for r in refs]
            out.update(prereq.row_fields(paths))
        return out


def produce_piece(
    name: str, options: Any, dataset: DatasetOptions, unit: int, root: str, threads: int, use_gpu: bool
) -> ArtifactRef:
    """Ray task body: produce one piece and publish it to the artifact store at ``root``."""
    import torch

    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
    prereq = build_prerequisite(name, options)
    store = ArtifactStore(root)
    description = prereq.describe(dataset, unit)
    data = cached_dataset(staged(dataset))
    key = content_key(description)
    tmp = store.local_dir / name / f".{key}.{unit}.produce.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        prereq.produce(data, unit, tmp, device)
        return store.publish(name, description, tmp)
    finally:
        tmp.unlink(missing_ok=True)


produce_remote = ray.remote(on_compute_thread(produce_piece))


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float
    retries: int


@dataclass
class _Piece:
    name: str
    unit: int
    description: Description
    lock: LeaseLock
    options: Any
    ref: ArtifactRef | None = None
    task: ray.ObjectRef | None = None


def ensure(
    options: Mapping[str, Any],
    dataset: DatasetOptions,
    store: ArtifactStore,
    resources: Resources,
    poll: float = 1.0,
    on_produced: Callable[[str, int], None] | None = None,
    on_missing: Callable[[dict[str, tuple[int, int]]], None] | None = None,
) -> Prerequisites:
    """Every piece of every prerequisite in ``options`` (name → its options), produced (in parallel)
    where missing.

    Pieces are produced by Ray tasks launched here; a piece whose lock another process holds is
    waited for (and produced here if that lease expires). ``on_missing({name: (missing, pieces)})``
    is called once, after the store was asked and before any task starts, with the prerequisites
    that have pieces missing (not at all when every piece is there: nothing is produced).
    ``on_produced(name, unit)`` is called for every piece a task launched here produced (not for
    pieces found in the store or made by another process). Raises the task's error if a piece
    cannot be produced after Ray's retries.
    """
    pieces: list[_Piece] = []
    for name, opts in options.items():
        prereq = build_prerequisite(name, opts)
        for unit in range(prereq.units()):
            description = prereq.describe(dataset, unit)
            piece = _Piece(name, unit, description, store.lock(name, content_key(description)), opts)
            piece.ref = store.ref(name, description)
            pieces.append(piece)
    missing: dict[str, tuple[int, int]] = {}
    for name in options:
        mine = [p for p in pieces if p.name == name]
        lacking = sum(p.ref is None for p in mine)
        if lacking:
            missing[name] = (lacking, len(mine))
    if missing and on_missing is not None:
        on_missing(missing)
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
                        p.ref = ray.get(task)
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
    refs: dict[str, list[ArtifactRef]] = {name: [] for name in options}
    for p in pieces:
        assert p.ref is not None
        refs[p.name].append(p.ref)
    return Prerequisites(dict(options), {name: tuple(r) for name, r in refs.items()})


__all__ = ["Prerequisites", "Resources", "ensure", "needed", "produce_piece"]
