"""The Tune trainable's entry point, importable without torch.

The sweep driver names the trainable by this module; the trial's own process imports
:mod:`orchestrator.sweep.trial` (and with it torch and the methods) when it first runs a trial, so
the driver process — which only plans, schedules and consolidates — never loads them.
"""

from __future__ import annotations

from typing import Any


def run_trial(config: dict[str, Any], spec_json: str, code: dict[str, str]) -> None:
    """The Tune function trainable: one trial (see :func:`orchestrator.sweep.trial.run_trial`)."""
    from orchestrator.sweep.trial import run_trial as run

    run(config, spec_json, code)
