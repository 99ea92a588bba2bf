"""The plan of a sweep — what will really run — computed without Ray or torch.

``ddx validate`` and ``ddx sweep --dry-run`` print it: the trials Tune will start, the
**distinct trial keys** (the sets that will really be distilled: trials whose differing
hyper-parameters no component reads share one key, see :func:`~orchestrator.spec.trials.trial_key`),
the evaluations per set and in all, the prerequisites that will be produced, and the
full-data reference trainings.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.evaluation.jobs import plan_jobs
from orchestrator.spec.checks import distill_resolution
from orchestrator.spec.model import SweepBase, check_location
from orchestrator.spec.trials import REPEAT_KEY, keys_read, needed_prerequisites, trial_config, trial_key

#: where a sweep's spec is saved in its experiment directory (with its config hash): resume
#: checks it (:mod:`orchestrator.sweep.preflight`), reports plan from it
SPEC_FILE = "spec.json"

#: trials beyond which the distinct keys are not enumerated
MAX_ENUMERATED_TRIALS = 100_000


def count_trials(spec: SweepBase) -> int:
    """Trials Tune will start: grid × ``num_samples`` (grid search; sampled domains do not multiply),
    Optuna's grid × ``num_samples`` when every domain is a grid, else ``num_samples``."""
    grid_sizes = [len(d.grid or []) for d in spec.search.values() if d.kind == "grid"]
    if spec.algorithm == "grid":
        return math.prod(grid_sizes) * spec.num_samples
    all_grid = bool(spec.search) and all(d.kind == "grid" for d in spec.search.values())
    return math.prod(grid_sizes) * spec.num_samples if all_grid else spec.num_samples


@dataclass
class KeyCount:
    """Distinct trial keys: ``exact`` when known; else ``at_most`` and why (``note``)."""

    exact: int | None
    at_most: int
    note: str = ""


def count_trial_keys(spec: SweepBase) -> KeyCount:
    """How many distinct sets will really be distilled."""
    trials = count_trials(spec)
    sampled = [k for k, d in spec.search.items() if d.kind != "grid"]
    grids = {k: list(d.grid or []) for k, d in spec.search.items() if d.kind == "grid"}
    if spec.algorithm == "optuna" and sampled:
        return KeyCount(None, trials, "optuna samples the values as the sweep runs")
    if {"objective", "parameterization"} & set(sampled):
        return KeyCount(None, trials, "the components are sampled, so which keys count is known only per trial")
    if trials > MAX_ENUMERATED_TRIALS:
        return KeyCount(None, trials, "too many trials to enumerate")
    repeats = range(spec.num_samples) if spec.algorithm == "grid" else [0]  # Optuna trials carry repeat 0
    keys: set[str] = set()
    sampled_read = False
    names = list(grids)
    for index, (combo, repeat) in enumerate(itertools.product(itertools.product(*grids.values()), repeats)):
        sample: dict[str, Any] = dict(zip(names, combo, strict=True))
        sample.update({k: spec.search[k].samples()[0] for k in sampled})  # a value of the right type
        sample[REPEAT_KEY] = repeat
        config = trial_config(spec, sample)
        reads_sampled = any(k in keys_read(config) for k in sampled)
        sampled_read = sampled_read or reads_sampled
        keys.add(trial_key(config) + (f"#{index}" if reads_sampled else ""))  # a sampled value: its own set
    if sampled_read and any(spec.search[k].kind in ("choice", "randint") for k in sampled):
        return KeyCount(None, len(keys), "sampled choice/randint values may repeat")
    return KeyCount(len(keys), len(keys))


def evaluation_jobs(spec: SweepBase) -> int:
    """Evaluations per distilled set (arch × resolution × seed × label mode; ``convnet`` resolved)."""
    ev = spec.evaluation
    resolutions = ev.resolutions or [distill_resolution(spec) or 0]
    seeds = [spec.seed + i for i in range(ev.seeds)]
    return len(plan_jobs(list(ev.archs), list(resolutions), seeds, ev.label_modes))


