"""A local Ray that ddx keeps running between commands (``ddx up`` / ``ddx down``).

Every ``ddx sweep`` on the embedded default starts a Ray of its own and stops it at the end:
about 4–5 s of each invocation on 2 CPUs go to Ray's start (its GCS, the dashboard head it
waits for, the raylet waiting for its agents), none of it the sweep's work. A researcher who
runs sweep after sweep on one machine can keep one Ray up instead: ``ddx up`` starts it as
``ray start --head --block`` in a process group of its own and records it in
``$DDX_CACHE/local-ray.json``; ``ddx sweep`` and ``ddx evaluate`` without ``--address`` then
use it (and say so); ``ddx down`` stops the whole group.

It is started the way ddx starts its embedded Ray: every address on 127.0.0.1, no dashboard
unless asked for (on 127.0.0.1), no usage stats, Ray's token authentication (``RAY_AUTH_MODE``
``token`` unless the environment sets it), and the ``ddx_driver`` resource for trial drivers —
``ray start``'s public flags only (its head runs an autoscaler monitor, idle on a Ray of a fixed
size, which ``ddx down`` stops with the rest). Workers of each command start afresh (Ray binds
workers to a job), so code edited between sweeps is picked up; the environment they inherit is
the one ``ddx up`` ran in (``DDX_CACHE`` is passed per command, as for the embedded Ray).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from methods.artifacts import default_cache_dir
from methods.atomic import atomic_path
from orchestrator.cluster.ray_config import (
    DRIVER_RESOURCE,
    LOCAL_DRIVER_SLOTS,
    RAY_DEFAULT_ENV,
    check_reachable,
)
from orchestrator.errors import UserError

STATE_NAME = "local-ray.json"
AUTH_MODE_ENV = "RAY_AUTH_MODE"


@dataclass(frozen=True)
class LocalRay:
    """A Ray started by ``ddx up``: where it answers, the process group to stop, its log."""

    address: str
    pid: int
    cpus: int
    auth_mode: str
    log: str
    started: str
    dashboard_url: str | None = None


def check_cache_dir() -> Path:
    """This machine's cache folder (``$DDX_CACHE``, default ``~/.cache/ddx``), made if missing; one
    line (:class:`UserError`) when it cannot be used — a file, a folder under a file, a folder this
    user cannot write — before anything reads or writes there (the record of ``ddx up``, the
    workers' datasets and artifacts)."""
    path = default_cache_dir()
    fix = "point DDX_CACHE at a folder this user can write, or unset it (~/.cache/ddx)"
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder; {fix}", key="DDX_CACHE")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{path} cannot be made a folder ({err.strerror or err}); {fix}", key="DDX_CACHE") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path} cannot be written; {fix}", key="DDX_CACHE")
    return path


def state_path() -> Path:
    """``$DDX_CACHE/local-ray.json`` (default ``~/.cache/ddx``): this machine's record of it."""
    return default_cache_dir() / STATE_NAME


