"""Resuming a sweep: a fresh Tune run per invocation, told what earlier invocations finished."""

from __future__ import annotations

from pathlib import Path

from orchestrator.search_space import build_search
from orchestrator.spec import parse_spec
from orchestrator.sweep import tune_config
from tests.helpers import tiny_digits_spec


def _optuna_spec(tmp_path: Path):
    data = tiny_digits_spec(tmp_path, algorithm="optuna", num_samples=4)
    data["method"]["ipc"] = 1
    data["search"] = {"lr_images": {"loguniform": [0.1, 10.0]}}
    return parse_spec(data)


def test_max_concurrent_flag_wins_on_fresh_and_resumed_runs(tmp_path: Path) -> None:
    spec = parse_spec(tiny_digits_spec(tmp_path, resources={"max_concurrent_trials": 3}))
    plan = build_search(spec)
    assert tune_config(spec, plan, None).max_concurrent_trials == 3
    assert tune_config(spec, plan, 1).max_concurrent_trials == 1
    resumed = build_search(spec, history=[({"ipc": 1}, 0.5)])  # a grid re-runs every trial (finished ones skip)
    assert tune_config(spec, resumed, 1).max_concurrent_trials == 1 and resumed.num_samples == 1


def test_resumed_optuna_is_told_finished_trials_and_queues_unfinished_ones(tmp_path: Path) -> None:
    spec = _optuna_spec(tmp_path)
    history = [({"lr_images": 0.5}, 0.61), ({"lr_images": 2.0}, 0.72), ({"lr_images": 7.0}, None)]
    plan = build_search(spec, history)
    assert plan.num_samples == 2  # 4 asked, 2 finished
    searcher = plan.search_alg
    assert searcher.set_search_properties(None, None, plan.param_space)
    first = searcher.suggest("t1")
    assert first["lr_images"] == 7.0  # the unfinished trial runs first
    study = searcher._ot_study
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["lr_images"] for t in done) == [0.5, 2.0]
    assert sorted(t.value for t in done) == [0.61, 0.72]
