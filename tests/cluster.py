"""A real multi-node Ray cluster on one machine, for the cluster tests and the scaling benchmark.

Every node is a separate ``ray start … --block`` process tree on 127.0.0.1 with its own
ports (drawn from a range that Ray's defaults and the kernel's ephemeral ports do not use, so
other Ray instances on the machine are never touched), its own ``--temp-dir`` and its own
``DDX_CACHE``. Each node runs in its own mount namespace (``unshare -m``); a worker node
additionally gets

* a private view of chosen directories: a ``tmpfs`` is mounted over each of them (the head's
  temp/cache folders, the test's tmp dir…), so the node cannot read what the head wrote there
  and anything that crosses nodes as a local path breaks, as it would on a real cluster;
* its own hostname (``unshare -u``), so rows and manifests say which node did the work.

A node is stopped — gracefully at teardown, or with SIGKILL to simulate losing the machine —
by signalling every process in its mount namespace and process group: exactly the processes
this module started, never another Ray on the machine.

Needs root (``unshare``/``mount``), as CI has; :func:`isolation_available` says whether it works.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
PORT_RANGE = (20000, 29000)  # below the ephemeral range (32768+), above Ray's default worker ports (10002–19999)
WORKER_PORTS = 80  # worker processes one node may run at once

#: environment every node and driver gets: dummy credentials for the local S3 server, no EC2
#: metadata probing, quick detection of a dead node, and no token authentication (Ray 2.60
#: turns it on for `ray start`; its token file in ~/.ray is shared by every Ray on the machine)
CLUSTER_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    "RAY_DEDUP_LOGS": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "PYTHONUNBUFFERED": "1",
}


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def isolation_available() -> str | None:
    """None when nodes can be isolated here; otherwise why not (a skip reason)."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (unshare -m and mount -t tmpfs give a node a private view of directories)"
    probe = tempfile.mkdtemp(prefix="ddxns-")
    try:
        cmd = ["unshare", "-m", "-u", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {probe}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unshare is not usable here: {err}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if done.returncode != 0:
        return f"unshare/mount failed: {done.stderr.strip()[:200]}"
    return None


def _port_is_free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


#: ports this process has handed out: a port given to a component that has not bound it yet (the
#: head's GCS port while the head's node ports are drawn) is free to bind, yet taken
_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` consecutive free ports from :data:`PORT_RANGE` (checked by binding them), none
    of them handed out before by this process."""
    for _ in range(200):
        start = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - count)
        ports = list(range(start, start + count))
        if _HANDED_OUT.isdisjoint(ports) and all(_port_is_free(p) for p in ports):
            _HANDED_OUT.update(ports)
            return ports
    raise RuntimeError(f"no {count} consecutive free ports in {PORT_RANGE}")


def _mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith(("Z", "X"))


@dataclass
class Node:
    """One ``ray start --block`` process tree."""

    name: str
    proc: subprocess.Popen
    temp_dir: Path
    cache: Path
    hostname: str
    log: Path
    namespace: str | None = None
    node_id: str | None = None
    hidden: list[Path] = field(default_factory=list)

    def pids(self) -> set[int]:
        """Every live process of this node: its mount namespace and its process group."""
        self.proc.poll()  # reap the leader once it has exited
        own = _mount_namespace(os.getpid())
        out = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid == os.getpid() or _is_zombie(pid):
                continue
            ns = _mount_namespace(pid)
            if (self.namespace is not None and ns == self.namespace and ns != own) or _pgid(pid) == self.proc.pid:
                out.add(pid)
        return out

    def executing(self, task: str) -> bool:
        """Whether a worker process of this node executes a task named ``task`` now: Ray titles
        it ``ray::<task>`` while it runs (``ray::IDLE`` between tasks). Read from ``/proc``, so
        it is exact at once, unlike the state API's view, which lags the task's events."""
        for pid in self.pids():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.split(b"\0")[0].strip() == f"ray::{task}".encode():
                return True
        return False

    def signal(self, sig: int) -> int:
        """Send ``sig`` to every process of the node; returns how many were signalled."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return len(pids)

    def kill(self, timeout: float = 30) -> None:
        """SIGKILL the whole node at once (the machine is gone), until no process of it is left."""
        deadline = time.monotonic() + timeout
        while self.signal(signal.SIGKILL) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def stop(self, grace: float = 5) -> None:
        """SIGTERM, then SIGKILL whatever is left after ``grace`` seconds."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.3)
        self.kill()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class LocalCluster:
    """A head node and worker nodes on this machine (see the module docstring).

    ``hide``: directories a worker node must not see (a tmpfs is mounted over each).
    ``env``: environment of every node (added to :data:`CLUSTER_ENV` and ``PYTHONPATH``).
    """

    def __init__(self, root: Path | None = None, hide: Iterable[Path] = (), env: dict[str, str] | None = None) -> None:
        # short: Ray's socket paths live under the temp dirs and are limited to ~107 bytes
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ddxc-", dir="/tmp"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.hide = [Path(p) for p in hide]
        self.env = {**CLUSTER_ENV, **(env or {})}
        self.nodes: list[Node] = []
        self.head: Node | None = None
        # the head's ports are fixed up front: an autoscaling config must name the GCS address
        self.gcs_port, self.dashboard_port, self.client_port = free_ports(3)
        self._others: list[subprocess.Popen] = []

    # --- addresses -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def node_env(self, cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        repo = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, **self.env, "DDX_CACHE": str(cache), **(extra or {})}
        env["PYTHONPATH"] = repo + (os.pathsep + path if path else "")
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.pop("RAY_ADDRESS", None)
        return env

    @staticmethod
    def _node_ports() -> list[str]:
        p = free_ports(6 + WORKER_PORTS)
        return [
            f"--node-manager-port={p[0]}",
            f"--object-manager-port={p[1]}",
            f"--metrics-export-port={p[2]}",
            f"--dashboard-agent-listen-port={p[3]}",
            f"--dashboard-agent-grpc-port={p[4]}",
            f"--runtime-env-agent-port={p[5]}",
            f"--min-worker-port={p[6]}",
            f"--max-worker-port={p[-1]}",
        ]

    # --- starting nodes ------------------------------------------------------------------------
    def _launch(
        self,
        name: str,
        ray_args: list[str],
        env: dict[str, str],
        temp_dir: Path,
        cache: Path,
        hide: Sequence[Path] = (),
        hostname: str | None = None,
    ) -> Node:
        log = self.root / f"{name}.log"
        script = ["set -e"]
        for d in hide:
            d.mkdir(parents=True, exist_ok=True)
            script.append(f"mount -t tmpfs -o size=256m tmpfs {json.dumps(str(d))}")
        if hostname:
            script.append(f"hostname {hostname}")
        script.append("exec " + " ".join(json.dumps(a) for a in [_tool("ray"), "start", *ray_args]))
        flags = ["-m", "--propagation", "private"] + (["-u"] if hostname else [])
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["unshare", *flags, "sh", "-c", "\n".join(script)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(name, proc, temp_dir, cache, hostname or socket.gethostname(), log, hidden=list(hide))
        own = _mount_namespace(os.getpid())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ns = _mount_namespace(proc.pid)
            if ns is not None and ns != own:
                node.namespace = ns
                break
            time.sleep(0.05)
        self.nodes.append(node)
        return node

    def start_head(
        self,
        cpus: int = 1,
        resources: dict[str, float] | None = None,
        autoscaling_config: Path | None = None,
        env: dict[str, str] | None = None,
        object_store_bytes: int = 300 * 1024**2,
        timeout: float = 180,
        hostname: str | None = None,
    ) -> Node:
        """Start the head node (again, after a kill: the same address); ``hostname``: a hostname
        of its own (as a separate machine has), else this machine's."""
        temp_dir, cache = self.root / "head" / "tmp", self.root / "head" / "cache"
        temp_dir.mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        args = [
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={self.gcs_port}",
            f"--ray-client-server-port={self.client_port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--num-cpus={cpus}",
            "--num-gpus=0",
            f"--temp-dir={temp_dir}",
            f"--object-store-memory={object_store_bytes}",
            "--disable-usage-stats",
            *self._node_ports(),
        ]
        if resources:
            args.append("--resources=" + json.dumps(resources))
        if autoscaling_config is not None:
            args.append(f"--autoscaling-config={autoscaling_config}")
        self.head = self._launch("head", args, self.node_env(cache, env), temp_dir, cache, hostname=hostname)
        self.head.node_id = self._wait_for_new_node(set(), timeout, self.head)
        return self.head

    def add_worker(
        self, name: str, cpus: int = 1, object_store_bytes: int = 300 * 1024**2, timeout: float = 180
    ) -> Node:
        """Start a worker node with a private view of :attr:`hide` and its own hostname ``name``."""
        assert self.head is not None, "start the head first"
        temp_dir, cache = self.root / name / "tmp", self.root / name / "cache"
        temp_dir.mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        for hidden in self.hidden_dirs():
            if temp_dir.is_relative_to(hidden) or cache.is_relative_to(hidden):
                raise ValueError(f"{name}'s own folders lie under the hidden {hidden}")
        args = [
            f"--address={self.address}",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus}",
            "--num-gpus=0",
            f"--temp-dir={temp_dir}",
            f"--object-store-memory={object_store_bytes}",
            "--disable-usage-stats",
            *self._node_ports(),
        ]
        before = {n["node_id"] for n in self.alive_nodes()}
        node = self._launch(name, args, self.node_env(cache), temp_dir, cache, self.hidden_dirs(), hostname=name)
        node.node_id = self._wait_for_new_node(before, timeout, node)
        return node

    def hidden_dirs(self) -> list[Path]:
        """What a worker node must not see: the head's folders and :attr:`hide`."""
        return [self.root / "head", *self.hide]

    def _wait_for_new_node(self, before: set[str], timeout: float, node: Node) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive:
                raise RuntimeError(f"node {node.name} exited (rc {node.proc.returncode}):\n{self.tail(node)}")
            with contextlib.suppress(Exception):  # the head's dashboard is still starting
                new = [n["node_id"] for n in self.alive_nodes() if n["node_id"] not in before]
                if new:
                    return new[0]
            time.sleep(1)
        raise TimeoutError(f"node {node.name} did not join within {timeout:.0f} s:\n{self.tail(node)}")

    # --- state --------------------------------------------------------------------------------
    def alive_nodes(self) -> list[dict]:
        """The cluster's alive nodes (Ray's state API, through the head's dashboard)."""
        from ray.util.state import list_nodes

        nodes = list_nodes(
            address=self.address, filters=[("state", "=", "ALIVE")], timeout=20, raise_on_missing_output=False
        )
        return [{"node_id": n.node_id, "resources": n.resources_total, "is_head": n.is_head_node} for n in nodes]

    def running_tasks(self, name: str) -> list[dict]:
        """Tasks named ``name`` that are running now, with the node each runs on."""
        from ray.util.state import list_tasks

        tasks = list_tasks(
            address=self.address,
            filters=[("name", "=", name), ("state", "=", "RUNNING")],
            timeout=20,
            limit=1000,
            raise_on_missing_output=False,
        )
        return [{"task_id": t.task_id, "node_id": t.node_id, "attempt": t.attempt_number} for t in tasks]

    def wait_for_node_count(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if len(self.alive_nodes()) == count:
                    return
            time.sleep(1)
        raise TimeoutError(f"the cluster did not reach {count} alive nodes within {timeout:.0f} s")

    @staticmethod
    def tail(node: Node, chars: int = 3000) -> str:
        try:
            return node.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # --- drivers --------------------------------------------------------------------------------
    def popen(self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        """Start a process (e.g. ``ddx sweep``) in its own process group; stopped at :meth:`shutdown`."""
        head_cache = self.root / "head" / "cache"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args,
                env=self.node_env(head_cache, {"COLUMNS": "200", **(env or {})}),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        self._others.append(proc)
        return proc

    def run(self, args: list[str], log: Path, timeout: float, **kw) -> tuple[int, str]:
        """Run a process to completion (killed with its group after ``timeout``); (exit code, output)."""
        proc = self.popen(args, log, **kw)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            rc = -9
        return rc, log.read_text(errors="replace")

    # --- teardown -------------------------------------------------------------------------------
    def shutdown(self, keep: bool = False) -> None:
        """Stop every driver and node started here (by process group / namespace), then remove
        the folders (``keep``: leave them for a post-mortem)."""
        for proc in self._others:
            stop_group(proc)
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.stop()
        self.nodes.clear()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class S3Server:
    """moto's S3 API in its own process on 127.0.0.1 (its own process group, stopped by :meth:`stop`),
    answering one request at a time so that conditional writes are atomic, as on S3
    (``tests/moto_serial.py``).

    A separate process rather than a thread of the caller: the caller (a test or benchmark that
    watches the cluster) then never competes with the server for its interpreter.
    """

    def __init__(self, log: Path, timeout: float = 60) -> None:
        (self.port,) = free_ports(1)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("moto_serial.py")),
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                env={**os.environ, **CLUSTER_ENV},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the S3 server exited (rc {self.proc.returncode}); see {log}")
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect(("127.0.0.1", self.port))
                return
            time.sleep(0.2)
        stop_group(self.proc)
        raise TimeoutError(f"the S3 server did not listen within {timeout:.0f} s; see {log}")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def bucket(self, name: str) -> str:
        """Create bucket ``name``; its URI with this server's endpoint in the query."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=f"http://{self.endpoint}",
            region_name=CLUSTER_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=CLUSTER_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CLUSTER_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=name)
        return f"s3://{name}?endpoint_override={self.endpoint}&scheme=http"

    def stop(self) -> None:
        stop_group(self.proc)


def documented_local_cluster(doc: Path) -> tuple[str, str]:
    """The two commands ``docs/cluster.md`` gives for ``cluster.local.yaml``: the head's
    ``ray start`` (terminal 1) and the sweep's ``ray job submit`` (terminal 2), as shell lines."""
    text = doc.read_text()
    section = text[text.index("## The same on one machine") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```", section.index("```bash") + 7)]
    commands, line = [], ""
    for raw in block.strip().splitlines():
        if not line and raw.lstrip().startswith("#"):
            continue
        line += raw.rstrip().removesuffix("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            commands.append(line.strip())
            line = ""
    start, submit = commands
    return start, submit


def ray_start_flags(start: str) -> dict[str, str]:
    """The ``--name=value`` flags of the ``ray start`` in ``start`` (a shell line; a ``bash -c
    '…'`` wrapper is looked into)."""
    words = shlex.split(start)
    if "-c" in words:
        words = shlex.split(words[words.index("-c") + 1])
    return dict(w.removeprefix("--").split("=", 1) for w in words if w.startswith("--") and "=" in w)


def session_pids(sid: int) -> set[int]:
    """The live processes of session ``sid`` (a process started with ``start_new_session`` and
    everything it started that did not leave the session)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and not _is_zombie(int(entry)):
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == sid:
                    out.add(int(entry))
    return out


def stop_group(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM a process group started with ``start_new_session``, SIGKILL it after ``grace`` s."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of an exited leader
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


__all__ = [
    "CLUSTER_ENV",
    "LocalCluster",
    "Node",
    "S3Server",
    "documented_local_cluster",
    "free_ports",
    "isolation_available",
    "ray_start_flags",
    "session_pids",
    "stop_group",
]
