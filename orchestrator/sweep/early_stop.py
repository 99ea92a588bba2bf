"""A trial the scheduler stops early: recorded, its distillation stopped, never run again.

ASHA (``scheduler:``) decides on a trial's probe result (``probe_val_acc`` at a ``distill_step``);
Tune then marks that result ``done`` and stops the trial. Tune's own stop reaches a function
trainable only as a ``SystemExit`` out of its next ``tune.report`` (Ray's
``_report_training_result``), and only once Tune stops or reuses its process; the distillation it
launched ran on to the end, and the trial stayed ``running`` in its record, so a rerun of the
sweep ran it again. So the driver acts at the decision itself (:class:`RecordStoppedTrials`, a
Tune callback, which sees the result before the trackers do):

* it writes the trial's record as ``stopped``, with its rung (the distillation step it was
  stopped at) and its metric (the probe accuracy ASHA judged), before Tune stops the trial;
* it adds :data:`~orchestrator.sweep.distill_job.STOPPED_AT` to that result, so the trackers log
  it, the progress display and the sweep's summary name the trial as stopped, and the MLflow
  callback ends its run as ``KILLED`` (:mod:`orchestrator.sweep.tracking`).

The distillation stops on its own: it reads the trial's record at every progress report and
ends, without a set, once it says ``stopped`` (:func:`orchestrator.sweep.distill_worker.stop_requested`);
a one-worker distillation is also cancelled at once by the trial when Tune's ``SystemExit``
unwinds it (:func:`orchestrator.sweep.distill_run.stream_distillation`). A rerun of the sweep
re-creates a grid's stopped trial, which finds its record and does nothing; Optuna is told the
stopped trial (:func:`orchestrator.sweep.run.trial_history`). ``--fresh`` deletes the records.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback

from orchestrator.storage.results import STOPPED, ResultStore
from orchestrator.sweep.distill_job import STOPPED_AT, Metrics
from orchestrator.sweep.tracking import PROBE_METRIC, TIME_ATTR


def stopped_by_scheduler(result: Metrics) -> bool:
    """Whether Tune stops the trial at ``result``: a distillation result carrying the scheduler's
    time and metric that Tune marked ``done`` (its scheduler said STOP; a trial's own results never
    carry ``done``)."""
    return (
        bool(result.get("done"))
        and result.get("phase") == "distill"
        and TIME_ATTR in result
        and (PROBE_METRIC in result)
    )


class RecordStoppedTrials(Callback):
    """Records each trial the scheduler stops (see the module docstring); holds only strings (Tune pickles it)."""

    def __init__(self, experiment_dir: str, swept: list[str]) -> None:
        self.experiment_dir = experiment_dir
        self.swept = list(swept)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if not stopped_by_scheduler(result):
            return
        rung, metric = int(result[TIME_ATTR]), float(result[PROBE_METRIC])
        key = result.get("trial_key")
        if key:
            config = {k: trial.config[k] for k in self.swept if k in trial.config}
            ResultStore(self.experiment_dir).write_trial_record(
                str(key),
                config,
                STOPPED,
                rung=rung,
                metric=None if math.isnan(metric) else metric,
                metric_name=PROBE_METRIC,
                trial_id=trial.trial_id,
            )
        result[STOPPED_AT] = rung  # the trackers and the display see it; it becomes the trial's last result


def describe_stop(result: Metrics) -> str:
    """``at distillation step 20 (probe_val_acc 31.2%)``, from a stopped trial's last result."""
    text = f"at distillation step {result.get(STOPPED_AT)}"
    metric = result.get(PROBE_METRIC)
    if isinstance(metric, (int, float)) and math.isfinite(metric):
        text += f" ({PROBE_METRIC} {100 * metric:.1f}%)"
    if result.get("phase") == "stopped":
        text += ", in an earlier run"
    return text


__all__ = ["RecordStoppedTrials", "describe_stop", "stopped_by_scheduler"]
