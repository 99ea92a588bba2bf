"""What one trial's distillation is given: a :class:`DistillJob` (typed; it crosses processes and nodes).

The trial driver fills it (:mod:`orchestrator.sweep.trial`), :mod:`orchestrator.sweep.distill_run`
launches it, :mod:`orchestrator.sweep.distill_worker` runs it where the CPUs/GPUs are. Pure data:
no Ray, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from methods.distill.trial import TrialConfig
from orchestrator.storage.locations import add_suffix
from orchestrator.sweep.prerequisites import Prerequisites

#: what a trial reports to Tune: its phase, the distillation's step, loss and probe accuracy, its rows' summary
Metrics = dict[str, Any]
Report = Callable[[Metrics], None]
#: what the trial driver knows of a set without loading it: its config, ``extra`` metadata and row columns
Card = dict[str, Any]

#: key of the synthetic set's ``extra`` holding the prerequisites' result-row columns
PREREQUISITE_FIELDS = "prerequisite_fields"
#: key of the synthetic set's ``extra`` holding the objective's row fields (what it resolved)
OBJECTIVE_FIELDS = "objective_fields"
#: the key under which Ray Train workers receive their job (``train_loop_config``)
JOB_KEY = "job"


@dataclass(frozen=True)
class DistillJob:
    """Everything a distillation worker needs: the trial's configuration, where its prerequisites,
    state and set live (storage locations: any node reads them), and its CPU threads."""

    config: TrialConfig
    store_root: str  # the artifact store (``<storage>/cache``)
    state_location: str  # resumable state, rewritten at every checkpoint
    synthetic_location: str  # the finished set
    prerequisites: Prerequisites = field(default_factory=Prerequisites)  # what the objective requires
    threads: int = 1


def set_card_location(synthetic_location: str) -> str:
    """Where the set's card (:func:`orchestrator.sweep.distill_worker.set_card`) lies: next to the set."""
    return add_suffix(synthetic_location, ".card.json")  # a URI's query string stays at its end


__all__ = [
    "JOB_KEY",
    "OBJECTIVE_FIELDS",
    "PREREQUISITE_FIELDS",
    "Card",
    "DistillJob",
    "Metrics",
    "Report",
    "set_card_location",
]
