"""Prerequisites: what an objective (or an evaluation) needs produced once from real data.

An objective's entry declares the prerequisites it needs by name
(:attr:`methods.registry.ObjectiveEntry.requires`, e.g. ``("teacher",)`` for CFM/SRe²L,
``("experts",)`` for trajectory matching); a label mode may need one too (soft labels: the
teacher). Each name is a registered :class:`~methods.registry.PrerequisiteEntry` whose
implementation is a :class:`Prerequisite`: it knows

* its settings (its entry's ``options`` dataclass, torch-free: the sweep file's top-level block
  of the same name, validated by ``ddx validate`` with no spec change),
* how many independent pieces it is made of (:meth:`~Prerequisite.units`: one teacher, N
  expert trajectories — the orchestrator produces the pieces in parallel),
* the content identity of each piece (:meth:`~Prerequisite.describe`: the artifact key),
* how to produce one piece from the real data into a file (:meth:`~Prerequisite.produce`,
  pure PyTorch), and how to load the pieces for the objective (:meth:`~Prerequisite.load`).

The orchestrator produces every piece once per content (artifact store, under a lock),
fetches the files onto the node that needs them, loads them, and hands the objective a
mapping ``name → loaded object`` in :meth:`~methods.distill.objective.Objective.prepare`.
A new objective with a new prerequisite is therefore a package of its own with one
entry-point line (docs/extending.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods.datasets.options import DatasetOptions
from methods.records import Description, RowFields
from methods.registry import PREREQUISITES

if TYPE_CHECKING:  # the base class is imported where no torch is (trial drivers)
    import torch

    from methods.datasets import RealData


def dataset_identity(dataset: DatasetOptions) -> Description:
    """The dataset options that determine the data (:meth:`DatasetOptions.identity`)."""
    return dataset.identity()


class Prerequisite(ABC):
    """Something produced once from the real data and reused by every trial that needs it.

    Its entry (:class:`methods.registry.PrerequisiteEntry`) declares its name and ``options``
    dataclass (the sweep file's top-level block of that name); an instance is what the
    constructor receives.
    """

    #: the registered name it was built under (:func:`build_prerequisite` sets it)
    name: str = "prerequisite"

    def __init__(self, options: Any) -> None:
        self.options = options

    def units(self) -> int:
        """Independent pieces (each produced by its own task, in parallel)."""
        return 1

    @abstractmethod
    def describe(self, dataset: DatasetOptions, unit: int) -> Description:
        """Everything that determines piece ``unit`` (JSON-able): its artifact identity.

        ``dataset`` are the dataset options as the sweep gives them; use :func:`dataset_identity`.
        """

    @abstractmethod
    def produce(self, data: RealData, unit: int, out: Path, device: torch.device) -> None:
        """Produce piece ``unit`` from ``data`` and write it to ``out`` (one file)."""

    @abstractmethod
    def load(self, paths: list[Path], device: torch.device) -> Any:
        """What the objective receives, from the local files of every piece (in unit order)."""

    def row_fields(self, paths: list[Path]) -> RowFields:
        """Result-row columns describing the produced prerequisite (e.g. the teacher's accuracy)."""
        return {}


def build_prerequisite(name: str, options: Any) -> Prerequisite:
    """The prerequisite registered as ``name`` (its entry's class), built with its ``options`` instance."""
    entry = PREREQUISITES.get(name)
    if not isinstance(options, entry.options):
        raise TypeError(f"prerequisite {name!r} takes {entry.options.__name__}, got {type(options).__name__}")
    prerequisite = entry.implementation()(options)
    prerequisite.name = name
    return prerequisite


__all__ = ["Prerequisite", "build_prerequisite", "dataset_identity"]