def _alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` still runs. On Linux a zombie does not count
    (a container's init may never reap the ``ray start`` that ``ddx up`` left behind)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _read_state() -> LocalRay | None:
    path = state_path()
    try:
        return LocalRay(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        raise UserError(f"unreadable ({err}); delete it (and stop any Ray it names)", where=str(path)) from None


def _write_state(ray_: LocalRay) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(asdict(ray_), indent=2) + "\n")


def _forget() -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path().unlink()


def running() -> LocalRay | None:
    """The Ray ``ddx up`` keeps, or None when none is recorded or its processes are gone (a
    record left by a Ray that died is removed). One that lives but does not answer is a
    :class:`UserError` naming ``ddx down``."""
    kept = _read_state()
    if kept is None:
        return None
    if not _alive(kept.pid):
        _forget()
        return None
    try:
        check_reachable(kept.address, timeout=2.0)
    except UserError:
        raise UserError(
            f"the local Ray of `ddx up` (process group {kept.pid}) does not answer on {kept.address}; "
            f"stop it with `ddx down` (its log: {kept.log})",
            key="ddx up",
        ) from None
    return kept


def prepare_client() -> LocalRay | None:
    """The kept local Ray a command without ``--address`` will use, with ``RAY_AUTH_MODE`` set
    for it (unless the environment sets it). Call before Ray is imported: Ray reads the mode
    once, then, and a driver connecting to an address never turns token mode on by itself."""
    kept = running()
    if kept is not None:
        os.environ.setdefault(AUTH_MODE_ENV, kept.auth_mode)
    return kept


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def temp_dir() -> Path:
    """Ray's session folder for it: short (Ray's socket paths must fit ~107 bytes), one per
    record, and not Ray's default — whose ``ray_current_cluster`` file would make every plain
    ``ray.init()`` on the machine join this Ray, and try to, for minutes, once it is stopped."""
    digest = hashlib.sha256(str(state_path()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"ddx-ray-{digest}"


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def oversubscription(cpus: int | None, have: int | None = None) -> str | None:
    """A warning when ``--cpus`` offers more CPUs than the machine has (``have``, default
    :func:`machine_cpus`), else None. Ray takes the number as given and runs that many one-CPU
    tasks at once: each a worker process that imports torch (~0.3 GB), on fewer cores."""
    have = machine_cpus() if have is None else have
    if cpus is None or cpus <= have:
        return None
    return (
        f"--cpus {cpus} is more than this machine's {have} CPUs: up to {cpus} one-CPU tasks may run at once, each "
        f"a worker process with torch, sharing {have} cores (slower, and may run out of memory); omit --cpus to offer "
        f"{have}"
    )


def start_command(cpus: int | None, dashboard: bool, ports: list[int]) -> list[str]:
    """``ray start --head --block`` with ddx's settings; ``ports``: GCS, Ray client, dashboard."""
    gcs, client, dash = ports
    cmd = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        f"--temp-dir={temp_dir()}",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        f"--ray-client-server-port={client}",
        f"--include-dashboard={'true' if dashboard else 'false'}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        "--disable-usage-stats",
        "--resources=" + json.dumps({DRIVER_RESOURCE: LOCAL_DRIVER_SLOTS}),
    ]
    if cpus is not None:
        cmd.append(f"--num-cpus={cpus}")
    return cmd


def _log_tail(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _wait_until_serving(address: str, proc: subprocess.Popen, log: Path, timeout: float) -> int:
    """Connect as a driver once the node serves (Ray waits for its raylet); returns its CPUs."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise UserError(f"`ray start` exited (code {proc.returncode}): {_log_tail(log)}; see {log}", key="ddx up")
        try:
            check_reachable(address, timeout=1.0)
            break
        except UserError:
            if time.monotonic() > deadline:
                what = f"no Ray answered on {address} within {timeout:.0f} s; see {log}"
                raise UserError(what, key="ddx up") from None
            time.sleep(0.2)
    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    try:
        resources = ray.cluster_resources()
    finally:
        ray.shutdown()
    if resources.get(DRIVER_RESOURCE, 0) < 1:
        raise UserError(f"the Ray at {address} lacks the {DRIVER_RESOURCE!r} resource; see {log}", key="ddx up")
    return int(resources.get("CPU", 0))


def up(cpus: int | None = None, dashboard: bool = False, timeout: float = 180) -> tuple[LocalRay, bool]:
    """Start the kept local Ray unless one runs; returns it and whether it was started now."""
    kept = running()
    if kept is not None:
        return kept, False
    ports = _free_ports(3)
    address = f"127.0.0.1:{ports[0]}"
    log = default_cache_dir() / "local-ray.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(AUTH_MODE_ENV, "token")
    env = {**RAY_DEFAULT_ENV, **os.environ}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            start_command(cpus, dashboard, ports),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        found = _wait_until_serving(address, proc, log, timeout)
    except BaseException:
        _stop_group(proc.pid)
        raise
    kept = LocalRay(
        address=address,
        pid=proc.pid,
        cpus=found,
        auth_mode=os.environ[AUTH_MODE_ENV],
        log=str(log),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        dashboard_url=f"http://127.0.0.1:{ports[2]}" if dashboard else None,
    )
    _write_state(kept)
    return kept, True


def _stop_group(pgid: int, grace: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds, wait till it is gone.

    Ray's processes, all signalled at once, take 10–30 s to finish on their own (the node drains
    for up to 30 s); nothing of ddx's needs that: every result is written atomically when it is
    made, and a sweep still running there is stopped either way (``ddx sweep`` resumes it)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while _alive(pgid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-pgid, os.WNOHANG)  # reap our own child (the group leader), if it is ours
            time.sleep(0.1)
        if not _alive(pgid):
            return


def down() -> LocalRay | None:
    """Stop the kept local Ray (its whole process group; a sweep running on it is stopped too),
    remove its Ray session folders and forget it; None when none was up."""
    kept = _read_state()
    if kept is None:
        return None
    if _alive(kept.pid):
        _stop_group(kept.pid)
    shutil.rmtree(temp_dir(), ignore_errors=True)  # Ray's session folders of it (its log stays in the cache)
    _forget()
    return kept
