"""The processes this one started, and stopping them: for a start of Ray cut short.

``ray.init`` starts Ray's processes one after another (GCS, dashboard head, raylet; the raylet
starts its dashboard and runtime-env agents). Interrupted part-way — Ctrl-C, SIGTERM — it
neither finishes nor cleans up, and the agents of a raylet that is gone outlive the command,
for good (measured: two Python processes per interrupted start). :func:`descendants`, read
before and after, tells which processes appeared below this one; :func:`stop` ends them. Linux
reads ``/proc``; elsewhere nothing is found and nothing is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable


def descendants(pid: int | None = None) -> set[int]:
    """Every process below ``pid`` (default: this one) now, at any depth, from ``/proc``."""
    root = os.getpid() if pid is None else pid
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    children: dict[int, list[int]] = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])  # the name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def stop(pids: Iterable[int], grace: float = 2.0, signals: Iterable[int] = (signal.SIGTERM,)) -> None:
    """Send each process ``signals`` (default SIGTERM), then SIGKILL those still running after
    ``grace`` seconds; returns once all have ended (or 2 s after the SIGKILL)."""
    pending = set(pids)
    steps = [(sig, grace) for sig in signals if sig != signal.SIGKILL] + [(signal.SIGKILL, 2.0)]
    for sig, wait in steps:
        for pid in pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            pending = {p for p in pending if _alive(p)}
            if pending:
                time.sleep(0.02)
        if not pending:
            return


def parent(pid: int) -> int | None:
    """The id of process ``pid``'s parent; None when it is not visible here (or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def command_line(pid: int) -> list[str]:
    """The arguments process ``pid`` was started with (``/proc/<pid>/cmdline``); empty when it is
    gone, not visible here, or there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, ``/proc/<pid>/stat``); None when it
    is not visible here (or there is no ``/proc``). Tells a process from a later one that reuses its id."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # from field 3 (the state) on
    return int(fields[19]) if len(fields) > 19 else None


__all__ = ["command_line", "descendants", "parent", "process_start", "stop"]
