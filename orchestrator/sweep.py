"""Run a sweep: spec → Tune search → trials (prerequisites, distillation, evaluation tasks) → Parquet."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune
from rich.console import Console

from orchestrator import runtime
from orchestrator.errors import UserError
from orchestrator.progress import ForwardingCallback, SweepProgress
from orchestrator.reference import finish_references, start_references
from orchestrator.search_space import build_search
from orchestrator.spec import SweepSpec
from orchestrator.storage import (
    check_storage,
    delete_dir,
    exists,
    filesystem,
    is_uri,
    join,
    read_bytes,
    write_bytes_atomic,
)
from orchestrator.store import ResultStore
from orchestrator.tracking import make_scheduler, tracking_callbacks
from orchestrator.trial import code_columns, eval_jobs, run_trial

SPEC_FILE = "spec.json"


@dataclass
class TrialFailure:
    """A trial Tune recorded as errored (after its retries): its id, error line and log."""

    trial_id: str
    config: dict[str, Any]
    error: str
    log: str | None


@dataclass
class SweepOutcome:
    experiment_dir: str
    results_path: str
    rows: pd.DataFrame
    trial_failures: list[TrialFailure]
    resumed: bool
    stopped_early: list[str] = field(default_factory=list)

    @property
    def failed_rows(self) -> pd.DataFrame:
        if self.rows.empty:
            return self.rows
        return self.rows[self.rows["status"] != "ok"]

    @property
    def ok(self) -> bool:
        return not self.trial_failures and self.failed_rows.empty


def resolve_storage(spec: SweepSpec, storage: str | None) -> SweepSpec:
    """Apply ``--storage`` and make a local storage path absolute (Tune/Train change directory)."""
    target = storage or spec.storage
    if not is_uri(target):
        target = str(Path(target).expanduser().resolve())
    return spec.model_copy(update={"storage": target})


def describe_plan(spec: SweepSpec) -> dict[str, Any]:
    plan = build_search(spec)
    resolution = spec.dataset.resolution or 0
    jobs = eval_jobs(spec, resolution)
    return {
        "trials": plan.expected_trials,
        "evaluations_per_trial": len(jobs),
        "experiment_dir": spec.experiment_dir(),
        "algorithm": spec.algorithm,
        "swept": {k: d.model_dump(exclude_none=True) for k, d in spec.search.items()},
    }


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


def _tune_storage(exp: str) -> tuple[str, Any]:
    """``storage_path`` and ``storage_filesystem`` for Tune (explicit for URIs with query parameters)."""
    if not is_uri(exp):
        return exp, None
    fs, path = filesystem(exp)
    return path, fs


def _failures(grid: tune.ResultGrid) -> list[TrialFailure]:
    from orchestrator.trial import error_line

    out = []
    for result in grid:
        if result.error is None:
            continue
        log = None
        if result.path:
            log = f"{result.path}/error.txt"
        config = {k: v for k, v in (result.config or {}).items()}
        out.append(TrialFailure(str(result.metrics.get("trial_id", "")), config, error_line(result.error), log))
    return out


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
    check_storage(spec.storage, key="storage")
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
    tune_path, storage_fs = _tune_storage(join(exp, "tune"))
    storage_path, _ = _tune_storage(exp)
    concurrency = max_concurrent or spec.resources.max_concurrent_trials
    progress = SweepProgress(spec.metric.name, spec.metric.mode, plan.expected_trials, console)
    if resumed and tune.Tuner.can_restore(tune_path, storage_filesystem=storage_fs):
        tuner = tune.Tuner.restore(
            tune_path, trainable, resume_unfinished=True, resume_errored=True, storage_filesystem=storage_fs
        )
        set_max_concurrent(tuner, concurrency)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=plan.param_space,
            tune_config=tune.TuneConfig(
                search_alg=plan.search_alg,
                scheduler=make_scheduler(spec),
                num_samples=plan.num_samples,
                max_concurrent_trials=concurrency,
                reuse_actors=True,  # a trial driver's process is kept for the next trial: no start-up cost
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=storage_path,
                storage_filesystem=storage_fs,
                verbose=0,
                callbacks=[ForwardingCallback(), *tracking_callbacks(spec)],
                failure_config=tune.FailureConfig(max_failures=1),
            ),
        )
    references = start_references(spec)  # full-data upper bound, alongside the trials
    with progress:
        grid = tuner.fit()
    store = ResultStore(exp)
    rows = store.consolidate()
    if references is not None:
        finish_references(references)
    return SweepOutcome(exp, store.results_path, rows, _failures(grid), resumed, sorted(progress.stopped))


def set_max_concurrent(tuner: tune.Tuner, limit: int) -> None:
    """Apply ``--max-concurrent`` to a restored Tuner.

    ``Tuner.restore`` brings back the saved ``TuneConfig``; Ray has no public way to change
    its concurrency limit, so this sets the restored config's field (checked by a test, so a
    Ray upgrade that moves it fails loudly).
    """
    internal = getattr(tuner, "_local_tuner", None)
    config = getattr(internal, "_tune_config", None)
    if config is None or not hasattr(config, "max_concurrent_trials"):
        raise RuntimeError("this Ray version's Tuner has no restorable TuneConfig; cannot apply --max-concurrent")
    config.max_concurrent_trials = limit


__all__ = ["SweepOutcome", "TrialFailure", "describe_plan", "resolve_storage", "run_sweep", "set_max_concurrent"]
