"""Which evaluations a distilled set gets: one job per (architecture × resolution × seed × label mode).

Pure (no Ray, no torch): the evaluation fan-out (:mod:`orchestrator.evaluation.tasks`) runs these
jobs, and the plan ``ddx validate`` prints counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.networks.info import resolve_arch
from orchestrator.provenance import now


@dataclass(frozen=True)
class EvalJob:
    arch: str  # the network trained (``convnet`` already resolved to ``convnet_d<N>``)
    resolution: int
    seed: int
    label_mode: str
    requested: str | None = None  # the arch as named in the spec, when it differs

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.arch, self.resolution, self.seed, self.label_mode)

    def columns(self) -> dict[str, Any]:
        """This evaluation's own columns of a result row (stamped now)."""
        return {
            "eval_arch": self.arch,
            "eval_arch_requested": self.requested or self.arch,
            "eval_resolution": self.resolution,
            "seed": self.seed,
            "label_mode": self.label_mode,
            "created_at": now(),
        }


def plan_jobs(archs: list[str], resolutions: list[int], seeds: list[int], label_modes: list[str]) -> list[EvalJob]:
    """Every (arch, resolution, label mode, seed); ``convnet`` takes the depth of its resolution.

    Two spec names that resolve to the same network at a resolution (``convnet`` and
    ``convnet_d5`` at 128 px) share one job.
    """
    jobs: dict[tuple[str, int, int, str], EvalJob] = {}
    for a in archs:
        for r in resolutions:
            actual = resolve_arch(a, r)
            for m in label_modes:
                for s in seeds:
                    job = EvalJob(actual, r, s, m, None if actual == a else a)
                    jobs.setdefault(job.key, job)
    return list(jobs.values())


def row_key_of(row: dict[str, Any]) -> tuple[str, int, int, str]:
    return (str(row["eval_arch"]), int(row["eval_resolution"]), int(row["seed"]), str(row["label_mode"]))


__all__ = ["EvalJob", "plan_jobs", "row_key_of"]
