"""Trackers and schedulers from the sweep file: Tune's logger callbacks and ASHA.

``tracking:`` turns on Tune's own logger callbacks — TensorBoard (``TBXLoggerCallback``,
event files in each trial's folder), MLflow (``MLflowLoggerCallback``) and Weights & Biases
(``WandbLoggerCallback``) — which receive every result a trial reports: distillation step,
loss and probe accuracy while it distils, evaluations done while it evaluates, and the final
validation/test accuracy. None is required by default; each needs its package installed.

``scheduler: {name: asha}`` stops hopeless trials early on their probe accuracy
(``probe_val_acc``, reported every ``method.probe_every`` steps) with the distillation step
as ASHA's time axis. What a stop does (the trial's record, its distillation, a rerun) is in
:mod:`orchestrator.sweep.early_stop`; the trackers log the stopped trial's ``stopped_at_step``, and
MLflow ends its run as ``KILLED``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import UserError
from orchestrator.spec.model import SweepSpec
from orchestrator.storage import time_limit
from orchestrator.storage.uris import unreachable

#: the intermediate metric early-stopping schedulers read, and its time axis
PROBE_METRIC = "probe_val_acc"
TIME_ATTR = "distill_step"


def make_scheduler(spec: SweepSpec) -> Any:
    """Tune's scheduler for ``spec.scheduler`` (None: FIFO, every trial runs to the end).

    ASHA's rungs are at ``grace_period × reduction_factor^k`` distillation steps, up to ``max_t``.
    A trial is judged at the first probe at or after a rung, against the probes of the trials
    that reached that rung before it: below the top ``1/reduction_factor`` of them it is
    stopped. ``stop_last_trials=False``: Tune's default also stopped every trial whose step
    reached ``max_t`` — with ``max_t`` below a trial's ``iterations``, the best trials too, before
    their evaluation; here a trial past the last rung runs to its end.
    """
    if spec.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    s = spec.scheduler
    iterations = [v for v in spec.hyper_values("iterations") if isinstance(v, (int, float))]
    max_t = s.max_t or int(max(iterations, default=200))
    return ASHAScheduler(
        time_attr=TIME_ATTR,
        metric=PROBE_METRIC,
        mode="max",
        max_t=max_t,
        grace_period=min(s.grace_period, max_t),
        reduction_factor=s.reduction_factor,
        stop_last_trials=False,
    )


def _require(module: str, key: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"needs the {module!r} package (pip install {module})", key=key)


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's text, whole (MLflow's fix is often at its end, e.g.
    ``set `MLFLOW_ALLOW_FILE_STORE=true` to opt out of this exception``), else its type's name."""
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _check_mlflow(uri: str | None) -> None:
    """Reach the MLflow tracking server/store before any trial runs (one line, exit 2, if it cannot).

    A server (``http(s)://``) that refuses connections is said at once (MLflow's client retries it
    for minutes), one that does not answer after ``$DDX_URI_TIMEOUT`` seconds; any other failure is
    MLflow's own first line, whole — a ``file:`` store, which MLflow 3 refuses unless
    ``MLFLOW_ALLOW_FILE_STORE=true``, says so there."""
    from urllib.parse import urlsplit

    import mlflow
    from mlflow.tracking import MlflowClient

    where = uri or f"the default tracking URI ({mlflow.get_tracking_uri()})"

    def failed(why: str) -> UserError:
        return UserError(f"cannot use MLflow at {where!r}: {why}", key="tracking.mlflow")

    server = urlsplit(uri or mlflow.get_tracking_uri())
    remote = server.scheme in ("http", "https") and bool(server.hostname)
    if remote:
        problem = unreachable(server.hostname, server.port or (443 if server.scheme == "https" else 80))
        if problem is not None:
            raise failed(f"{problem}; start the tracking server or fix tracking.mlflow.tracking_uri")
    # a server is given a time limit; a local store is not (creating a new SQLite store takes seconds)
    limit = time_limit.uri_timeout_s()

    def ask() -> None:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)

    try:
        time_limit.within(limit, ask, name="ddx-mlflow-probe") if remote else ask()
    except time_limit.NoAnswer:
        raise failed(f"no answer within {limit:g} s (check the server; DDX_URI_TIMEOUT sets the wait)") from None
    except Exception as err:  # mlflow raises its own exception types for every backend
        raise failed(first_line(err)) from None


def check_trackers(spec: SweepSpec) -> None:
    """Every tracker ``spec.tracking`` asks for is installed here (the driver, where Tune's logger
    callbacks run) and MLflow's store answers: a :class:`UserError` naming the key otherwise.
    Needs no Ray: ``ddx sweep`` calls it before Ray starts."""
    t = spec.tracking
    if t.tensorboard:
        _require("tensorboardX", "tracking.tensorboard")
    if t.mlflow is not None:
        _require("mlflow", "tracking.mlflow")
        _check_mlflow(t.mlflow.tracking_uri)
    if t.wandb is not None:
        _require("wandb", "tracking.wandb")


def tracking_callbacks(spec: SweepSpec) -> list[Any]:
    """The Tune logger callbacks ``spec.tracking`` asks for; :func:`check_trackers` has checked them
    (``ddx sweep`` calls it before Ray starts: MLflow's store is asked once)."""
    t = spec.tracking
    out: list[Any] = []
    if t.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())
    if t.mlflow is not None:
        out.append(
            _mlflow_callback(
                tracking_uri=t.mlflow.tracking_uri,
                experiment_name=t.mlflow.experiment_name or spec.name,
                tags={"ddx_sweep": spec.name, "config_hash": spec.config_hash()},
            )
        )
    if t.wandb is not None:
        from ray.air.integrations.wandb import WandbLoggerCallback

        out.append(WandbLoggerCallback(project=t.wandb.project or spec.name, group=t.wandb.group))
    return out


def _mlflow_callback(**kwargs: Any) -> Any:
    """Tune's MLflow callback, ending the run of a trial the scheduler stopped as ``KILLED``: Tune
    ends it ``FINISHED``, like a trial that ran to its end. (Made here: importing Ray's MLflow
    integration imports mlflow, which a sweep without it must not pay for.)"""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from orchestrator.sweep.distill_job import STOPPED_AT

    class StoppedRunsKilled(MLflowLoggerCallback):
        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            super().log_trial_end(trial, failed=failed)
            if not failed and (trial.last_result or {}).get(STOPPED_AT) is not None:
                mark_killed(self.tracking_uri, self.experiment_name, str(trial))

    return StoppedRunsKilled(**kwargs)


def mark_killed(tracking_uri: str | None, experiment_name: str, trial_name: str) -> None:
    """Set the MLflow run of Tune trial ``trial_name`` (Tune's ``trial_name`` tag) to ``KILLED``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return
    quoted = trial_name.replace("'", "\\'")
    for run in client.search_runs([experiment.experiment_id], filter_string=f"tags.trial_name = '{quoted}'"):
        client.set_terminated(run.info.run_id, status="KILLED")


__all__ = ["PROBE_METRIC", "TIME_ATTR", "check_trackers", "make_scheduler", "tracking_callbacks"]
