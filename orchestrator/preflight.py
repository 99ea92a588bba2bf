"""Before a sweep runs: check what it needs, decide fresh or resumed, save its spec, warm a worker.

Everything here needs only a connected Ray and the storage — not Tune, not pandas — so
``ddx sweep`` runs it straight after Ray starts (it checks that the storage can be written
before that, :func:`orchestrator.storage.check_storage`, which needs no Ray). Bad input (a
resource the cluster lacks, a saved spec that differs) stops the sweep with one line before
anything is started; good input starts the warm-up worker (:mod:`orchestrator.warm_up`)
about a second earlier than if it waited for Tune's import.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from orchestrator import runtime, warm_up
from orchestrator.errors import UserError
from orchestrator.plan import SPEC_FILE
from orchestrator.spec import SweepSpec
from orchestrator.storage import delete_dir, exists, join, read_json, write_bytes_atomic


def check_resume(spec: SweepSpec, fresh: bool) -> bool:
    """Decide between a new experiment and resuming one; returns True when resuming.

    ``fresh`` deletes the experiment directory. Resuming needs the saved spec to be the same
    one (its config hash): rows made under other settings must never mix into one table.
    """
    exp = spec.experiment_dir()
    saved = join(exp, SPEC_FILE)
    if fresh:
        delete_dir(exp)
        return False
    if not exists(saved):
        return False
    previous = read_json(saved, fix="restore it, or run with --fresh to start over (the experiment is deleted)")
    if previous.get("config_hash") != spec.config_hash():
        raise UserError(
            f"the sweep in {exp} was started from a different spec (hash {previous.get('config_hash')} ≠ "
            f"{spec.config_hash()}); run with --fresh to start over or rename the sweep",
            key="name",
        )
    return True


def prepare(spec: SweepSpec, fresh: bool, warn: Callable[[str], None] = print) -> bool:
    """Check the cluster, fix fresh vs resumed (True: resumed), save the spec and, on
    one machine with the CPUs free, start the warm-up. Raises :class:`UserError` on bad input;
    ``warn`` gets a line for work a cluster cannot place yet (an autoscaler may add the node)."""
    token = runtime.trial_token(spec.resources.trial_resources)
    runtime.check_resources(token)
    demands = runtime.unit_demands(spec.resources, token)
    groups = runtime.group_demand(spec.resources, token)
    if runtime.is_fixed_local():
        runtime.check_fits(demands, groups)
    else:
        for line in runtime.misfit_warnings(demands, token, groups):
            warn(line)
    resumed = check_resume(spec, fresh)
    # the input is good: warm a worker for the first trial's tasks while Tune starts (one machine only)
    if spec.resources.distill_workers == 1 and runtime.one_node_free_for({"CPU": spec.resources.cpus_per_worker}):
        warm_up.start(spec.dataset.model_dump(), spec.resources.cpus_per_worker)
    write_bytes_atomic(
        join(spec.experiment_dir(), SPEC_FILE),
        json.dumps({"config_hash": spec.config_hash(), "spec": spec.model_dump(mode="json")}, indent=2).encode(),
    )
    return resumed
