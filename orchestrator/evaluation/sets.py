"""Evaluating distilled sets: the one routine sweeps' trials and ``ddx evaluate`` share.

An :class:`Evaluation` is configured once from an evaluation block (the same block in a sweep
file and in ``ddx evaluate``): the protocol the students train under, which students
(:class:`~orchestrator.evaluation.jobs.StudentPlan`), the real data, what each task reserves,
the prerequisites the label modes need (a soft-label teacher) and whether DD-Ranking's
no-augmentation runs (ARS) are wanted. An :class:`Evaluator` takes sets — their saved bytes in
Ray's object store, their row columns and the rows they already have — launches one task per
missing group of seeds (:mod:`orchestrator.evaluation.tasks`) and hands every finished row,
``failed`` ones included, to a callback as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ray

from methods.datasets.options import DatasetOptions
from methods.evaluation.options import label_source
from methods.evaluation.protocol import Protocol
from orchestrator.evaluation.jobs import EvalJob, StudentPlan, groups, row_key_of, seeds_per_task
from orchestrator.evaluation.tasks import TaskResources, evaluate_remote, failed_result, protocol_columns
from orchestrator.storage.results import Row
from orchestrator.sweep.prerequisites import Prerequisites


@dataclass(frozen=True)
class Evaluation:
    """How every set of a sweep (or of one ``ddx evaluate``) is evaluated.

    ``ars``: also evaluate every set with augmentation off, under the first label mode
    (DD-Ranking's ARS compares the two).
    """

    protocol: Protocol
    students: StudentPlan
    dataset: DatasetOptions
    resources: TaskResources = field(default_factory=TaskResources)
    prerequisites: Prerequisites = field(default_factory=Prerequisites)
    store_root: str | None = None
    ars: bool = False

    def variants(self) -> list[tuple[Protocol, tuple[str, ...]]]:
        """(protocol, label modes) pairs every set is evaluated under."""
        out = [(self.protocol, self.students.label_modes)]
        if self.ars:
            out.append((self.protocol.without_augmentation(), self.students.label_modes[:1]))
        return out


@dataclass
class SetUnderEvaluation:
    """One set being evaluated: its key, its saved file in the object store, its IPC and resolution,
    the columns every row of it carries, its rows (found ``ok`` ones, then each new one), the
    resolutions its students see when the evaluation names none (default: its own), and its own
    labels (``hard``, or ``learned_soft`` when it carries learned soft labels: each row's
    ``label_source`` follows from them and the row's label mode)."""

    key: str
    ref: ray.ObjectRef
    ipc: int
    resolution: int
    columns: Row
    rows: list[Row] = field(default_factory=list)
    resolutions: tuple[int, ...] | None = None
    labels: str = "hard"


OnRow = Callable[[SetUnderEvaluation, EvalJob, Row], None]


class Evaluator:
    """Launches the missing evaluations of sets and collects their rows (see the module docstring)."""

    def __init__(self, evaluation: Evaluation, on_row: OnRow) -> None:
        self.evaluation = evaluation
        self.on_row = on_row
        self._pending: dict[ray.ObjectRef, tuple[SetUnderEvaluation, Protocol, list[EvalJob]]] = {}

    def missing(self, s: SetUnderEvaluation) -> list[tuple[Protocol, EvalJob]]:
        """The evaluations of ``s`` its rows do not hold yet (a row of another protocol does not count)."""
        ev = self.evaluation
        out = []
        for protocol, modes in ev.variants():
            for job in ev.students.jobs(s.resolutions or (s.resolution,), modes):
                name = protocol.name(ev.dataset.name, s.ipc, job.epochs)
                if not any(row_key_of(r) == job.key and r.get("protocol") in (None, name) for r in s.rows):
                    out.append((protocol, job))
        return out

    def submit(self, s: SetUnderEvaluation) -> int:
        """Launch a task per missing group of ``s`` (nothing is awaited); how many evaluations."""
        ev = self.evaluation
        missing = self.missing(s)
        for protocol in dict.fromkeys(p for p, _ in missing):
            for group in groups((job for p, job in missing if p == protocol), seeds_per_task(ev.resources.gpus > 0)):
                ref = evaluate_remote.options(**ev.resources.options()).remote(
                    s.ref, group, ev.dataset, protocol, ev.resources.threads, ev.resources.gpus > 0,
                    ev.prerequisites, ev.store_root,
                )  # fmt: skip
                self._pending[ref] = (s, protocol, group)
        return len(missing)

    @property
    def pending(self) -> int:
        """Tasks launched and not collected yet."""
        return len(self._pending)

    def drain(self) -> None:
        """Wait for every launched task; each of its seeds' rows goes to ``on_row`` as it finishes."""
        while self._pending:
            done, _ = ray.wait(list(self._pending), num_returns=1)
            for ref in done:
                s, protocol, group = self._pending.pop(ref)
                try:
                    results = ray.get(ref)
                except Exception as err:  # the task failed after its retries: a failed row per seed
                    results = [failed_result(err)] * len(group)
                for job, result in zip(group, results, strict=True):
                    cols = protocol_columns(protocol, job, self.evaluation.dataset.name, s.ipc)
                    source = {"label_source": label_source(job.label_mode, s.labels)}
                    row = {**s.columns, **result, **cols, **job.columns(), **source}
                    s.rows.append(row)
                    self.on_row(s, job, row)


__all__ = ["Evaluation", "Evaluator", "OnRow", "SetUnderEvaluation"]
