"""Resume or start over: whether a sweep's experiment directory holds a sweep of the same spec,
and whether another sweep is running it now.

Needs only the storage (no Ray), so ``ddx sweep`` checks that the experiment directory is
ddx's (:func:`check_owned`) and a resumed sweep's saved spec before Ray starts, and hands the
answer to :func:`orchestrator.sweep.preflight.prepare`, which deletes the experiment on ``--fresh``
once Ray is up and every other check passed.

One sweep at a time per experiment: two runs of one experiment (two terminals, a job
submitted twice) each did all the work, and a ``--fresh`` one deleted the other's files while it
wrote them. :func:`hold_experiment` takes ``<experiment>/running.json`` (:data:`LEASE_FILE`), an
:class:`~orchestrator.storage.artifacts.LeaseLock` the sweep renews while it runs and deletes when it ends
(Ctrl-C and SIGTERM included); a second sweep is refused while it is live. A SIGKILLed sweep's
lease is free at once on the same host (its process is gone), elsewhere once it expires.
"""

from __future__ import annotations

import contextlib
import time

from orchestrator.errors import UserError
from orchestrator.spec.model import SweepSpec
from orchestrator.spec.plan import SPEC_FILE
from orchestrator.storage.artifacts import LeaseLock
from orchestrator.storage.locations import (
    delete_all_but,
    delete_dir,
    exists,
    has_entries,
    is_uri,
    join,
    missing_local_folders,
    read_json,
    remove_empty_folders,
)

LEASE_FILE = "running.json"
_LEASE_ONLY = frozenset({LEASE_FILE})
LEASE_TTL_S = 90.0  # renewed every 30 s; a holder gone on another host frees it after this long


class ExperimentLease:
    """A sweep's hold on its experiment. :meth:`release` also removes what taking it made while
    that holds nothing else — the experiment folder (and, on a local disk, the storage folders
    above it) — so a sweep stopped by bad input after it took the lease leaves nothing behind."""

    def __init__(self, exp: str) -> None:
        self.exp = exp
        self.made = missing_local_folders(exp)  # deepest first
        self.new_prefix = is_uri(exp) and not exists(exp)
        self.lock = LeaseLock(join(exp, LEASE_FILE), ttl=LEASE_TTL_S)

    def release(self) -> None:
        self.lock.release()
        remove_empty_folders(self.made)
        with contextlib.suppress(OSError):
            if self.new_prefix and not has_entries(self.exp):
                delete_dir(self.exp)  # an object store's empty folder marker


def hold_experiment(spec: SweepSpec) -> ExperimentLease:
    """Take the experiment's lease (release it when the sweep ends); a :class:`UserError` when
    another sweep holds it."""
    lease = ExperimentLease(spec.experiment_dir())
    lock = lease.lock
    if lock.try_acquire():
        return lease
    raise UserError(
        f"another ddx sweep is running this experiment ({describe_holder(lock.holder() or {})}); wait for it to "
        f"end or stop it (a killed sweep's lease lapses within {LEASE_TTL_S:.0f} s)",
        where=spec.experiment_dir(),
    )


def running_sweep(exp: str) -> str | None:
    """Who runs experiment ``exp`` now (:func:`describe_holder`), or None when no sweep holds it."""
    holder = LeaseLock(join(exp, LEASE_FILE), ttl=LEASE_TTL_S).holder()
    return None if holder is None else describe_holder(holder)


def describe_holder(holder: dict) -> str:
    """``process PID on HOST, since TIME`` from a lease's record."""
    host, _, rest = str(holder.get("owner", "?:?")).partition(":")
    try:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
    except (KeyError, TypeError, ValueError):
        since = "?"
    return f"process {rest.partition(':')[0]} on {host}, since {since}"


def check_owned(spec: SweepSpec) -> None:
    """A :class:`UserError` unless the experiment directory is ddx's to write into and, on
    ``--fresh``, to delete: absent, empty, or holding a saved spec (ddx writes it before
    anything else). A folder of other files at ``<storage>/<name>`` (``storage: ~`` and
    ``name: thesis``, say) was deleted whole by ``ddx sweep --fresh``."""
    exp = spec.experiment_dir()
    _refuse_foreign(exp, exists(join(exp, SPEC_FILE)))


def _refuse_foreign(exp: str, has_saved_spec: bool) -> None:
    if has_saved_spec or not has_entries(exp, ignore=_LEASE_ONLY):  # a sweep's lease alone
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
        delete_all_but(exp, keep=_LEASE_ONLY)  # the lease of the sweep that deletes
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
