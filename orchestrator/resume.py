"""Resume or start over: whether a sweep's experiment directory holds a sweep of the same spec.

Needs only the storage (no Ray), so ``ddx sweep`` checks that the experiment directory is
ddx's (:func:`check_owned`) and a resumed sweep's saved spec before Ray starts, and hands the
answer to :func:`orchestrator.preflight.prepare`, which deletes the experiment on ``--fresh``
once Ray is up and every other check passed.
"""

from __future__ import annotations

from orchestrator.errors import UserError
from orchestrator.plan import SPEC_FILE
from orchestrator.spec import SweepSpec
from orchestrator.storage import delete_dir, exists, has_entries, join, read_json


def check_owned(spec: SweepSpec) -> None:
    """A :class:`UserError` unless the experiment directory is ddx's to write into and, on
    ``--fresh``, to delete: absent, empty, or holding a saved spec (ddx writes it before
    anything else). A folder of other files at ``<storage>/<name>`` (``storage: ~`` and
    ``name: thesis``, say) was deleted whole by ``ddx sweep --fresh``."""
    exp = spec.experiment_dir()
    _refuse_foreign(exp, exists(join(exp, SPEC_FILE)))


def _refuse_foreign(exp: str, has_saved_spec: bool) -> None:
    if has_saved_spec or not has_entries(exp):
        return
    raise UserError(
        f"{exp} holds files but no {SPEC_FILE}, so it is not a ddx experiment: ddx neither writes into it nor "
        "deletes it (--fresh); choose another sweep name or storage, or move those files",
        key="name",
    )


def check_resume(spec: SweepSpec, fresh: bool) -> bool:
    """Decide between a new experiment and resuming one; returns True when resuming.

    ``fresh`` deletes the experiment directory — only one ddx made (:func:`check_owned`, checked
    here too, where the deletion is). Resuming needs the saved spec to be the same one (its
    config hash): rows made under other settings must never mix into one table.
    """
    exp = spec.experiment_dir()
    saved = join(exp, SPEC_FILE)
    has_saved = exists(saved)
    _refuse_foreign(exp, has_saved)
    if fresh:
        delete_dir(exp)
        return False
    if not has_saved:
        return False
    previous = read_json(saved, fix="restore it, or run with --fresh to start over (the experiment is deleted)")
    if previous.get("config_hash") != spec.config_hash():
        raise UserError(
            f"the sweep in {exp} was started from a different spec (hash {previous.get('config_hash')} ≠ "
            f"{spec.config_hash()}); run with --fresh to start over or rename the sweep",
            key="name",
        )
    return True
