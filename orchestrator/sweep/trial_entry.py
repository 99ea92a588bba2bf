"""The Tune trainable's entry point, importable without torch.

The sweep driver names the trainable by this module; the trial's own process imports
:mod:`orchestrator.sweep.trial` (and with it torch and the methods) when it first runs a trial, so
the driver process — which only plans, schedules and consolidates — never loads them.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.spec.trials import Sample


def run_trial(
    config: Sample, spec_json: str, code: dict[str, str], env_recorder: Callable[[], None] | None = None
) -> None:
    """The Tune function trainable: one trial (see :func:`orchestrator.sweep.trial.run_trial`).
    ``env_recorder`` (on a one-node Ray): records the trial's runtime environment first, for the
    next sweep's warm-up (:class:`orchestrator.sweep.warm_up.EnvRecorder`)."""
    if env_recorder is not None:
        env_recorder()
    from orchestrator.sweep.trial import run_trial as run

    run(config, spec_json, code)
