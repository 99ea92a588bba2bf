"""Start an embedded local Ray, or connect to an existing cluster."""

from __future__ import annotations

import logging
import os
import signal
import warnings
from collections.abc import Callable
from pathlib import Path

import ray

from orchestrator.cluster import processes
from orchestrator.cluster.ray_config import (
    ADDRESS_FORMS,
    DRIVER_RESOURCE,
    LOCAL_DRIVER_SLOTS,
    RAY_DEFAULT_ENV,
    check_reachable,
)
from orchestrator.errors import UserError
from orchestrator.spec.model import Resources

#: ``RAY_AUTH_MODE`` when Ray was imported: Ray reads it then (a later change is not seen)
AUTH_MODE_AT_IMPORT = os.environ.get("RAY_AUTH_MODE")

#: whether this process started the Ray it uses (an embedded local Ray has a fixed size)
_embedded = False
#: whether this process uses the local Ray of ``ddx up`` (one machine, a fixed size too)
_kept_up = False
#: the processes below this one before it started its embedded Ray (None: it started none): those
#: that appeared since are Ray's
_before_embedded: set[int] | None = None


def is_embedded() -> bool:
    return _embedded


def is_fixed_local() -> bool:
    """Whether ddx runs on a local Ray of a fixed size (embedded, or kept up by ``ddx up``):
    work no node holds can never be placed, as no autoscaler adds one."""
    return _embedded or _kept_up


def trial_token(requested: dict[str, float] | None) -> dict[str, float]:
    """The resources a trial driver holds: the spec's, or the cluster's driver token.

    A driver that held a fraction of a CPU would keep a Train worker asking for every CPU
    of a node from ever being placed, so the default is the ``ddx_driver`` resource wherever
    the cluster has it, and ``{CPU: 0.01}`` only on clusters without it.
    """
    if requested is not None:
        return dict(requested)
    if ray.cluster_resources().get(DRIVER_RESOURCE, 0) > 0:
        return {DRIVER_RESOURCE: 0.01}
    return {"CPU": 0.01}


def unit_demands(res: Resources, token: dict[str, float]) -> dict[str, dict[str, float]]:
    """What one Train worker and one evaluation task reserve, keyed by the spec key that sets it."""
    worker = {"CPU": res.cpus_per_worker, "GPU": res.gpus_per_worker}
    if "CPU" in token:  # on one node, a CPU-token driver and its first worker share the node
        worker["CPU"] += token["CPU"]
    return {
        "resources.cpus_per_worker": worker,
        "resources.eval_cpus": {"CPU": res.eval_cpus, "GPU": res.eval_gpus},
    }


def group_demand(res: Resources, token: dict[str, float]) -> dict[str, dict[str, float]]:
    """What a trial's Train worker group reserves at once (``distill_workers`` workers, Train
    placing them together), keyed by the spec key that sets it; empty for one worker, which
    :func:`unit_demands` covers."""
    if res.distill_workers <= 1:
        return {}
    n = res.distill_workers
    return {
        "resources.distill_workers": {
            "CPU": n * res.cpus_per_worker + token.get("CPU", 0),
            "GPU": n * res.gpus_per_worker,
        }
    }


def _amounts(resources: dict[str, float], names: dict[str, float]) -> str:
    return ", ".join(f"{r} {resources.get(r, 0):g}" for r, a in names.items() if a > 0)


def misfits(
    demands: dict[str, dict[str, float]], groups: dict[str, dict[str, float]] | None = None
) -> list[tuple[str, str]]:
    """``(spec key, what it needs)`` for every piece of work this Ray cannot hold now.

    ``demands`` maps a spec key to what one unit of that work reserves (a Train worker, an
    evaluation task; see :func:`unit_demands`), which one node must hold; ``groups`` what must
    be held at once across the nodes (a trial's worker group; see :func:`group_demand`).
    """
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    out = []
    for key, demand in demands.items():
        if not any(all(node.get(r, 0) >= amount for r, amount in demand.items() if amount > 0) for node in nodes):
            have = max((node.get("CPU", 0) for node in nodes), default=0)
            wanted = _amounts(demand, demand)
            out.append((key, f"one unit needs {wanted} but no node of this Ray has that (largest: CPU {have:g})"))
    total = ray.cluster_resources() if groups else {}
    for key, demand in (groups or {}).items():
        if any(total.get(r, 0) < amount for r, amount in demand.items() if amount > 0):
            wanted, have = _amounts(demand, demand), _amounts(total, demand)
            out.append((key, f"a trial's Train workers need {wanted} at once but this Ray has {have} in all"))
    return out


