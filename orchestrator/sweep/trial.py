"""The Tune trainable: one trial = prerequisites → distil → evaluate → record (Parquet).

The trial is a thin driver holding only a token resource; the prerequisite tasks, the
distillation (a streaming task or a Train run: :mod:`orchestrator.sweep.distill_job`) and the
evaluation tasks reserve the real CPUs/GPUs, wherever the cluster has them. Everything a
remote process needs travels as a storage location or through Ray's object store.

Every piece of work is keyed by the trial's stable key (:func:`orchestrator.spec.plan.trial_key`):

* trials that share a key (hyper-parameters the components do not read) run the work once —
  the first holds the key's lease lock, the others wait for it and then find everything done;
* a re-run trial skips what was finished: a saved synthetic set is not distilled again, a
  saved distillation state is resumed, evaluation rows already written are not run again;
* a trial whose prerequisites or distillation fail (e.g. the loss became NaN) writes a
  ``failed`` row for each of its evaluations, carrying the error, and the sweep goes on;
* a trial the scheduler stopped (its record says ``stopped``: :mod:`orchestrator.sweep.early_stop`)
  writes no row; its distillation is cancelled, and a re-run trial of its key does nothing.

While it runs, the trial reports progress to Tune (``tune.report``): distillation step, loss
and probe accuracy, then evaluations done; the CLI shows it live and trackers log it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray import tune

from methods.records import JsonObject
from methods.registry import OBJECTIVES
from orchestrator.errors import error_line
from orchestrator.evaluation.jobs import EvalJob, row_key_of
from orchestrator.evaluation.sets import Evaluation, Evaluator, SetUnderEvaluation
from orchestrator.evaluation.tasks import TaskResources, failed_result, protocol_columns
from orchestrator.spec.metrics import TRIAL_METRICS
from orchestrator.spec.model import SweepSpec
from orchestrator.spec.trials import Sample, trial_config, trial_key
from orchestrator.storage.artifacts import ArtifactStore, LeaseLock, cache_root
from orchestrator.storage.locations import delete, delete_dir, exists, join, read_bytes, read_json
from orchestrator.storage.results import STOPPED, ResultStore, Row
from orchestrator.sweep import prerequisites
from orchestrator.sweep.distill_job import (
    OBJECTIVE_FIELDS,
    PREREQUISITE_FIELDS,
    STOPPED_AT,
    Card,
    DistillJob,
    Metrics,
    set_card_location,
)
from orchestrator.sweep.distill_run import failure_line, failure_log, run_train, stream_distillation

#: Ray retries of the one-worker distillation task after a lost process or node
DISTILL_TASK_RETRIES = 3


def _summary(rows: list[Row]) -> dict[str, float]:
    ok = [r for r in rows if r.get("status") == "ok"]

    def mean(col: str) -> float:
        vals = [float(r[col]) for r in ok if r.get(col) is not None and not math.isnan(float(r[col]))]
        return sum(vals) / len(vals) if vals else float("nan")

    return {
        **{metric: mean(metric) for metric in TRIAL_METRICS},  # the vocabulary of a sweep's metric.name
        "rows_ok": float(len(ok)),
        "rows_failed": float(len(rows) - len(ok)),
    }


def producing_report(missing: Mapping[str, tuple[int, int]]) -> Metrics:
    """What a trial reports while the prerequisite pieces the artifact store lacks are produced
    (``missing``: name → (pieces missing, pieces); see :func:`prerequisites.ensure`): only those
    prerequisites, with a count where some of their pieces are there already."""
    parts = [name if n == total else f"{name} ({n} of {total} pieces)" for name, (n, total) in missing.items()]
    return {"phase": "prerequisites", "prerequisites": ", ".join(parts)}


class TrialRun:
    """One trial's work, given its spec and its sample of the search (see the module docstring)."""

    def __init__(self, spec: SweepSpec, sample: Sample, code: dict[str, str], report: Callable) -> None:
        self.spec = spec
        self.trial_id = tune.get_context().get_trial_id() or "local"
        self.config = trial_config(spec, sample)
        self.key = trial_key(self.config)
        self.exp = spec.experiment_dir()
        self.store = ResultStore(self.exp)
        self.artifacts = ArtifactStore(cache_root(spec.storage))
        self.code = code
        self._report = report
        requires = OBJECTIVES.get(self.config.objective_name).requires
        self.names = prerequisites.needed(requires, spec.evaluation.label_modes)
        self.prerequisites = prerequisites.Prerequisites({n: spec.prerequisite_options(n) for n in self.names})
        res = spec.resources
        self.evaluation = Evaluation(
            protocol=spec.evaluation.protocol(),
            students=spec.evaluation.students(spec.seed),
            dataset=self.config.dataset,
            resources=TaskResources(res.eval_cpus, res.eval_gpus, res.eval_retries),
            store_root=self.artifacts.root,
            ars=spec.evaluation.ars,
        )
        self.produced = 0  # prerequisite pieces this trial produced (0 when every piece was reused)
        self.swept = {k: sample[k] for k in spec.search if k in sample}

    def record(self, status: str, **fields: Any) -> None:
        """This trial's record (swept values, status, final metric): what a resumed search is told."""
        self.store.write_trial_record(self.key, self.swept, status, **fields)

    def stopped_record(self) -> JsonObject | None:
        """This trial's record when the scheduler stopped it (now or in an earlier run), else None."""
        record = self.store.trial_record(self.key)
        return record if record is not None and record.get("status") == STOPPED else None

    # --- reporting ---------------------------------------------------------------------------
    def report(self, metrics: Metrics) -> None:
        self._report({**metrics, "trial_key": self.key})

    # --- the pieces ------------------------------------------------------------------------
    @property
    def train_dir(self) -> str:
        return join(self.exp, "train", self.key)

    def run(self) -> None:
        # a trial of the same key is working: wait, then find its work
        with LeaseLock(join(self.train_dir, "trial.lock")):
            stopped = self.stopped_record()
            if stopped is not None:  # the scheduler stopped it before: nothing to do (--fresh runs it again)
                last = {STOPPED_AT: stopped.get("rung"), stopped.get("metric_name", "metric"): stopped.get("metric")}
                self.report({"phase": "stopped", **last})
                return
            self.record("running")
            self._run()

    def _run(self) -> None:
        spec = self.spec
        planned = self.evaluation.students.jobs(spec.dataset.resolution or 0)
        try:
            if self.names:  # "producing …" is said only of the pieces the store lacks
                res = spec.resources
                self.prerequisites = prerequisites.ensure(
                    self.prerequisites.options,
                    self.config.dataset,
                    self.artifacts,
                    prerequisites.Resources(res.eval_cpus, res.eval_gpus, res.eval_retries),
                    on_produced=self._count_produced,
                    on_missing=lambda missing: self.report(producing_report(missing)),
                )
        except Exception as err:  # a prerequisite failed: record it, let the sweep go on
            self.fail(planned, f"distillation failed: {error_line(err)}")
            return
        try:
            card = self.distill()
        except Exception as err:  # the method failed (or its process died): record it, let the sweep go on
            where = self.workers_location
            self.fail(planned, f"distillation failed: {failure_line(err, where)}", failure_log(err, where))
            return
        if card is not None:  # None: the scheduler stopped the trial (its record says so)
            self.evaluate(card)

    def fail(self, planned: list[EvalJob], message: str, log: str | None = None) -> None:
        """A failed row for each planned evaluation that has none ``ok``, and the trial's record, saying
        ``message``; ``log``: where the worker that failed logged (``node:path``), if known."""
        self.record_failure(planned, message, log)
        self.record("failed", error=message, error_log=log)

    @property
    def workers_location(self) -> str:
        """Where the distillation's ranks record their processes and logs (see :class:`DistillJob`)."""
        return join(self.train_dir, "workers")

    def _count_produced(self, name: str, unit: int) -> None:
        self.produced += 1

    def distill(self) -> Card | None:
        """Distil the set unless it is saved already; return its card (config, extra, row columns),
        or None when the scheduler stopped the trial meanwhile (the distillation ended without a set)."""
        spec, syn = self.spec, self.store.synthetic_path(self.key)
        if not exists(syn):
            res = spec.resources
            requires = OBJECTIVES.get(self.config.objective_name).requires
            job = DistillJob(
                config=self.config,
                store_root=self.artifacts.root,
                state_location=join(self.train_dir, "state.pt"),
                synthetic_location=syn,
                prerequisites=self.prerequisites.only(requires),
                trial_key=self.key,
                stop_record=self.store.trial_record_path(self.key) if spec.scheduler is not None else "",
                workers_location=self.workers_location,
            )
            if res.distill_workers == 1:
                stream = stream_distillation(job, res.cpus_per_worker, res.gpus_per_worker, DISTILL_TASK_RETRIES)
                try:
                    for item in stream:
                        if not item.get("distill_done"):
                            self.report(item)  # Tune stopping the trial raises SystemExit here
                finally:
                    stream.close()  # stopped: cancels the task (no-op when it ended)
            else:
                run_train(
                    job,
                    run_name=f"trial-{self.key}",
                    storage_path=join(self.exp, "train-runs"),
                    workers=res.distill_workers,
                    cpus_per_worker=res.cpus_per_worker,
                    gpus_per_worker=res.gpus_per_worker,
                    report=self.report,  # Tune stopping the trial raises SystemExit here
                )
            if not exists(syn) and spec.scheduler is not None and self.stopped_record() is not None:
                return None  # the state stays: the last checkpoint before the stop
            if exists(job.state_location):
                delete(job.state_location)  # the set is saved; the resumable state is no longer needed
            delete_dir(self.workers_location)  # and where its processes logged
        card = set_card_location(syn)
        if exists(card):
            return read_json(card)
        # a set saved before cards existed: describe it from its tensors (imports torch here only)
        from methods.parameterizations import payload_from_bytes
        from orchestrator.sweep.distill_worker import set_card

        return set_card(payload_from_bytes(read_bytes(syn)))

    def base_columns(self, card: Card | None) -> Row:
        """The row's columns of this trial: the swept and fixed hyper-parameters of every option
        object it ran with, what the distillation resolved (the objective's row fields), the set's
        description and the prerequisites' columns."""
        spec, config = self.spec, self.config
        base: Row = {
            **config.columns(),
            "sweep": spec.name,
            "trial_id": self.trial_id,
            "trial_key": self.key,
            "objective": config.objective_name,
            "parameterization": config.parameterization_name,
            "dataset": config.dataset.name,
            "ipc": config.ipc,
            "distill_workers": spec.resources.distill_workers,
            "distill_seed": config.seed,
            "config_hash": self.key,
            "synthetic_path": self.store.synthetic_path(self.key),
            "prerequisite_pieces_produced": self.produced,
            **self.code,
        }
        if card is None:
            return base
        extra = card.get("extra", {})
        shape = card["config"]["shape"]
        described = card["describe"]
        base.update(
            parameterization=card["config"]["name"],
            ipc=int(shape["ipc"]),
            budget_scalars=int(described["budget_scalars"]),
            instances_per_class=int(described["instances_per_class"]),
            distill_resolution=int(shape["resolution"]),
            distill_workers=int(extra.get("world_size", spec.resources.distill_workers)),
            distill_seconds=float(extra.get("distill_seconds", float("nan"))),
        )
        base.update(extra.get(OBJECTIVE_FIELDS, {}))  # what the objective resolved (e.g. sre2l_stats: bn)
        described = extra.get(PREREQUISITE_FIELDS)  # computed where the distillation had the files
        if described is None:  # a set saved before that key existed
            described = self.prerequisites.only(OBJECTIVES.get(config.objective_name).requires).row_fields(
                self.artifacts
            )
        base.update(described)
        return base

    def record_failure(self, jobs: list[EvalJob], message: str, log: str | None = None) -> None:
        """A failed row for each evaluation that has no ``ok`` row yet (the error says why)."""
        base = self.base_columns(None)
        rows = [r for r in self.store.read_trial_rows(self.key) if r.get("status") == "ok"]
        done = {row_key_of(r) for r in rows}
        error = RuntimeError(message)
        protocol, dataset = self.evaluation.protocol, self.config.dataset.name
        for job in jobs:
            if job.key not in done:
                cols = protocol_columns(protocol, job, dataset, self.config.ipc)
                rows.append({**base, **job.columns(), **failed_result(error), "error_log": log, **cols})
        self.store.write_trial_rows(self.key, rows)
        self.report({"phase": "failed", "error": message, **_summary(rows)})

    def evaluate(self, card: Card) -> None:
        """Evaluate the set (what its row file does not hold yet), writing each row as it finishes."""
        found = [r for r in self.store.read_trial_rows(self.key) if r.get("status") == "ok"]
        shape = card["config"]["shape"]
        ref = ray.put(read_bytes(self.store.synthetic_path(self.key)))  # the saved file: tasks load it
        s = SetUnderEvaluation(
            self.key, ref, int(shape["ipc"]), int(shape["resolution"]), self.base_columns(card), found
        )
        total = 0

        def record(s: SetUnderEvaluation, job: EvalJob, row: Row) -> None:
            self.store.write_trial_rows(self.key, s.rows)
            summary = _summary(s.rows)
            self.report({"phase": "evaluate", "evals_done": len(s.rows), "evals_total": total, **summary})

        for_students = self.prerequisites.only(prerequisites.needed((), self.evaluation.students.label_modes))
        evaluator = Evaluator(dataclasses.replace(self.evaluation, prerequisites=for_students), record)
        total = len(found) + evaluator.submit(s)
        evaluator.drain()
        summary = _summary(s.rows)
        self.report({"phase": "done", **summary})
        metric = summary.get(self.spec.metric.name, float("nan"))
        self.record("done", metric=None if math.isnan(metric) else metric, **summary)


def run_trial(sample: Sample, spec_json: str, code: dict[str, str]) -> None:
    """The Tune function trainable."""
    spec = SweepSpec.model_validate_json(spec_json)
    TrialRun(spec, sample, code, tune.report).run()


__all__ = ["TrialRun", "run_trial"]
