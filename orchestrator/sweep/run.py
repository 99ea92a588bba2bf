"""Run a sweep: spec → Tune search → trials (prerequisites, distillation, evaluation tasks) → Parquet."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from ray import tune
from rich.console import Console

from orchestrator.cluster import runtime
from orchestrator.errors import error_line
from orchestrator.provenance import versions
from orchestrator.spec.model import SweepSpec
from orchestrator.spec.plan import describe_plan, resolve_storage
from orchestrator.spec.trials import Sample
from orchestrator.storage.locations import filesystem, is_uri, join
from orchestrator.storage.results import STOPPED, ResultStore
from orchestrator.sweep import warm_up
from orchestrator.sweep.early_stop import RecordStoppedTrials
from orchestrator.sweep.progress import FINAL_PHASES, ForwardingCallback, SweepProgress
from orchestrator.sweep.search_space import PastTrial, SearchPlan, build_search
from orchestrator.sweep.tracking import make_scheduler, tracking_callbacks
from orchestrator.sweep.trial_entry import run_trial


@dataclass
class TrialFailure:
    """A trial Tune recorded as errored (after its retries): its id, error line and log."""

    trial_id: str
    config: Sample
    error: str
    log: str | None


@dataclass
class SweepOutcome:
    experiment_dir: str
    results_path: str
    rows: pd.DataFrame
    trial_failures: list[TrialFailure]
    resumed: bool
    #: the trials the scheduler stopped (now or in an earlier run), one line each:
    #: ``ID KEY was stopped early by the scheduler at distillation step N (probe_val_acc …)``
    stopped_early: list[str] = field(default_factory=list)
    #: trials that neither finished nor failed: the sweep was interrupted (Ctrl-C) before them
    unfinished: int = 0

    @property
    def failed_rows(self) -> pd.DataFrame:
        if self.rows.empty:
            return self.rows
        return self.rows[self.rows["status"] != "ok"]

    @property
    def ok(self) -> bool:
        return not self.trial_failures and self.failed_rows.empty and not self.unfinished


def _tune_storage(exp: str) -> tuple[str, Any]:
    """``storage_path`` and ``storage_filesystem`` for Tune (explicit for URIs with query parameters)."""
    if not is_uri(exp):
        return exp, None
    fs, path = filesystem(exp)
    return path, fs


def _failures(grid: tune.ResultGrid) -> list[TrialFailure]:
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


def _unfinished(grid: tune.ResultGrid, plan: SearchPlan, stopped_early: set[str]) -> int:
    """Trials of this run that neither finished nor failed, counting those never started.

    On Ctrl-C (SIGINT, or SIGTERM, which the CLI turns into it) Tune stops the experiment and
    ``Tuner.fit`` returns normally, the rest of its trials pending. A running trial it stopped
    may be reported *terminated* like a finished one (a trial stopped seconds after its start
    was, and the sweep exited 0 with no rows), so a trial counts as finished only by its own
    last report — phase ``done`` or ``failed`` — or by an error, or when the scheduler stopped it
    early (``stopped_early``: trial ids)."""

    def finished(result: Any) -> bool:
        metrics = result.metrics or {}
        return (
            result.error is not None
            or metrics.get("phase") in FINAL_PHASES
            or str(metrics.get("trial_id", "")) in stopped_early
        )

    return sum(not finished(r) for r in grid) + max(0, plan.trials_this_run - len(grid))


def run_sweep(
    spec: SweepSpec,
    resumed: bool,
    max_concurrent: int | None = None,
    console: Console | None = None,
) -> SweepOutcome:
    """Run (or resume) the sweep on the Ray session already connected, after
    :func:`orchestrator.sweep.preflight.prepare` (which checked it and says whether it resumes) and
    :func:`orchestrator.sweep.tracking.check_trackers`."""
    console = console or Console()
    token = runtime.trial_token(spec.resources.trial_resources)
    exp = spec.experiment_dir()
    history = trial_history(exp) if resumed else []
    plan = build_search(spec, history)
    recorder = warm_up.EnvRecorder.here() if runtime.one_node_free_for({}) else None  # for the next warm-up
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, spec_json=spec.model_dump_json(), code=versions(), env_recorder=recorder),
        token,
    )
    storage_path, storage_fs = _tune_storage(join(exp, "tune"))
    progress = SweepProgress(spec.metric.name, spec.metric.mode, plan.expected_trials, console)
    tuner = tune.Tuner(
        trainable,
        param_space=plan.param_space,
        tune_config=tune_config(spec, plan, max_concurrent),
        run_config=tune.RunConfig(
            name=time.strftime("run-%Y%m%d-%H%M%S"),  # one Tune experiment per invocation
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            verbose=0,
            # the stop recorder before the trackers: they log the stopped result it marks
            callbacks=[ForwardingCallback(), RecordStoppedTrials(exp, list(spec.search)), *tracking_callbacks(spec)],
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    references = None
    if spec.evaluation.reference is not None:  # the full-data upper bound, alongside the trials
        from orchestrator.evaluation.reference import start_references

        references = start_references(spec)
    failures: list[TrialFailure] = []
    unfinished = 0
    if plan.num_samples > 0:  # a resumed Optuna sweep may have every sample finished already
        with progress:
            grid = tuner.fit()
        failures, unfinished = _failures(grid), _unfinished(grid, plan, set(progress.stopped))
    store = ResultStore(exp)
    rows = store.consolidate()
    if references is not None:
        from orchestrator.evaluation.reference import finish_references

        finish_references(references)
    stopped = [
        f"{trial} {progress.keys.get(trial, '')[:8]} was stopped early by the scheduler {why}"
        for trial, why in sorted(progress.stopped.items())
    ]
    return SweepOutcome(exp, store.results_path, rows, failures, resumed, stopped, unfinished)


def tune_config(spec: SweepSpec, plan: SearchPlan, max_concurrent: int | None) -> tune.TuneConfig:
    """The Tuner's settings; ``--max-concurrent`` wins over the spec, on a fresh or a resumed sweep alike."""
    return tune.TuneConfig(
        search_alg=plan.search_alg,
        scheduler=make_scheduler(spec),
        num_samples=plan.num_samples,
        max_concurrent_trials=max_concurrent or spec.resources.max_concurrent_trials,
        reuse_actors=True,  # a trial driver's process is kept for the next trial: no start-up cost
    )


def trial_history(exp: str) -> list[PastTrial]:
    """Every trial run before: its swept values and final metric (None: unfinished or failed); a
    trial the scheduler stopped with the probe accuracy it was stopped on, marked ``pruned``."""
    out = []
    for record in ResultStore(exp).trial_records():
        status = record.get("status")
        value = record.get("metric") if status in ("done", STOPPED) else None
        out.append(PastTrial(record["config"], None if value is None else float(value), pruned=status == STOPPED))
    return out


__all__ = [
    "SweepOutcome",
    "TrialFailure",
    "describe_plan",
    "resolve_storage",
    "run_sweep",
    "trial_history",
    "tune_config",
]