def check_fits(demands: dict[str, dict[str, float]], groups: dict[str, dict[str, float]] | None = None) -> None:
    """On a fixed-size Ray (the embedded one), fail fast (one line) when work can never be
    placed; see :func:`misfits`."""
    for key, what in misfits(demands, groups):
        raise UserError(f"{what}; lower it or run on a bigger cluster (--address)", key=key)


#: the spec keys whose demand :func:`unit_demands` and :func:`group_demand` add a CPU token to
_SHARES_THE_TOKEN = ("resources.cpus_per_worker", "resources.distill_workers")


def _without_token(demands: dict[str, dict[str, float]], token: dict[str, float]) -> dict[str, dict[str, float]]:
    """``demands`` less the CPU token added to a worker's (which matters where driver and worker
    must share one node: a single-node Ray)."""
    return {
        key: {r: a - token.get(r, 0.0) if key in _SHARES_THE_TOKEN and r == "CPU" else a for r, a in demand.items()}
        for key, demand in demands.items()
    }


def check_placement(
    demands: dict[str, dict[str, float]],
    token: dict[str, float],
    warn: Callable[[str], None],
    groups: dict[str, dict[str, float]] | None = None,
) -> None:
    """Work this Ray cannot hold now (:func:`misfits`: ``demands`` one node must hold, ``groups``
    the nodes must hold at once): a :class:`UserError` (one line, exit 2) where it would wait for
    ever, a ``warn`` line where an autoscaler may add the node.

    On a fixed-size local Ray (embedded, ``ddx up``) any misfit is an error. On a joined cluster,
    a unit of work no node holds (its CPU-token driver aside, which may sit on another node) is an
    error when the cluster has no autoscaler, or when none of its autoscaler's node types holds
    it either (:func:`orchestrator.cluster.autoscaler.node_type_verdicts` asks, with a probe task
    per unit); one that a node type holds is a line saying the sweep waits for that node. Where
    Ray does not tell, the line says what to do if the cluster does not autoscale.
    """
    if is_fixed_local():
        check_fits(demands, groups)
        return
    found = misfits(demands, groups)
    if not found:
        return
    from orchestrator.cluster import autoscaler

    # what waits for ever whatever the nodes: the unit itself (a CPU-token driver need not share its node)
    certain = dict(misfits(_without_token(demands, token), _without_token(groups or {}, token)))
    scaling = autoscaler.has_autoscaler() if certain else None
    if scaling is False:
        key, what = next(iter(certain.items()))
        raise UserError(f"{what}, and this cluster has no autoscaler to add one; lower it or add such a node", key=key)
    units = {key: bare for key, bare in _without_token(demands, token).items() if key in certain}
    verdicts = autoscaler.node_type_verdicts(units) if scaling and units else {}
    for key, what in certain.items():
        if verdicts.get(key) is False:
            raise UserError(
                f"{what}, and no node type of the cluster's autoscaler has it either (Ray: {autoscaler.INFEASIBLE} "
                "this request); lower it or add a node type that holds it",
                key=key,
            )
    hint = f" or add the {DRIVER_RESOURCE!r} resource to the head node (cluster.yaml)" if "CPU" in token else ""
    for key, what in found:
        if verdicts.get(key):
            warn(f"{key}: {what} now; the sweep waits until the autoscaler adds such a node (a node type holds it)")
        else:
            warn(
                f"{key}: {what} now; the sweep waits until an autoscaler adds such a node (on a cluster that does "
                f"not autoscale it would wait for ever: stop it and lower {key}{hint})"
            )


