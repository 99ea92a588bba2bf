"""What a joined cluster can add: whether an autoscaler runs, and whether one of its node types holds some work.

The driver never sees the cluster's YAML, and Ray has no API that lists an autoscaler's node
types. What Ray does expose:

* the autoscaler's status, which ``ray status`` prints: the monitor of every head writes it to
  the GCS key-value store each round, with the node types of its nodes (a head started without
  ``--autoscaling-config`` runs a read-only autoscaler that names each node's type after the
  node and adds none); an autoscaler v2 (KubeRay) sets its own flag instead;
* the autoscaler's verdict on a demand: every round it reads the cluster's pending demand, and
  one that no node type can hold becomes a cluster event (``Error: No available node types can
  fulfill resource request {'CPU': 2.0}. …``; ``ray list cluster-events``,
  :func:`ray.util.state.list_cluster_events`).

So :func:`node_type_verdicts` submits, for each unit of work no live node holds, a probe task
asking for exactly that (it does nothing, and is cancelled as soon as the verdict is in) and
reads the verdict: none of the node types holds it (the event), one does (the probe was
scheduled, or the autoscaler showed the demand in its status and raised nothing within a few
seconds), or unknown (no answer in time). Every read is guarded: where Ray changes what it
exposes, the answer is "unknown" and the sweep gets the warning it always had.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import time
from datetime import datetime
from typing import Any

import ray

#: the GCS key the monitor writes its status to (``ray._private.ray_constants.DEBUG_AUTOSCALING_STATUS``)
STATUS_KEY = "__autoscaling_status"
#: how the autoscalers (v1 and v2) word a demand that no node type holds
INFEASIBLE = "No available node types can fulfill"


def status() -> dict[str, Any] | None:
    """The monitor's last status report (what ``ray status`` shows), or None when unreadable."""
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(STATUS_KEY)
        return json.loads(raw) if raw else None
    except Exception:  # a Ray Client session, a Ray that moved the key: unknown
        return None


def _read_only(report: dict[str, Any]) -> bool:
    """Whether the report is of Ray's read-only autoscaler, which a head started without an
    autoscaling config runs: it only mirrors the nodes started by hand, each a node type of its
    own named after the node (``node_<node id>``), and never adds one."""
    mapping = report.get("node_type_mapping") or {}
    return bool(mapping) and all(node_type == f"node_{node}" for node, node_type in mapping.items())


def has_autoscaler(wait_s: float = 15.0, poll: float = 0.5) -> bool | None:
    """Whether an autoscaler that can add nodes runs for this cluster; None when Ray does not say
    within ``wait_s``.

    The monitor reports ``autoscaler_report`` in every round once it has the nodes' load: of
    the cluster's autoscaler, or of the read-only one of a cluster started by hand
    (:func:`_read_only`); a round that has the load (``usage``) but no report is a monitor
    without either. A head started seconds ago has no load yet: wait for a round that has."""
    with contextlib.suppress(Exception):
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        if is_autoscaler_v2(fetch_from_server=True):
            return True
    deadline = time.monotonic() + wait_s
    while True:
        report = status()
        if report is None:
            return None
        if "autoscaler_report" in report:
            return not _read_only(report["autoscaler_report"] or {})
        if (report.get("load_metrics_report") or {}).get("usage"):
            return False
        if time.monotonic() > deadline:
            return None
        time.sleep(poll)


def _positive(demand: dict[str, float]) -> dict[str, float]:
    return {r: float(a) for r, a in demand.items() if a > 0}


def _same(a: dict[str, float], b: dict[str, Any]) -> bool:
    try:
        return {r: float(v) for r, v in b.items() if float(v) > 0} == a
    except (TypeError, ValueError):
        return False


def _infeasible_events() -> list[tuple[str, float | None, list[dict[str, Any]]]]:
    """The autoscaler's events that name demands no node type holds: (id, when, demands)."""
    from ray.util.state import list_cluster_events

    events = list_cluster_events(
        address=ray.get_runtime_context().gcs_address, limit=10000, timeout=10, raise_on_missing_output=False
    )
    out = []
    for event in events:
        message = str(event.get("message", ""))
        if INFEASIBLE not in message:
            continue
        demands = []
        for literal in re.findall(r"\{[^{}]*\}", message):
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(literal)
                if isinstance(value, dict):
                    demands.append(value)
        try:
            when: float | None = datetime.fromisoformat(str(event.get("time"))).timestamp()
        except ValueError:
            when = None
        out.append((str(event.get("event_id", "")), when, demands))
    return out


@ray.remote
def _probe() -> None:
    """Nothing: a demand for the autoscaler to judge."""


def _probe_options(demand: dict[str, float]) -> dict[str, Any]:
    others = {r: a for r, a in _positive(demand).items() if r not in ("CPU", "GPU")}
    options: dict[str, Any] = {"num_cpus": demand.get("CPU", 0), "num_gpus": demand.get("GPU", 0)}
    if others:
        options["resources"] = others
    return {**options, "scheduling_strategy": "DEFAULT", "max_retries": 0}


def node_type_verdicts(
    demands: dict[str, dict[str, float]], wait_s: float = 40.0, quiet_s: float = 8.0, poll: float = 1.0
) -> dict[str, bool | None]:
    """For each unit of work (key → what one unit reserves) that no live node holds, whether a
    node type of the autoscaler holds it: False when the autoscaler says none does, True when
    one does (the probe was placed, or the autoscaler showed the demand ``quiet_s`` seconds ago
    and raised nothing), None when no verdict came within ``wait_s``."""
    start = time.time()
    try:
        before = {event_id for event_id, _, _ in _infeasible_events()}
    except Exception:
        return dict.fromkeys(demands)
    probes = {key: _probe.options(**_probe_options(d)).remote() for key, d in demands.items()}
    verdicts: dict[str, bool | None] = dict.fromkeys(demands)
    shown_at: dict[str, float] = {}
    try:
        while None in verdicts.values() and time.time() < start + wait_s:
            try:
                events = _infeasible_events()
            except Exception:
                events = []
            # a new event, or one the autoscaler raised shortly before (it repeats one only every 30 s)
            infeasible = [d for i, when, ds in events if i not in before or (when or 0) > start - 60 for d in ds]
            shown = [d for d, _ in ((status() or {}).get("load_metrics_report") or {}).get("resource_demand", [])]
            for key, demand in demands.items():
                if verdicts[key] is not None:
                    continue
                want = _positive(demand)
                if any(_same(want, d) for d in infeasible):
                    verdicts[key] = False
                elif ray.wait([probes[key]], timeout=0)[0]:
                    verdicts[key] = True  # a node that holds it joined
                elif any(isinstance(d, dict) and _same(want, d) for d in shown):
                    shown_at.setdefault(key, time.time())
                    verdicts[key] = True if time.time() - shown_at[key] > quiet_s else None
            if None in verdicts.values():
                time.sleep(poll)
    finally:
        for ref in probes.values():
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
    return verdicts


__all__ = ["INFEASIBLE", "STATUS_KEY", "has_autoscaler", "node_type_verdicts", "status"]
