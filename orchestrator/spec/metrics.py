"""The metrics a trial reports to Tune: the vocabulary of a sweep's ``metric.name``.

Each trial reports the mean over its evaluations of the validation accuracy (``val_acc``, the
split carved from train: what sweeps should select on) and of the test accuracy
(``test_acc``). ``orchestrator/sweep/trial.py`` reports exactly these keys.
"""

from __future__ import annotations

from typing import Literal, get_args

TrialMetric = Literal["val_acc", "test_acc"]
TRIAL_METRICS: tuple[str, ...] = get_args(TrialMetric)

__all__ = ["TRIAL_METRICS", "TrialMetric"]
