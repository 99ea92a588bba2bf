"""Prerequisites: what an objective (or an evaluation) needs produced once from real data.

A distillation objective declares the prerequisites it needs by name
(:attr:`methods.distill.objective.Objective.requires`, e.g. ``("teacher",)`` for CFM/SRe²L,
``("experts",)`` for trajectory matching). Each name is a :class:`Prerequisite` in
:data:`PREREQUISITES`: it knows

* its settings (``Options``, a dataclass in a torch-free module: the sweep file's top-level
  block of the same name, validated by ``ddx validate`` with no spec change),
* how many independent pieces it is made of (:meth:`~Prerequisite.units`: one teacher, N
  expert trajectories — the orchestrator produces the pieces in parallel),
* the content identity of each piece (:meth:`~Prerequisite.describe`: the artifact key),
* how to produce one piece from the real data into a file (:meth:`~Prerequisite.produce`,
  pure PyTorch), and how to load the pieces for the objective (:meth:`~Prerequisite.load`).

The orchestrator produces every piece once per content (artifact store, under a lock),
fetches the files onto the node that needs them, loads them, and hands the objective a
mapping ``name → loaded object`` in :meth:`~methods.distill.objective.Objective.prepare`.
A new objective with a new prerequisite is therefore one file plus its catalog entry
(:mod:`methods.catalog`: name, implementation module, ``Options``), which also gives the
sweep file its top-level block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from methods.registry import Registry

if TYPE_CHECKING:  # the registry and its base class are imported where no torch is (trial drivers)
    import torch

    from methods.datasets import RealData

#: dataset option keys that do not change the data (excluded from artifact identities)
NON_IDENTITY_DATASET_KEYS = ("cache_dir",)


def dataset_identity(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset options that determine the data (``root`` as the sweep names it, never a node-local copy)."""
    return {k: v for k, v in dataset.items() if k not in NON_IDENTITY_DATASET_KEYS}


class Prerequisite(ABC):
    """Something produced once from the real data and reused by every trial that needs it."""

    name: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, options: Any) -> None:
        self.options = options

    def units(self) -> int:
        """Independent pieces (each produced by its own task, in parallel)."""
        return 1

    @abstractmethod
    def describe(self, dataset: Mapping[str, Any], unit: int) -> dict[str, Any]:
        """Everything that determines piece ``unit`` (JSON-able): its artifact identity.

        ``dataset`` are the dataset options as the sweep gives them; use :func:`dataset_identity`.
        """

    @abstractmethod
    def produce(self, data: RealData, unit: int, out: Path, device: torch.device) -> None:
        """Produce piece ``unit`` from ``data`` and write it to ``out`` (one file)."""

    @abstractmethod
    def load(self, paths: list[Path], device: torch.device) -> Any:
        """What the objective receives, from the local files of every piece (in unit order)."""

    def row_fields(self, paths: list[Path]) -> dict[str, Any]:
        """Result-row columns describing the produced prerequisite (e.g. the teacher's accuracy)."""
        return {}


PREREQUISITES: Registry[type[Prerequisite]] = Registry("prerequisite", catalog=True)


__all__ = ["NON_IDENTITY_DATASET_KEYS", "PREREQUISITES", "Prerequisite", "dataset_identity"]
