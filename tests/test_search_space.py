"""Spec domains → Ray Tune search spaces and searchers; stable trial keys."""

from __future__ import annotations

from pathlib import Path

import optuna
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float, Integer

from methods.dm.options import DMOptions
from orchestrator.spec.load import parse_spec
from orchestrator.spec.trials import REPEAT_KEY, trial_config, trial_key
from orchestrator.sweep.search_space import build_search
from tests.helpers import tiny_digits_spec


def _spec(**over):
    data = tiny_digits_spec(Path("/tmp/unused"), **over)
    for key in data["search"]:
        data["method"].pop(key, None)
    return parse_spec(data)


def test_grid_maps_to_grid_search_with_repeat_axis() -> None:
    spec = _spec(
        search={"ipc": {"grid": [1, 10]}, "lr_images": {"loguniform": [0.1, 10]}, "batch_real": {"randint": [8, 16]}},
        num_samples=3,
    )
    plan = build_search(spec)
    assert plan.search_alg is None and plan.num_samples == 1
    assert plan.param_space["ipc"] == {"grid_search": [1, 10]}
    assert plan.param_space[REPEAT_KEY] == {"grid_search": [0, 1, 2]}
    lr = plan.param_space["lr_images"]
    assert isinstance(lr, Float) and lr.lower == 0.1 and lr.upper == 10
    assert "LogUniform" in type(lr.sampler).__name__
    bi = plan.param_space["batch_real"]
    assert isinstance(bi, Integer) and (bi.lower, bi.upper) == (8, 17)  # ddx bounds are inclusive
    assert plan.expected_trials == 2 * 3
    samples = {bi.sample() for _ in range(300)}
    assert samples == set(range(8, 17))


def test_choice_and_uniform() -> None:
    spec = _spec(search={"ipc": {"choice": [1, 2]}, "lr_images": {"uniform": [0.5, 2.0]}})
    space = build_search(spec).param_space
    assert isinstance(space["ipc"], Categorical) and space["ipc"].categories == [1, 2]
    assert isinstance(space["lr_images"], Float) and type(space["lr_images"].sampler).__name__.strip("_") == "Uniform"


def test_optuna_all_grid_uses_grid_sampler_over_choices() -> None:
    spec = _spec(algorithm="optuna", search={"ipc": {"grid": [1, 2, 5]}, "lr_images": {"grid": [0.1, 1.0]}})
    plan = build_search(spec)
    assert isinstance(plan.search_alg, OptunaSearch)
    assert isinstance(plan.search_alg._sampler, optuna.samplers.GridSampler)
    assert isinstance(plan.param_space["ipc"], Categorical)
    assert plan.num_samples == 6 == plan.expected_trials


def test_optuna_tpe_for_sampled_domains() -> None:
    search = {"ipc": {"choice": [1, 2]}, "lr_images": {"loguniform": [0.1, 10]}}
    spec = _spec(algorithm="optuna", num_samples=7, search=search)
    plan = build_search(spec)
    assert isinstance(plan.search_alg._sampler, optuna.samplers.TPESampler)
    assert plan.num_samples == 7


def test_a_trial_config_merges_fixed_and_sampled_values_into_typed_options() -> None:
    spec = _spec()
    config = trial_config(spec, {"ipc": 2, REPEAT_KEY: 0})
    assert config.ipc == 2 and config.loop.iterations == 10 and config.objective_name == "dm"
    assert isinstance(config.objective, DMOptions) and config.objective.batch_real == 32
    assert config.parameterization_name == "pixels" and config.seed == spec.seed


def test_trial_keys_are_stable_and_ignore_keys_the_trial_does_not_read() -> None:
    spec = _spec(search={"objective": {"grid": ["random", "dm"]}, "ipc": {"grid": [1]}})
    a = trial_config(spec, {"objective": "random", "ipc": 1, REPEAT_KEY: 0})
    b = trial_config(spec, {"objective": "dm", "ipc": 1, REPEAT_KEY: 0})
    assert "batch_real" not in a.columns() and b.columns()["batch_real"] == 32  # DM reads it, random does not
    assert trial_key(a) == trial_key(trial_config(spec, {"objective": "random", "ipc": 1, REPEAT_KEY: 0}))
    assert trial_key(a) != trial_key(b)
    assert trial_key(a) != trial_key(trial_config(spec, {"objective": "random", "ipc": 1, REPEAT_KEY: 1}))
    # a change that does not affect results (storage, resources) keeps the key
    moved_data = tiny_digits_spec(Path("/elsewhere"), resources={"eval_cpus": 2})
    moved_data["method"].pop("objective")
    moved_data["search"] = {"objective": {"grid": ["random", "dm"]}, "ipc": {"grid": [1]}}
    moved = parse_spec(moved_data)
    assert trial_key(trial_config(moved, {"objective": "random", "ipc": 1, REPEAT_KEY: 0})) == trial_key(a)


def test_asha_stops_on_the_probe_at_a_rung_but_never_for_reaching_max_t() -> None:
    """Tune's ASHA stops every trial whose time reaches ``max_t`` (``stop_last_trials``): with ``max_t``
    below ``iterations`` the best trial too, before its evaluation. ddx's runs on past its last rung."""
    from types import SimpleNamespace

    from orchestrator.sweep.tracking import make_scheduler

    spec = _spec(
        method={"iterations": 100, "probe_every": 10},
        scheduler={"name": "asha", "grace_period": 10, "reduction_factor": 2, "max_t": 40},
    )
    asha = make_scheduler(spec)
    good, bad = SimpleNamespace(trial_id="good"), SimpleNamespace(trial_id="bad")
    for trial in (good, bad):
        asha.on_trial_add(None, trial)
    steps = (10, 20, 40, 50, 90)
    assert [asha.on_trial_result(None, good, {"distill_step": s, "probe_val_acc": 0.9}) for s in steps] == [
        "CONTINUE"
    ] * len(steps)
    assert asha.on_trial_result(None, bad, {"distill_step": 5, "probe_val_acc": 0.1}) == "CONTINUE"  # before a rung
    assert asha.on_trial_result(None, bad, {"distill_step": 10, "probe_val_acc": 0.1}) == "STOP"  # below the first
