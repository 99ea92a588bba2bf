"""Map a spec's ``search:`` domains onto a Ray Tune search space and search algorithm."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator.spec import Domain, SweepSpec, keys_read_by

#: hidden grid axis that turns ``num_samples`` repeats of a grid into distinct trials
REPEAT_KEY = "repeat"


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


def build_search(spec: SweepSpec, history: list[tuple[dict[str, Any], float | None]] | None = None) -> SearchPlan:
    """Grid: Tune's variant generator, with ``num_samples`` repeats as a ``repeat`` grid axis.

    Optuna: TPE over every domain, or — when every domain is a grid — Optuna's
    ``GridSampler`` over ``choice`` domains (``OptunaSearch`` rejects ``grid_search``).

    ``history`` (a resumed sweep's trials: swept values and final metric, None when the
    trial did not finish) is told to Optuna before it suggests anything: finished trials
    as evaluated points (not run again, and they inform TPE), unfinished ones queued to run
    first; only the remaining samples are new. A grid needs no history: every trial runs
    again and finds its finished work by trial key.
    """
    grid_sizes = [len(d.grid or []) for d in spec.search.values() if d.kind == "grid"]
    if spec.algorithm == "grid":
        space = {k: _tune_domain(d, as_grid=True) for k, d in spec.search.items()}
        space[REPEAT_KEY] = tune.grid_search(list(range(spec.num_samples)))
        return SearchPlan(space, None, 1, math.prod(grid_sizes) * spec.num_samples)

    import optuna

    space = {k: _tune_domain(d, as_grid=False) for k, d in spec.search.items()}
    all_grid = bool(spec.search) and all(d.kind == "grid" for d in spec.search.values())
    if all_grid:
        grid = {k: list(d.grid or []) for k, d in spec.search.items()}
        sampler: Any = optuna.samplers.GridSampler(grid, seed=spec.seed)
        n = math.prod(grid_sizes) * spec.num_samples
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed)
        n = spec.num_samples
    known = [(dict(c), v) for c, v in (history or []) if set(c) == set(spec.search)]
    searcher = FinalResultOptuna(metric=spec.metric.name, mode=spec.metric.mode, sampler=sampler, history=known)
    space[REPEAT_KEY] = 0
    finished = sum(1 for _, v in known if v is not None)
    return SearchPlan(space, searcher, max(0, n - finished), n)


class FinalResultOptuna(OptunaSearch):
    """Optuna fed only the results that carry its metric, and told a resumed sweep's history.

    Trials report progress (distillation step, loss, evaluations done) before their final
    validation accuracy; Ray's OptunaSearch would fail on a result without its metric.
    """

    def __init__(self, history: list[tuple[dict[str, Any], float | None]] | None = None, **kwargs: Any) -> None:
        self._history = list(history or [])
        super().__init__(**kwargs)

    def _setup_study(self, mode: str | list) -> None:
        super()._setup_study(mode)
        for config, value in self._history:
            if value is None:
                self._ot_study.enqueue_trial(config)  # started before, not finished: run it first
            else:
                self.add_evaluated_point(config, value)  # finished: known to TPE, not run again

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)


def trial_hyper(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's flat hyper-parameters: fixed ``method`` values plus its sample.

    Keys the trial's objective and parameterization do not read are dropped, so e.g. the
    pixel reference of a neural-field width×depth grid is one trial key, distilled once.
    """
    hp = {"parameterization": "pixels", "distill_arch": "convnet_d3"}
    hp.update(spec.method)
    hp.update({k: v for k, v in config.items() if k in spec.search})
    read = keys_read_by(hp["objective"], hp["parameterization"])
    hp = {k: v for k, v in hp.items() if k in read}
    hp[REPEAT_KEY] = int(config.get(REPEAT_KEY, 0))
    return hp


def trial_key(spec: SweepSpec, hp: dict[str, Any]) -> str:
    """A stable identity for a trial: hash of the spec's result-relevant body and the trial's values.

    Rows, synthetic sets and Train checkpoints are keyed by it, so a resumed or re-created
    trial finds its earlier work even when Tune's own experiment state was lost.
    """
    body = json.dumps({"spec": spec.config_hash(), "hp": hp}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:12]
