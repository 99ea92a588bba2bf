"""Which students a distilled set gets, and how they are grouped into tasks.

One job per (network × resolution × seed × label mode); the jobs of one set that differ only in
their seed form one *group*; one Ray task trains as many of a group's seeds as train together on
its device (batched, :mod:`methods.evaluation.student_batch`; on CPU one). Pure (no Ray, no torch): the evaluation
(:mod:`orchestrator.evaluation.sets`) runs these groups and the plan ``ddx validate`` prints
counts the jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from methods.evaluation.options import SEEDS_PER_BATCH
from methods.networks.info import resolve_arch
from orchestrator.provenance import now

#: the identity of one evaluation of a set: (network, resolution, seed, label mode)
JobKey = tuple[str, int, int, str]


@dataclass(frozen=True)
class EvalJob:
    arch: str  # the network trained (``convnet`` already resolved to ``convnet_d<N>``)
    resolution: int
    seed: int
    label_mode: str
    requested: str | None = None  # the arch as named in the spec, when it differs
    epochs: int | None = None  # this network's own epochs (``evaluation.arch_epochs``), else the protocol's

    @property
    def key(self) -> JobKey:
        return (self.arch, self.resolution, self.seed, self.label_mode)

    @property
    def group(self) -> tuple[str, int, str]:
        """What the jobs trained together share: everything but the seed."""
        return (self.arch, self.resolution, self.label_mode)

    @property
    def named(self) -> str:
        """The network as the spec names it (``convnet`` for a resolved ``convnet_d3``)."""
        return self.requested or self.arch

    def columns(self) -> dict[str, object]:
        """This evaluation's own columns of a result row (stamped now)."""
        return {
            "eval_arch": self.arch,
            "eval_arch_requested": self.named,
            "eval_resolution": self.resolution,
            "seed": self.seed,
            "label_mode": self.label_mode,
            "created_at": now(),
        }


@dataclass(frozen=True)
class StudentPlan:
    """The students each set gets: ``archs`` × ``resolutions`` (None: the set's own) × ``seeds`` ×
    ``label_modes``; ``arch_epochs``: networks that train their own number of epochs."""

    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    label_modes: tuple[str, ...] = ("hard",)
    resolutions: tuple[int, ...] | None = None
    arch_epochs: tuple[tuple[str, int], ...] = ()

    def jobs(self, own: int | Iterable[int], label_modes: Iterable[str] | None = None) -> list[EvalJob]:
        """Every job for a set whose own resolution(s) ``own`` are the default (``label_modes``: a subset)."""
        resolutions = list(self.resolutions or ([own] if isinstance(own, int) else own))
        modes = list(self.label_modes if label_modes is None else label_modes)
        return plan_jobs(list(self.archs), resolutions, list(self.seeds), modes, dict(self.arch_epochs))


def plan_jobs(
    archs: list[str],
    resolutions: list[int],
    seeds: list[int],
    label_modes: list[str],
    arch_epochs: dict[str, int] | None = None,
) -> list[EvalJob]:
    """Every (arch, resolution, label mode, seed); ``convnet`` takes the depth of its resolution.

    Two spec names that resolve to the same network at a resolution (``convnet`` and
    ``convnet_d5`` at 128 px) share one job.
    """
    jobs: dict[JobKey, EvalJob] = {}
    for a in archs:
        for r in resolutions:
            actual = resolve_arch(a, r)
            for m in label_modes:
                for s in seeds:
                    job = EvalJob(actual, r, s, m, None if actual == a else a, (arch_epochs or {}).get(a))
                    jobs.setdefault(job.key, job)
    return list(jobs.values())


def groups(jobs: Iterable[EvalJob], size: int | None = None) -> list[list[EvalJob]]:
    """The jobs grouped by everything but their seed, in first-seen order, each group cut into
    tasks of at most ``size`` seeds (None: one task per group)."""
    out: dict[tuple[str, int, str], list[EvalJob]] = {}
    for job in jobs:
        out.setdefault(job.group, []).append(job)
    if size is None:
        return list(out.values())
    return [g[i : i + size] for g in out.values() for i in range(0, len(g), size)]


def seeds_per_task(gpu: bool) -> int:
    """How many seeds one evaluation task trains: as many as train together on its device
    (:data:`~methods.evaluation.options.SEEDS_PER_BATCH`): on CPU one, so that seeds spread over
    the CPUs and nodes and a lost node re-runs only its own student."""
    return SEEDS_PER_BATCH["cuda" if gpu else "cpu"]


def row_key_of(row: dict[str, object]) -> JobKey:
    return (str(row["eval_arch"]), int(row["eval_resolution"]), int(row["seed"]), str(row["label_mode"]))  # type: ignore[call-overload]


__all__ = ["EvalJob", "JobKey", "StudentPlan", "groups", "plan_jobs", "row_key_of", "seeds_per_task"]
