"""Run a sweep: spec → Tune search → trials (Train distillation + evaluation tasks) → Parquet."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from ray import tune
from rich.console import Console

from orchestrator import runtime
from orchestrator.errors import UserError
from orchestrator.plan import describe_plan, resolve_storage  # noqa: F401  (re-exported; Ray-free)
from orchestrator.progress import ForwardingCallback, SweepProgress
from orchestrator.reference import finish_references, start_references
from orchestrator.search_space import build_search
from orchestrator.spec import SweepSpec
from orchestrator.store import ResultStore, delete_dir, exists, join, read_bytes, write_bytes_atomic
from orchestrator.trial import code_columns, run_trial

SPEC_FILE = "spec.json"


@dataclass
class SweepOutcome:
    experiment_dir: str
    results_path: str
    rows: pd.DataFrame
    trials_failed: int
    resumed: bool


def _check_resume(spec: SweepSpec, fresh: bool) -> bool:
    """Decide between a new experiment and resuming one; returns True when resuming."""
    exp = spec.experiment_dir()
    saved = join(exp, SPEC_FILE)
    if fresh:
        delete_dir(exp)
        return False
    if not exists(saved):
        return False
    previous = json.loads(read_bytes(saved))
    if previous.get("config_hash") != spec.config_hash():
        raise UserError(
            f"the sweep in {exp} was started from a different spec (hash {previous.get('config_hash')} ≠ "
            f"{spec.config_hash()}); run with --fresh to start over or rename the sweep",
            key="name",
        )
    return True


def run_sweep(
    spec: SweepSpec,
    fresh: bool = False,
    max_concurrent: int | None = None,
    console: Console | None = None,
) -> SweepOutcome:
    """Run (or resume) the sweep on the Ray session already connected."""
    console = console or Console()
    token = runtime.trial_token(spec.resources.trial_resources)
    runtime.check_resources(token)
    if runtime.is_embedded():
        runtime.check_fits(runtime.unit_demands(spec.resources, token))
    resumed = _check_resume(spec, fresh)
    exp = spec.experiment_dir()
    write_bytes_atomic(
        join(exp, SPEC_FILE),
        json.dumps({"config_hash": spec.config_hash(), "spec": spec.model_dump(mode="json")}, indent=2).encode(),
    )
    plan = build_search(spec)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, spec_json=spec.model_dump_json(), code=code_columns()),
        token,
    )
    tune_dir = join(exp, "tune")
    progress = SweepProgress(spec.metric.name, spec.metric.mode, plan.expected_trials, console)
    if resumed and tune.Tuner.can_restore(tune_dir):
        tuner = tune.Tuner.restore(tune_dir, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=plan.param_space,
            tune_config=tune.TuneConfig(
                metric=spec.metric.name,
                mode=spec.metric.mode,
                search_alg=plan.search_alg,
                num_samples=plan.num_samples,
                max_concurrent_trials=max_concurrent or spec.resources.max_concurrent_trials,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=exp,
                verbose=0,
                callbacks=[ForwardingCallback()],
                failure_config=tune.FailureConfig(max_failures=1),
            ),
        )
    references = start_references(spec)  # full-data upper bound, alongside the trials
    with progress:
        grid = tuner.fit()
    failed = sum(1 for r in grid if r.error is not None)
    store = ResultStore(exp)
    rows = store.consolidate()
    if references is not None:
        finish_references(references)
    return SweepOutcome(exp, store.results_path, rows, failed, resumed)