def reference_trainings(spec: SweepBase) -> int:
    """Full-data reference trainings (``evaluation.reference``): arch × resolution × reference seed."""
    ev = spec.evaluation
    if ev.reference is None:
        return 0
    resolutions = len(ev.resolutions) if ev.resolutions else 1
    return len(ev.archs) * resolutions * (ev.reference.seeds or ev.seeds)


@dataclass
class Plan:
    trials: int
    keys: KeyCount
    evaluations_per_set: int
    prerequisites: dict[str, list[str]] = field(default_factory=dict)
    references: int = 0

    @property
    def evaluations_total(self) -> int | None:
        return None if self.keys.exact is None else self.keys.exact * self.evaluations_per_set

    def lines(self) -> list[str]:
        """The plan as printed by ``ddx validate`` / ``ddx sweep --dry-run``."""
        k = self.keys
        if k.exact is not None:
            shared = self.trials - k.exact
            why = f" ({shared} trial{'s' if shared != 1 else ''} share another's set)" if shared > 0 else ""
            keys = f"{k.exact}{why}"
            total = f"{self.evaluations_total}"
        else:
            keys = f"unknown before running, at most {k.at_most} ({k.note})"
            total = f"at most {k.at_most * self.evaluations_per_set}"
        needs = (
            ", ".join(f"{p} (for {', '.join(who)})" for p, who in self.prerequisites.items())
            if self.prerequisites
            else "none"
        )
        out = [
            f"trials: {self.trials}",
            f"distinct trial keys (sets distilled): {keys}",
            f"evaluations per set: {self.evaluations_per_set}",
            f"evaluations in all: {total}",
            f"prerequisites produced: {needs}",
        ]
        if self.references:
            out.append(f"full-data reference trainings: {self.references}")
        return out


def make_plan(spec: SweepBase) -> Plan:
    return Plan(
        trials=count_trials(spec),
        keys=count_trial_keys(spec),
        evaluations_per_set=evaluation_jobs(spec),
        prerequisites=needed_prerequisites(spec),
        references=reference_trainings(spec),
    )


def describe_plan(spec: SweepBase) -> dict[str, Any]:
    """The plan as a dict (``trials``, ``evaluations_per_trial``, ``distinct_keys``, …)."""
    plan = make_plan(spec)
    return {
        "trials": plan.trials,
        "evaluations_per_trial": plan.evaluations_per_set,
        "distinct_keys": plan.keys.exact,
        "distinct_keys_at_most": plan.keys.at_most,
        "evaluations_total": plan.evaluations_total,
        "prerequisites": plan.prerequisites,
        "references": plan.references,
        "experiment_dir": spec.experiment_dir(),
        "algorithm": spec.algorithm,
        "swept": {k: d.model_dump(exclude_none=True) for k, d in spec.search.items()},
        "lines": plan.lines(),
    }


def resolve_storage(spec: SweepBase, storage: str | None) -> SweepBase:
    """Apply ``--storage`` and make a local storage path absolute (Tune/Train change directory)."""
    if storage is not None:
        try:
            check_location(storage)
        except ValueError as err:
            raise UserError(str(err), key="--storage") from None
    target = storage or spec.storage
    if "://" not in target:
        target = str(Path(target).expanduser().resolve())
    update: dict[str, Any] = {"storage": target}
    if spec.dataset.root and "://" not in spec.dataset.root:
        root = str(Path(spec.dataset.root).expanduser().resolve())
        update["dataset"] = spec.dataset.model_copy(update={"root": root})
    return spec.model_copy(update=update)


__all__ = [
    "KeyCount",
    "Plan",
    "count_trial_keys",
    "count_trials",
    "describe_plan",
    "evaluation_jobs",
    "make_plan",
    "reference_trainings",
    "resolve_storage",
]
