"""What one trial's distillation is given: a :class:`DistillJob` (typed; it crosses processes and nodes).

The trial driver fills it (:mod:`orchestrator.sweep.trial`), :mod:`orchestrator.sweep.distill_run`
launches it, :mod:`orchestrator.sweep.distill_worker` runs it where the CPUs/GPUs are. Pure data:
no Ray, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from methods.distill.trial import TrialConfig
from methods.records import JsonObject
from orchestrator.storage.locations import add_suffix, join
from orchestrator.sweep.prerequisites import Prerequisites

#: what a trial reports to Tune: its phase, the distillation's step, loss and probe accuracy, its rows' summary
Metrics = JsonObject
Report = Callable[[Metrics], None]
#: what the trial driver knows of a set without loading it: its config, ``extra`` metadata and row columns
Card = JsonObject

#: key of the synthetic set's ``extra`` holding the prerequisites' result-row columns
PREREQUISITE_FIELDS = "prerequisite_fields"
#: key of the synthetic set's ``extra`` holding the objective's row fields (what it resolved)
OBJECTIVE_FIELDS = "objective_fields"
#: the key under which Ray Train workers receive their job (``train_loop_config``)
JOB_KEY = "job"
#: the key under which they receive the queue rank 0 puts its progress on (None: not reported)
PROGRESS_KEY = "progress"
#: the distillation step at which the scheduler stopped a trial: the key of a distillation's summary
#: (it ended there, without a set), of the trial's last result to Tune and of its record (``rung``)
STOPPED_AT = "stopped_at_step"


@dataclass(frozen=True)
class DistillJob:
    """Everything a distillation worker needs: the trial's configuration, where its prerequisites,
    state and set live (storage locations: any node reads them), and its CPU threads.

    ``stop_record`` is the trial's record (``<experiment>/trials/<key>.json``) when the sweep has
    a scheduler: the distillation reads it at every progress report and ends, without a set, once
    it says the trial was stopped (``""``: no scheduler, never read). In ``workers_location`` each
    rank records where its process logs (:func:`worker_record_location`): what a failed row names
    when that process dies (``""``: not recorded)."""

    config: TrialConfig
    store_root: str  # the artifact store (``<storage>/cache``)
    state_location: str  # resumable state, rewritten at every checkpoint
    synthetic_location: str  # the finished set
    prerequisites: Prerequisites = field(default_factory=Prerequisites)  # what the objective requires
    threads: int = 1
    trial_key: str = ""  # what the Train workers' reports to Tune carry (the trial's own reports add it)
    stop_record: str = ""
    workers_location: str = ""


def worker_record_location(workers_location: str, rank: int) -> str:
    """Where rank ``rank`` of a distillation records its process (host, pid, log file)."""
    return join(workers_location, f"rank-{rank}.json")


def set_card_location(synthetic_location: str) -> str:
    """Where the set's card (:func:`orchestrator.sweep.distill_worker.set_card`) lies: next to the set."""
    return add_suffix(synthetic_location, ".card.json")  # a URI's query string stays at its end


__all__ = [
    "JOB_KEY",
    "OBJECTIVE_FIELDS",
    "PREREQUISITE_FIELDS",
    "PROGRESS_KEY",
    "STOPPED_AT",
    "Card",
    "DistillJob",
    "Metrics",
    "Report",
    "set_card_location",
    "worker_record_location",
]
