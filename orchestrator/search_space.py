"""Map a spec's ``search:`` domains onto a Ray Tune search space and search algorithm.

``trial_hyper``/``trial_key``/``REPEAT_KEY`` are re-exported from :mod:`orchestrator.trial_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import tune

from orchestrator.plan import count_trials
from orchestrator.spec import Domain, SweepSpec

# the pure trial functions live in a Ray-free module (the plan uses them); re-exported here
from orchestrator.trial_keys import REPEAT_KEY, trial_hyper, trial_key

__all__ = ["REPEAT_KEY", "SearchPlan", "build_search", "trial_hyper", "trial_key"]


@dataclass
class SearchPlan:
    """What :class:`ray.tune.Tuner` needs: the space, the searcher, and how many samples."""

    param_space: dict[str, Any]
    search_alg: Any | None
    num_samples: int
    expected_trials: int | None  # known for grids; None for open-ended searches


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


def build_search(spec: SweepSpec) -> SearchPlan:
    """Grid: Tune's variant generator, with ``num_samples`` repeats as a ``repeat`` grid axis.

    Optuna: TPE over every domain, or — when every domain is a grid — Optuna's
    ``GridSampler`` over ``choice`` domains (``OptunaSearch`` rejects ``grid_search``).
    """
    n = count_trials(spec)
    if spec.algorithm == "grid":
        space = {k: _tune_domain(d, as_grid=True) for k, d in spec.search.items()}
        space[REPEAT_KEY] = tune.grid_search(list(range(spec.num_samples)))
        return SearchPlan(space, None, 1, n)

    import optuna
    from ray.tune.search.optuna import OptunaSearch

    space = {k: _tune_domain(d, as_grid=False) for k, d in spec.search.items()}
    all_grid = bool(spec.search) and all(d.kind == "grid" for d in spec.search.values())
    if all_grid:
        grid = {k: list(d.grid or []) for k, d in spec.search.items()}
        sampler: Any = optuna.samplers.GridSampler(grid, seed=spec.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed)
    searcher = OptunaSearch(metric=spec.metric.name, mode=spec.metric.mode, sampler=sampler)
    space[REPEAT_KEY] = 0
    return SearchPlan(space, searcher, n, n)
