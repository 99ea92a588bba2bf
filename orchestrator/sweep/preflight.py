"""Before a sweep runs: check what it needs, decide fresh or resumed, save its spec, warm a worker.

Everything here needs only a connected Ray and the storage — not Tune, not pandas — so
``ddx sweep`` runs it straight after Ray starts (it checks that the storage can be written
before that, :func:`orchestrator.storage.locations.check_storage`, which needs no Ray). Bad input (a
resource the cluster lacks, a saved spec that differs) stops the sweep with one line before
anything is started; good input starts the warm-up worker (:mod:`orchestrator.sweep.warm_up`)
about a second earlier than if it waited for Tune's import.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from orchestrator.cluster import runtime
from orchestrator.spec.model import SweepSpec
from orchestrator.spec.plan import SPEC_FILE
from orchestrator.storage.locations import join, write_bytes_atomic
from orchestrator.sweep import warm_up
from orchestrator.sweep.resume import check_resume


def prepare(spec: SweepSpec, fresh: bool, warn: Callable[[str], None] = print, resumed: bool | None = None) -> bool:
    """Check the cluster, fix fresh vs resumed (True: resumed), save the spec and, on
    one machine with the CPUs free, start the warm-up. Raises :class:`UserError` on bad input;
    ``warn`` gets a line for work a cluster cannot place yet (an autoscaler may add the node).
    ``resumed``: what :func:`~orchestrator.sweep.resume.check_resume` already said of a sweep that is
    not ``fresh`` (``ddx sweep`` asks before Ray starts); None reads the saved spec here."""
    token = runtime.trial_token(spec.resources.trial_resources)
    runtime.check_resources(token)
    demands = runtime.unit_demands(spec.resources, token)
    runtime.check_placement(demands, token, warn, runtime.group_demand(spec.resources, token))
    if fresh or resumed is None:
        resumed = check_resume(spec, fresh)  # --fresh deletes the experiment only now
    # the input is good: warm a worker for the first trial's tasks while Tune starts (one machine only,
    # in the trials' runtime environment as the last trial here recorded it)
    env = warm_up.trial_task_env()
    cpus = spec.resources.cpus_per_worker
    if env is not None and spec.resources.distill_workers == 1 and runtime.one_node_free_for({"CPU": cpus}):
        warm_up.start(spec.dataset_options(), cpus, env)
    write_bytes_atomic(
        join(spec.experiment_dir(), SPEC_FILE),
        json.dumps({"config_hash": spec.config_hash(), "spec": spec.model_dump(mode="json")}, indent=2).encode(),
    )
    return resumed
