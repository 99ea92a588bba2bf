"""The processes this one started, and stopping them: what an embedded Ray leaves behind.

``ray.init`` starts Ray's processes one after another (GCS, dashboard head, raylet; the raylet
starts its dashboard and runtime-env agents, then the worker processes). Interrupted part-way —
Ctrl-C, SIGTERM — it neither finishes nor cleans up, and the agents of a raylet that is gone
outlive the command, for good (measured: two Python processes per interrupted start). And
``ray.shutdown`` stops the raylet, which tells its workers to exit, but does not wait for them:
a worker that does not end (measured: evaluation workers of a sweep stopped by Ctrl-C, each
holding GBs, as orphaned ``ray::IDLE`` processes) outlives the command. :func:`descendants`,
read before and after, tells which processes appeared below this one; :func:`stop` ends them;
:func:`adopt_orphans` makes the processes below this one that lose their parent (a worker
whose raylet died first) stay below it, so that they are found too. Linux reads ``/proc``;
elsewhere nothing is found and nothing is stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable

#: ``prctl`` option that makes a process the reaper of its orphaned descendants (linux/prctl.h)
PR_SET_CHILD_SUBREAPER = 36


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


def adopt_orphans() -> bool:
    """Make this process the parent of every process below it that loses its own (Linux 3.4+).

    Without it an orphan is re-parented to init (pid 1) and :func:`descendants` no longer sees
    it: Ray's workers whose raylet has died — a job scheduler's SIGTERM to the whole process
    group, a crashed raylet — were missed. Returns whether it took effect (False elsewhere). An
    adopted process that ends stays a zombie until :func:`stop` (or this process's exit) reaps it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is an ended child of this process (an adopted orphan)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def stop(pids: Iterable[int], grace: float = 2.0, signals: Iterable[int] = (signal.SIGTERM,)) -> None:
    """Send each process ``signals`` (default SIGTERM), then SIGKILL those still running after
    ``grace`` seconds; returns once all have ended (or 2 s after the SIGKILL). An ended child of
    this process (an adopted orphan, :func:`adopt_orphans`) is reaped."""
    pids = set(pids)
    pending = {p for p in pids if alive(p)}
    steps = [(sig, grace) for sig in signals if sig != signal.SIGKILL] + [(signal.SIGKILL, 2.0)]
    for sig, wait in steps:
        for pid in pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            pending = {p for p in pending if alive(p)}
            if pending:
                time.sleep(0.02)
        if not pending:
            break
    for pid in pids:
        _reap(pid)


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


def stream_file(fd: int) -> str | None:
    """The file this process's ``fd`` writes to (Ray points a worker's stdout and stderr at its log
    files); None when it is not a file or cannot be told (no ``/proc``)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return target if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) else None


def log_location() -> str | None:
    """Where this process's stderr goes, as ``node:path`` (the node's IP in a Ray worker, else the
    host name): a Ray worker's ``…/logs/worker-….err``, which holds its tracebacks. None when its
    stderr is no file."""
    path = stream_file(2)
    if path is None:
        return None
    try:
        import ray

        node = ray.util.get_node_ip_address() if ray.is_initialized() else socket.gethostname()
    except Exception:  # Ray not importable, or not in a worker: the host is enough
        node = socket.gethostname()
    return f"{node}:{path}"


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


__all__ = [
    "adopt_orphans",
    "alive",
    "command_line",
    "descendants",
    "log_location",
    "parent",
    "process_start",
    "stop",
    "stream_file",
]