def one_node_free_for(demand: dict[str, float]) -> bool:
    """Whether this Ray is a single node with ``demand`` free now: work placed there cannot
    make an autoscaler add a node, and lands where the sweep's tasks will run."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    free = ray.available_resources()
    return len(nodes) == 1 and all(free.get(r, 0) >= amount for r, amount in demand.items() if amount > 0)


def check_resources(requested: dict[str, float]) -> None:
    """Fail fast (one line) when the cluster lacks a resource the trials must hold."""
    available = ray.cluster_resources()
    for name, amount in requested.items():
        if available.get(name, 0) < amount:
            raise UserError(
                f"the Ray cluster has no {name!r} resource (has: {', '.join(sorted(available))}); add it to the "
                f"head node (cluster.yaml resources) or set resources.trial_resources to {{CPU: 0.01}}",
                key="resources.trial_resources",
            )


def apply_default_env() -> None:
    for k, v in RAY_DEFAULT_ENV.items():
        os.environ.setdefault(k, v)


def connect(address: str | None, verbose: bool = False, num_cpus: int | None = None, dashboard: bool = False) -> str:
    """Initialise Ray; returns a short description of where ddx runs.

    No address: the local Ray ``ddx up`` keeps, when one runs (:mod:`orchestrator.cluster.local_ray`),
    else an embedded local Ray, with its dashboard on 127.0.0.1 when ``dashboard`` (off by
    default: starting it costs about a second of every invocation). Either is a Ray ddx sized
    itself: Ray's default (``address=None``) would join the last Ray started on the machine
    with ``ray start``, or ``$RAY_ADDRESS``, whose size ddx can neither set nor check — the CLI
    reads ``RAY_ADDRESS`` as ``--address`` instead. An address (``auto``, ``HOST:PORT`` or
    ``ray://HOST:PORT``): connect to that cluster.
    """
    global _embedded, _kept_up, _before_embedded
    apply_default_env()
    if ray.is_initialized():
        return "existing Ray session"
    kept = None
    if not address:
        from orchestrator.cluster import local_ray

        kept = local_ray.running()
    # DDX_CACHE is a local path: it reaches the workers of an embedded Ray (same machine), never
    # the nodes of a cluster, where each node keeps its own cache ($DDX_CACHE of its `ray start`)
    local = () if address else ("DDX_CACHE",)
    env_vars = {k: os.environ[k] for k in (*RAY_DEFAULT_ENV, *local) if k in os.environ}
    runtime_env = {"env_vars": env_vars}
    if not verbose:
        warnings.filterwarnings("ignore")
        logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs = {
        "runtime_env": runtime_env,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "configure_logging": True,
    }
    try:
        if kept is not None:
            if kept.auth_mode != (AUTH_MODE_AT_IMPORT or "disabled"):
                raise UserError(
                    f"the local Ray of `ddx up` at {kept.address} needs RAY_AUTH_MODE={kept.auth_mode} before Ray "
                    "is imported (the ddx command sets it; in Python call "
                    "orchestrator.cluster.local_ray.prepare_client() first)",
                    key="RAY_AUTH_MODE",
                )
            ray.init(address=kept.address, **kwargs)
            _kept_up = True
            return f"the local Ray of `ddx up` ({kept.cpus} CPUs at {kept.address}; `ddx down` stops it)"
        if address:
            check_reachable(address)
            try:
                ray.init(address=address, **kwargs)
            except ValueError as err:  # Ray's parse of the address ("Invalid address format: …")
                raise UserError(f"not a Ray address: {address!r} ({err}); {ADDRESS_FORMS}", key="--address") from None
            return f"Ray cluster at {address}"
        processes.adopt_orphans()  # a Ray process that loses its parent stays below this one (found at shutdown)
        before = _before_embedded = processes.descendants()
        try:
            info = ray.init(
                address="local",
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                num_cpus=num_cpus,
                resources={DRIVER_RESOURCE: LOCAL_DRIVER_SLOTS},
                **kwargs,
            )
        except BaseException:  # cut short (Ctrl-C, SIGTERM): stop what it started, or its agents outlive us
            _before_embedded = None
            processes.stop(processes.descendants() - before)
            raise
    except ConnectionError as err:
        raise UserError(f"cannot connect to Ray at {address!r}: {err}", key="--address") from None
    _embedded = True
    cpus = int(ray.cluster_resources().get("CPU", 0))
    url = getattr(info, "dashboard_url", None) if dashboard else None
    where = f", dashboard http://{url}" if url else ""
    return f"embedded local Ray ({cpus} CPUs{where})"


class OneLineRecords(logging.Filter):
    """Ray's log records as one line each: the first line of the message, no traceback.

    Without ``--verbose`` the terminal gets Ray's errors and nothing more, and some of them carry
    a whole traceback — Tune logs one for every failed trial attempt, and another when it cannot
    save its state — where ddx prints each failure's own line at the end (``trial failed …``
    with the path of its ``error.txt``, which holds the traceback). The record is shortened, not
    dropped: a callback's or a tracker's error still shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage().strip()
        if record.exc_info or record.stack_info or "\n" in message:
            what = type(record.exc_info[1]).__name__ if record.exc_info else "error"
            first = message.splitlines()[0].rstrip(" :") if message else what
            record.msg, record.args = f"{first} (--verbose shows more)", None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def one_line_ray_logs() -> None:
    """Shorten the records of Ray's handlers (``ray`` and the loggers under it) to one line each
    (:class:`OneLineRecords`); call it after ``ray.init``, which sets those handlers up."""
    for handler in logging.getLogger("ray").handlers:
        if not any(isinstance(f, OneLineRecords) for f in handler.filters):
            handler.addFilter(OneLineRecords())


