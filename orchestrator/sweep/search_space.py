"""Map a spec's ``search:`` domains onto a Ray Tune search space and search algorithm.

A trial's typed configuration and key come from its sample through :mod:`orchestrator.spec.trials` (Ray-free).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator.spec.model import Domain, SweepSpec
from orchestrator.spec.plan import count_trials
from orchestrator.spec.trials import REPEAT_KEY, Sample

__all__ = ["FinalResultOptuna", "PastTrial", "SearchPlan", "build_search"]


class PastTrial(NamedTuple):
    """A trial of an earlier run of the sweep: its swept values, its final metric (None: it did not
    finish) and whether the scheduler stopped it (``pruned``; its metric is then the probe accuracy
    it was stopped on, None when that was not a number). A plain ``(config, value)`` pair reads as
    one that was not stopped."""

    config: Sample
    value: float | None
    pruned: bool = False

    @property
    def finished(self) -> bool:
        """Whether it is not to run again: it finished, or the scheduler stopped it."""
        return self.value is not None or self.pruned


@dataclass
class SearchPlan:
    """What :class:`ray.tune.Tuner` needs: the space, the searcher, and how many samples."""

    param_space: Sample
    search_alg: Any | None
    num_samples: int
    expected_trials: int | None  # known for grids; None for open-ended searches

    @property
    def trials_this_run(self) -> int:
        """The trials this invocation's Tuner runs: every grid point (finished ones find their work
        done), or the samples a search has left after a resumed sweep's finished ones."""
        if self.search_alg is None and self.expected_trials is not None:
            return self.expected_trials
        return self.num_samples


def _tune_domain(d: Domain, as_grid: bool) -> Any:
    kind = d.kind
    if kind == "grid":
        return tune.grid_search(list(d.grid or [])) if as_grid else tune.choice(list(d.grid or []))
    if kind == "choice":
        return tune.choice(list(d.choice or []))
    if kind == "uniform":
        lo, hi = d.uniform  # type: ignore[misc]
        return tune.uniform(lo, hi)
    if kind == "loguniform":
        lo, hi = d.loguniform  # type: ignore[misc]
        return tune.loguniform(lo, hi)
    lo, hi = d.randint  # type: ignore[misc]
    return tune.randint(lo, hi + 1)  # ddx's bounds are inclusive; Tune's upper bound is not


def build_search(
    spec: SweepSpec, history: list[PastTrial] | list[tuple[Sample, float | None]] | None = None
) -> SearchPlan:
    """Grid: Tune's variant generator, with ``num_samples`` repeats as a ``repeat`` grid axis.

    Optuna: TPE over every domain, or — when every domain is a grid — Optuna's
    ``GridSampler`` over ``choice`` domains (``OptunaSearch`` rejects ``grid_search``).

    ``history`` (a resumed sweep's trials: :class:`PastTrial`) is told to Optuna before it
    suggests anything: finished trials as evaluated points (not run again, and they inform TPE),
    trials the scheduler stopped as pruned ones with the probe accuracy they were stopped on (not
    run again either), unfinished ones queued to run first; only the remaining samples are new.
    A grid needs no history: every trial runs again and finds its finished work (or its stop)
    by trial key.
    """
    n = count_trials(spec)
    if spec.algorithm == "grid":
        space = {k: _tune_domain(d, as_grid=True) for k, d in spec.search.items()}
        space[REPEAT_KEY] = tune.grid_search(list(range(spec.num_samples)))
        return SearchPlan(space, None, 1, n)

    import optuna

    space = {k: _tune_domain(d, as_grid=False) for k, d in spec.search.items()}
    all_grid = bool(spec.search) and all(d.kind == "grid" for d in spec.search.values())
    if all_grid:
        grid = {k: list(d.grid or []) for k, d in spec.search.items()}
        sampler: Any = optuna.samplers.GridSampler(grid, seed=spec.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed)
    past = [PastTrial(*h) for h in history or []]
    known = [PastTrial(dict(p.config), p.value, p.pruned) for p in past if set(p.config) == set(spec.search)]
    searcher = FinalResultOptuna(metric=spec.metric.name, mode=spec.metric.mode, sampler=sampler, history=known)
    space[REPEAT_KEY] = 0
    finished = sum(1 for p in known if p.finished)
    return SearchPlan(space, searcher, max(0, n - finished), n)


class FinalResultOptuna(OptunaSearch):
    """Optuna fed only the results that carry its metric, and told a resumed sweep's history.

    Trials report progress (distillation step, loss, evaluations done) before their final
    validation accuracy; Ray's OptunaSearch would fail on a result without its metric.
    """

    def __init__(self, history: list[PastTrial] | None = None, **kwargs: Any) -> None:
        self._history = [PastTrial(*h) for h in history or []]
        super().__init__(**kwargs)

    def _setup_study(self, mode: str | list) -> None:
        super()._setup_study(mode)
        for config, value, pruned in self._history:
            if pruned:  # stopped by the scheduler: known to TPE as pruned at its probe accuracy, not run again
                self.add_evaluated_point(
                    config, value, pruned=True, intermediate_values=None if value is None else [value]
                )
            elif value is None:
                self._ot_study.enqueue_trial(config)  # started before, not finished: run it first
            else:
                self.add_evaluated_point(config, value)  # finished: known to TPE, not run again

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)
