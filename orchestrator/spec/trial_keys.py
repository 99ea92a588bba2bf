"""A trial's hyper-parameters and its stable key — pure functions (no Ray), shared by the
Tune trainable and the plan that ``ddx validate`` / ``ddx sweep --dry-run`` print."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from methods.distill.trial import TrialOptions
from orchestrator.spec.sweep_file import SweepBase, keys_read_by

#: hidden grid axis that turns ``num_samples`` repeats of a grid into distinct trials
REPEAT_KEY = "repeat"


def trial_hyper(spec: SweepBase, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's flat hyper-parameters: fixed ``method`` values plus its sample.

    Keys the trial's objective and parameterization do not read are dropped, so e.g. the
    pixel reference of a neural-field width×depth grid is one trial key, distilled once.
    """
    hp: dict[str, Any] = {
        "parameterization": TrialOptions.parameterization,
        "distill_arch": TrialOptions.distill_arch,
    }
    hp.update(spec.method)
    hp.update({k: v for k, v in config.items() if k in spec.search})
    read = keys_read_by(hp["objective"], hp["parameterization"])
    hp = {k: v for k, v in hp.items() if k in read}
    hp[REPEAT_KEY] = int(config.get(REPEAT_KEY, 0))
    return hp


def trial_key(spec: SweepBase, hp: dict[str, Any]) -> str:
    """A stable identity for a trial: hash of the spec's result-relevant body and the trial's values.

    Rows, synthetic sets and Train checkpoints are keyed by it, so a resumed or re-created
    trial finds its earlier work even when Tune's own experiment state was lost.
    """
    body = json.dumps({"spec": spec.config_hash(), "hp": hp}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


__all__ = ["REPEAT_KEY", "trial_hyper", "trial_key"]