def is_autoscaler_monitor(args: list[str]) -> bool:
    """Whether a command line (:func:`~orchestrator.cluster.processes.command_line`) runs Ray's
    autoscaler monitor: a Python script ``monitor.py`` in Ray's ``autoscaler`` package."""
    return any(Path(arg).name == "monitor.py" and "autoscaler" in Path(arg).parts for arg in args)


def stop_autoscaler_monitor() -> bool:
    """Kill the embedded Ray's autoscaler monitor process now; True when one was stopped.

    ``ray.init`` starts the autoscaler's monitor on the head it creates, though a local Ray of a
    fixed size never scales, and Ray offers no public way to start a head without it.
    ``ray.shutdown`` stops its processes one after another, each with SIGTERM and up to 1 s of
    grace, and the monitor alone uses all of it (it reports its own termination first): about
    1 s of every shutdown (``benchmarks/shutdown_time.py``). Killing it first makes
    ``ray.shutdown`` skip it (it stops only processes still alive). The monitor is found among
    this process's children by its command line (:func:`is_autoscaler_monitor`), read from
    ``/proc``; where there is none, or Ray starts it otherwise, nothing is done and the usual
    shutdown follows.
    """
    me = os.getpid()
    found = [
        pid
        for pid in processes.descendants()
        if processes.parent(pid) == me and is_autoscaler_monitor(processes.command_line(pid))
    ]
    processes.stop(found, grace=0.0, signals=(signal.SIGKILL,))
    return bool(found)


def shutdown() -> None:
    """Disconnect from Ray; an embedded Ray's processes are stopped (its autoscaler monitor at once),
    a Ray of ``ddx up`` or a cluster keeps running.

    An embedded Ray leaves no process behind, whatever the exit: ``ray.shutdown`` stops the
    embedded Ray's own processes and the raylet tells its workers to exit, but does not wait for
    them (an idle one ends on its own, which on a busy machine can take seconds; a busy one may
    not end at all). So every process that appeared below this one since the embedded Ray started
    — read before ``ray.shutdown`` (the same process after it: same start time) and again after it
    (orphans included, see :func:`orchestrator.cluster.processes.adopt_orphans`) — that still runs
    is stopped (SIGTERM, then SIGKILL)."""
    global _embedded, _kept_up, _before_embedded
    before, _before_embedded = _before_embedded, None
    if ray.is_initialized():
        started: dict[int, int | None] = {}
        if _embedded:
            stop_autoscaler_monitor()
            # while the raylet still holds its workers
            started = {pid: processes.process_start(pid) for pid in processes.descendants() - (before or set())}
        ray.shutdown()
        left = {pid for pid, at in started.items() if at is not None and processes.process_start(pid) == at}
        if before is not None:
            left |= processes.descendants() - before
        processes.stop(left, grace=1.0)
    _embedded = _kept_up = False
