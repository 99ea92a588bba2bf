"""The trial driver's token and the fail-fast placement checks, on a real local Ray."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.cluster import runtime
from orchestrator.cluster.ray_config import address_endpoint
from orchestrator.errors import UserError
from tests.helpers import (
    RUN_MARK,
    closed_port,
    ddx,
    ddx_interrupted,
    fresh_output,
    processes_of_run,
    tiny_digits_spec,
    write_spec,
)


def test_an_address_where_nothing_listens_fails_at_once_with_one_line() -> None:
    port = closed_port()
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        runtime.check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 5  # Ray itself retries for about two minutes
    assert err.value.key == "--address" and f"127.0.0.1:{port}" in str(err.value)
    with pytest.raises(UserError):
        runtime.check_reachable(f"ray://127.0.0.1:{port}")
    runtime.check_reachable("auto")  # Ray resolves it (its own one-line error when none runs)


def test_an_address_that_answers_but_not_as_ray_fails_with_one_line(ray_session, silent_port, tmp_path) -> None:
    """A dashboard's port (HTTP) or a service that never replies: ``ray.init`` retried either for
    minutes. A real GCS (and, by the same gRPC check, a Ray Client server) passes."""
    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        for port, why in ((http.server_address[1], "HTTP/2"), (silent_port, "no gRPC answer within 1 s")):
            start = time.monotonic()
            with pytest.raises(UserError) as err:
                runtime.check_reachable(f"127.0.0.1:{port}", timeout=1.0)
            assert time.monotonic() - start < 5
            line = err.value.line()
            assert (
                line.startswith(
                    f"--address: cannot connect to Ray at '127.0.0.1:{port}': 127.0.0.1:{port} answers, "
                    "but not as Ray ("
                )
                and why in line
                and "\n" not in line
            ), line
        runtime.check_reachable(ray_session.get_runtime_context().gcs_address)  # a Ray cluster's GCS
        spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
        out = ddx("sweep", str(spec), "--address", f"127.0.0.1:{http.server_address[1]}", timeout=60)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and "answers, but not as Ray" in lines[0], out.stderr
        assert not (tmp_path / "store").exists()  # nothing written
    finally:
        http.shutdown()


def test_the_cli_reads_ray_address_as_address(tmp_path) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
    port = closed_port()
    out = ddx("sweep", str(spec), env={"RAY_ADDRESS": f"127.0.0.1:{port}"}, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--address" in lines[0] and f"127.0.0.1:{port}" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "store").exists()  # nothing written


@pytest.mark.parametrize(
    ("address", "problem"),
    [("head node", "a space in the host"), (":6379", "no host"), ("ray://", "no host"), ("localhost", "no port")],
)
def test_a_malformed_address_is_one_line_at_once(tmp_path, address: str, problem: str) -> None:
    """Ray's own parse logs a traceback (``:6379``), and ``ray://`` without a host waited for Ray
    Client's 30 s timeout: checked before Ray, one line."""
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
    start = time.monotonic()
    out = ddx("sweep", str(spec), "--address", address, timeout=60)
    assert time.monotonic() - start < 15
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout + out.stderr
    assert out.stderr.strip() == (
        f"error: --address: not a Ray address: {address!r} ({problem}); "
        "give auto, HOST:PORT or ray://HOST:PORT (omit --address for a local Ray)"
    )
    assert not (tmp_path / "store").exists()


def test_address_endpoints() -> None:
    """Where each form of address points: a ``ray://`` address without a port names Ray Client's 10001."""
    assert address_endpoint("auto") is None
    assert address_endpoint("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert address_endpoint("ray://head") == ("head", 10001)
    assert address_endpoint("ray://[::1]") == ("::1", 10001)
    assert address_endpoint("[::1]:6379") == ("::1", 6379)
    with pytest.raises(UserError, match="port 'x' is not a number"):
        address_endpoint("head:x")


def test_trial_token_falls_back_to_a_cpu_sliver_without_the_driver_resource(ray_session) -> None:
    assert "ddx_driver" not in ray_session.cluster_resources()
    assert runtime.trial_token(None) == {"CPU": 0.01}
    assert runtime.trial_token({"head": 0.5}) == {"head": 0.5}


def test_check_fits_passes_what_a_node_holds_and_names_the_key_of_what_none_does(ray_session) -> None:
    cpus = ray_session.cluster_resources()["CPU"]
    runtime.check_fits({"resources.cpus_per_worker": {"CPU": cpus, "GPU": 0.0}})
    with pytest.raises(UserError) as err:
        runtime.check_fits({"resources.eval_cpus": {"CPU": 1.0, "GPU": 1.0}})
    assert err.value.key == "resources.eval_cpus" and "GPU 1" in str(err.value)


def test_work_no_node_of_a_joined_cluster_without_an_autoscaler_holds_is_one_line_naming_key(
    ray_session, tmp_path
) -> None:
    """The session's Ray was started by the test, as a cluster ddx joins: Ray runs its read-only
    autoscaler there, which adds no node, so the 3-CPU worker would wait for ever."""
    from orchestrator.cluster import autoscaler
    from orchestrator.spec.load import parse_spec
    from orchestrator.sweep import preflight

    spec = tiny_digits_spec(tmp_path / "store")
    spec["resources"].update(cpus_per_worker=3, eval_cpus=1)
    lines: list[str] = []
    assert not runtime.is_fixed_local() and autoscaler.has_autoscaler() is False
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        preflight.prepare(parse_spec(spec), fresh=True, warn=lines.append)
    assert time.monotonic() - start < 10 and lines == []
    assert err.value.key == "resources.cpus_per_worker"  # the 1-CPU evaluations fit the 2-CPU node
    line = err.value.line()
    assert line.startswith("resources.cpus_per_worker: one unit needs CPU 3 but") and "largest: CPU 2" in line
    assert line.endswith("and this cluster has no autoscaler to add one; lower it or add such a node"), line
    assert not (tmp_path / "store" / "tiny" / "spec.json").exists()  # nothing written: the sweep did not start


def test_a_worker_that_misfits_only_with_its_cpu_token_driver_is_a_warning_on_a_joined_cluster(
    ray_session, tmp_path
) -> None:
    """2 CPUs per worker on the 2-CPU node: with the driver's 0.01 CPU it does not fit one node,
    but on a cluster the driver may sit on another node, so the sweep goes on with the fix named."""
    from orchestrator.spec.load import parse_spec
    from orchestrator.sweep import preflight

    spec = tiny_digits_spec(tmp_path / "store")
    spec["resources"].update(cpus_per_worker=2, eval_cpus=1)
    lines: list[str] = []
    preflight.prepare(parse_spec(spec), fresh=True, warn=lines.append)
    (line,) = lines
    assert line.startswith("resources.cpus_per_worker: one unit needs CPU 2.01") and "'ddx_driver'" in line
    assert (tmp_path / "store" / "tiny" / "spec.json").exists()  # a warning, not an error: the sweep goes on


def test_ddx_sweep_on_a_joined_cluster_no_node_of_which_holds_a_worker_is_one_line_exit_2(
    ray_session, tmp_path
) -> None:
    """``ddx sweep --address`` of the session's Ray (2 CPUs, no autoscaler) asking 3 CPUs per
    worker waited for ever; now one line and exit 2, before any trial (no spec is saved)."""
    spec = tiny_digits_spec(tmp_path / "store")
    spec["resources"].update(cpus_per_worker=3, eval_cpus=1)
    path = write_spec(tmp_path / "s.yaml", spec)
    address = ray_session.get_runtime_context().gcs_address
    start = time.monotonic()
    out = ddx("sweep", str(path), "--address", address, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: resources.cpus_per_worker: one unit needs CPU 3 but no node of this Ray has that (largest: CPU 2), "
        "and this cluster has no autoscaler to add one; lower it or add such a node"
    ]
    assert time.monotonic() - start < 60
    assert not (tmp_path / "store" / "tiny").exists()  # not even the lease is left


def test_a_missing_token_resource_is_a_user_error(ray_session) -> None:
    with pytest.raises(UserError) as err:
        runtime.check_resources({"ddx_driver": 0.01})
    assert err.value.key == "resources.trial_resources"


def test_a_cpu_token_driver_counts_against_its_workers_node() -> None:
    from orchestrator.spec.model import Resources

    res = Resources(cpus_per_worker=2, eval_cpus=1, eval_gpus=0.25)
    assert runtime.unit_demands(res, {"ddx_driver": 0.01})["resources.cpus_per_worker"] == {"CPU": 2, "GPU": 0}
    assert runtime.unit_demands(res, {"CPU": 0.01})["resources.cpus_per_worker"]["CPU"] == 2.01
    assert runtime.unit_demands(res, {"CPU": 0.01})["resources.eval_cpus"] == {"CPU": 1, "GPU": 0.25}


def test_a_trials_worker_group_is_held_at_once() -> None:
    from orchestrator.spec.model import Resources

    res = Resources(distill_workers=3, cpus_per_worker=2, gpus_per_worker=1)
    assert runtime.group_demand(res, {"ddx_driver": 0.01}) == {"resources.distill_workers": {"CPU": 6, "GPU": 3}}
    assert runtime.group_demand(res, {"CPU": 0.01})["resources.distill_workers"]["CPU"] == 6.01
    assert runtime.group_demand(Resources(cpus_per_worker=2), {"CPU": 0.01}) == {}  # one worker: a unit


def test_check_fits_counts_a_worker_group_against_the_whole_ray(ray_session) -> None:
    """Each worker fits a node, the group does not fit the Ray: it could never start (before: Train
    waited for its placement group, 900 s, then failed)."""
    one_each = {"resources.cpus_per_worker": {"CPU": 2.0, "GPU": 0.0}}
    runtime.check_fits(one_each, {"resources.distill_workers": {"CPU": 2.0, "GPU": 0.0}})
    with pytest.raises(UserError) as err:
        runtime.check_fits(one_each, {"resources.distill_workers": {"CPU": 4.0, "GPU": 0.0}})
    assert err.value.key == "resources.distill_workers"
    assert "need CPU 4 at once but this Ray has CPU 2 in all" in str(err.value)


def test_a_worker_group_larger_than_the_embedded_ray_is_one_line_before_any_trial(tmp_path) -> None:
    cpus = os.cpu_count() or 1
    data = tiny_digits_spec(tmp_path / "store", resources={"distill_workers": 2, "cpus_per_worker": cpus})
    spec = write_spec(tmp_path / "s.yaml", data)
    mark = uuid.uuid4().hex
    out = ddx("sweep", str(spec), timeout=120, env={RUN_MARK: mark})
    assert out.returncode == 2, out.stdout + out.stderr
    assert processes_of_run(mark) == []  # exit 2 after the embedded Ray started: none of its processes is left
    assert out.stderr.strip() == (
        f"error: resources.distill_workers: a trial's Train workers need CPU {2 * cpus} at once but this Ray has "
        f"CPU {cpus} in all; lower it or run on a bigger cluster (--address)"
    )
    assert "started" not in out.stdout and not (tmp_path / "store").exists()  # no trial ran, nothing written


def test_one_node_free_for_needs_a_single_node_with_the_demand_free_now(ray_session) -> None:
    from orchestrator.cluster.runtime import one_node_free_for

    deadline = time.monotonic() + 30  # earlier tests' tasks release the session's CPUs asynchronously
    while ray_session.available_resources().get("CPU", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert one_node_free_for({"CPU": 1})  # the test session: one node, 2 CPUs
    assert not one_node_free_for({"CPU": 64})  # more than the node has: warming would wait (or scale up)
    assert not one_node_free_for({"CPU": 1, "GPU": 1})
    assert one_node_free_for({"CPU": 1, "GPU": 0})  # a zero demand is no demand


STOP_SCRIPT = """
import json, os
from pathlib import Path
from orchestrator.cluster import processes, runtime
runtime.connect(None, num_cpus=1)
procs = {pid: processes.command_line(pid) for pid in processes.descendants()}
names = sorted({Path(args[0]).name for args in procs.values() if args})
monitor = [pid for pid, args in procs.items() if any(a.endswith(os.sep + "monitor.py") for a in args)]
stopped = runtime.stop_autoscaler_monitor()

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

monitor_alive = [p for p in monitor if alive(p)]
runtime.shutdown()
print(json.dumps({
    "monitor": monitor, "stopped": stopped, "monitor_alive_before_shutdown": monitor_alive,
    "alive": [p for p in procs if alive(p)], "names": names,
}))
"""


def test_shutdown_of_an_embedded_ray_stops_the_monitor_first_and_leaves_no_process() -> None:
    import json

    # a RAY_ADDRESS (like a Ray started with `ray start`) does not make the embedded Ray join it:
    # Ray's own default would, and then refuses the embedded Ray's size and resources
    out = fresh_output(STOP_SCRIPT, env={"RAY_ADDRESS": f"127.0.0.1:{closed_port()}"})
    got = json.loads(out.splitlines()[-1])
    assert len(got["monitor"]) == 1 and {"gcs_server", "raylet"} <= set(got["names"])
    assert got["stopped"] is True and got["monitor_alive_before_shutdown"] == []  # killed at once, before ray.shutdown
    assert got["alive"] == []  # every process the embedded Ray started is gone


ORPHAN_SCRIPT = """
import json, os, subprocess
import ray
from orchestrator.cluster import processes, runtime
runtime.connect(None, num_cpus=1)

@ray.remote
def start_helper():
    # a helper process the task leaves running, in a session of its own, whose parent has exited: an orphan
    out = subprocess.run(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    return int(out.stdout)

helper = ray.get(start_helper.remote())
runtime.shutdown()
alive = processes.alive(helper)
if alive:
    os.kill(helper, 9)
print(json.dumps({"helper_alive": alive}))
"""


def test_shutdown_of_an_embedded_ray_stops_what_its_tasks_left_running() -> None:
    """``ray.shutdown`` stops Ray's processes, and the raylet its workers, but not a process that lost its
    parent on the way (re-parented to init, like the orphaned ``ray::IDLE`` workers of a stopped sweep):
    ddx adopts such orphans and stops every process that appeared below it since its Ray started."""
    import json

    got = json.loads(fresh_output(ORPHAN_SCRIPT, timeout=180).splitlines()[-1])
    assert got == {"helper_alive": False}


def test_the_autoscaler_monitor_is_told_by_its_command_line() -> None:
    py = "/venv/bin/python"
    site = "/venv/lib/python3.11/site-packages/ray"
    assert runtime.is_autoscaler_monitor([py, "-u", f"{site}/autoscaler/_private/monitor.py", "--logs-dir=/tmp/x"])
    assert not runtime.is_autoscaler_monitor([py, "-u", f"{site}/_private/log_monitor.py", "--logs-dir=/tmp/x"])
    assert not runtime.is_autoscaler_monitor([py, f"{site}/dashboard/dashboard.py", "--monitor.py"])
    assert not runtime.is_autoscaler_monitor([])


def test_shutdown_stops_an_embedded_rays_monitor_before_ray_shutdown_and_what_outlives_it_after(monkeypatch) -> None:
    """The monitor first; after ``ray.shutdown``, what was below this process before it and still runs
    (an idle worker whose raylet is gone) is stopped, and a process id reused meanwhile is left alone."""
    calls: list[object] = []
    starts = {101: 5, 102: 6, 103: 7}  # 101 ends with ray.shutdown, 102 outlives it, 103's id is reused
    after = {102: 6, 103: 99}
    monkeypatch.setattr(runtime.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(runtime.ray, "shutdown", lambda: calls.append("ray.shutdown"))
    monkeypatch.setattr(runtime, "stop_autoscaler_monitor", lambda: calls.append("monitor") or True)
    monkeypatch.setattr(runtime.processes, "descendants", lambda: set(starts))
    monkeypatch.setattr(
        runtime.processes, "process_start", lambda pid: (after if "ray.shutdown" in calls else starts).get(pid)
    )
    monkeypatch.setattr(runtime.processes, "stop", lambda pids, grace: calls.append(("stop", sorted(pids))))
    monkeypatch.setattr(runtime, "_embedded", True)
    runtime.shutdown()
    assert calls == ["monitor", "ray.shutdown", ("stop", [102])] and not runtime.is_embedded()
    calls.clear()
    runtime.shutdown()  # connected to a cluster (not embedded): only disconnects
    assert calls == ["ray.shutdown", ("stop", [])]


def test_stopping_the_monitor_without_a_ray_started_here_does_nothing() -> None:

    code = "from orchestrator.cluster import runtime; print(runtime.stop_autoscaler_monitor())"
    assert fresh_output(code) == "False"


def test_a_tracker_that_is_not_installed_is_one_line_before_ray_starts(tmp_path) -> None:
    """``tracking.wandb`` without the package: said in a second, not after Ray's start-up. The package
    is hidden from the process (``sys.modules["wandb"] = None`` in a sitecustomize: ``find_spec`` then
    finds nothing), so the test holds whether or not wandb is installed."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text('import sys\nsys.modules["wandb"] = None\n')
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store", tracking={"wandb": True}))
    pythonpath = os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH")) if p)
    out = ddx("sweep", str(spec), timeout=60, env={"PYTHONPATH": pythonpath})
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip() == "error: tracking.wandb: needs the 'wandb' package (pip install wandb)"
    assert "running on" not in out.stdout and not (tmp_path / "store").exists()


def test_ddx_evaluate_with_a_task_no_node_holds_is_one_line(tmp_path) -> None:
    """``resources.eval_cpus`` beyond the machine (or ``eval_gpus`` without a GPU) waited for ever on
    the embedded Ray; now one line naming the key, before any set is written."""
    import torch

    torch.save({"images": torch.rand(10, 1, 8, 8), "labels": torch.arange(10)}, tmp_path / "set.pt")
    cpus = (os.cpu_count() or 1) + 1
    args = ["evaluate", str(tmp_path / "set.pt"), "--preset", "dd_standard", "--dataset", "digits", "--seeds", "1"]
    out = ddx(
        *args, "--no-reference", "--out", str(tmp_path / "out"), "--set", f"resources.eval_cpus={cpus}", timeout=120
    )
    assert out.returncode == 2, out.stdout + out.stderr
    said = f"error: resources.eval_cpus: one unit needs CPU {cpus} but no node of this Ray"
    assert out.stderr.strip().startswith(said), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_descendants_and_stop_find_and_end_a_process_tree() -> None:
    from orchestrator.cluster import processes

    before = processes.descendants()
    parent = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(processes.descendants() - before) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = processes.descendants() - before
        assert parent.pid in tree and len(tree) == 3  # sh and its two sleeps (grandchildren)
        assert processes.descendants(parent.pid) == tree - {parent.pid}
        processes.stop(tree, grace=1.0)
        parent.wait(timeout=10)
        assert not (processes.descendants() & tree)
    finally:
        parent.kill()


def test_a_start_of_ray_cut_short_stops_what_it_started(monkeypatch) -> None:
    """Ctrl-C or SIGTERM inside ray.init left the raylet's agents running for good (two Python
    processes per interrupted start); connect now stops every process that appeared below it."""
    import ray

    from orchestrator.cluster import processes

    started: list[subprocess.Popen] = []

    def init_cut_short(*args, **kwargs):
        started.append(subprocess.Popen(["sh", "-c", "sleep 300 & wait"]))  # a daemon and its child
        time.sleep(0.3)
        raise KeyboardInterrupt

    monkeypatch.setattr(ray, "init", init_cut_short)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr("orchestrator.cluster.local_ray.running", lambda: None)
    before = processes.descendants()
    with pytest.raises(KeyboardInterrupt):
        runtime.connect(None)
    started[0].wait(timeout=10)
    assert processes.descendants() - before == set()  # the daemon and its grandchild are gone


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_sweep_stopped_while_its_evaluations_run_leaves_no_process(tmp_path, sig: int, code: int) -> None:
    """Ctrl-C of a sweep whose evaluation tasks were running exited 130, but its evaluation workers
    lived on as orphaned ``ray::IDLE`` processes (parent pid 1), holding their memory until the
    evaluation they were computing ended. The signal comes once the small network's evaluation
    is done, while ResNet-18's still runs; after the exit no process of the run is alive."""
    mark = uuid.uuid4().hex
    spec = tiny_digits_spec(
        tmp_path / "store",
        search={"ipc": {"grid": [1]}},
        evaluation={"archs": ["convnet_d3", "resnet18"], "seeds": 1, "epochs": 200},
        resources={"eval_cpus": 1},
    )
    path = write_spec(tmp_path / "s.yaml", spec)
    got, err = ddx_interrupted(
        "sweep", str(path), when="evaluate 1/2", stderr_file=tmp_path / "stderr.txt", sig=sig, env={RUN_MARK: mark}
    )
    assert got == code, err
    assert processes_of_run(mark) == []


def _one_shot_server(reply: bytes | None) -> tuple[socket.socket, threading.Thread]:
    """A loopback server that answers its first connection with ``reply`` and closes it (None:
    closes it without a word)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for _ in range(2):  # the TCP check's connection, then the HTTP/2 one
            try:
                conn, _ = server.accept()
                with conn:
                    if reply is not None:
                        conn.sendall(reply)
            except OSError:  # the TCP check's client has gone already, or the server was closed
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "it answered 'SSH-2.0-OpenSSH_9.6'"),
        (None, "closed the connection without a word"),
        (bytes([0, 0, 0, 0x1, 0x4, 0, 0, 0, 1]), "it answered '000000010400000001'"),  # HTTP/2, but not SETTINGS
    ],
)
def test_a_server_that_does_not_answer_as_http2_is_not_ray(reply: bytes | None, why: str) -> None:
    server, thread = _one_shot_server(reply)
    port = server.getsockname()[1]
    try:
        with pytest.raises(UserError) as err:
            runtime.check_reachable(f"127.0.0.1:{port}", timeout=2.0)
        line = err.value.line()
        assert f"127.0.0.1:{port} answers, but not as Ray (" in line and why in line and "\n" not in line, line
    finally:
        server.close()
        thread.join(timeout=5)


def test_a_server_that_answers_the_http2_preface_with_settings_passes() -> None:
    """What every gRPC server (a Ray GCS, a Ray Client server) sends first: a SETTINGS frame on stream 0."""
    settings = bytes([0, 0, 6, 0x4, 0, 0, 0, 0, 0]) + bytes([0, 3, 0, 0, 0, 100])  # MAX_CONCURRENT_STREAMS 100
    server, thread = _one_shot_server(settings)
    try:
        runtime.check_reachable(f"127.0.0.1:{server.getsockname()[1]}", timeout=2.0)
    finally:
        server.close()
        thread.join(timeout=5)


SIGTERM_IN_INIT = """
import os, signal, sys, time
import typer
from orchestrator.cli.stopping import ctrl_c_says

def init_like_ray(code):
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(code))  # what ray.init installs first
    if code is not None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    sys.exit(3)  # no signal: a SystemExit of the command's own

@ctrl_c_says("rerun the same command")
def command(code):
    init_like_ray(code)

try:
    command(None if sys.argv[1] == "none" else int(sys.argv[1]))
except typer.Exit as err:
    print("exit", err.exit_code)
except SystemExit as err:
    print("SystemExit", err.code)
"""


@pytest.mark.parametrize(("handler_code", "said", "printed"), [
    ("15", "terminated (SIGTERM): rerun the same command", "exit 143"),
    ("1", "terminated (SIGTERM): rerun the same command", "exit 143"),  # Ray's handler's code does not matter
    ("none", "", "SystemExit 3"),  # a SystemExit without SIGTERM is left as it is
])  # fmt: skip
def test_sigterm_while_ray_init_holds_the_handler_is_exit_143_whatever_rays_handler_does(
    tmp_path, handler_code: str, said: str, printed: str
) -> None:
    script = tmp_path / "s.py"
    script.write_text(SIGTERM_IN_INIT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, str(script), handler_code], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == printed and proc.stderr.strip() == said, (proc.stdout, proc.stderr)


def test_ray_status_text_is_read_for_node_types_and_demands() -> None:
    """``ray status``'s text (Ray 2.60's layout): the node types of active and idle nodes, whether
    the round had the load, and the pending demands; the read-only autoscaler's ``node_<id>`` types."""
    from orchestrator.cluster.autoscaler import _read_only, parse_status

    text = """======== Autoscaler status: 2026-12-07 21:00:00 ========
Node status
---------------------------------------------------------------
Active:
 1 head
 2 cpu_worker
Idle:
 1 gpu_worker
Pending:
 (no pending nodes)
Recent failures:
 (no failures)

Resources
---------------------------------------------------------------
Total Usage:
 1.0/6.0 CPU
 0B/10.00GiB memory

Total Demands:
 {'CPU': 2.0}: 1+ pending tasks/actors
 {'CPU': 1.0, 'GPU': 1.0} * 1 (PACK): 1+ pending placement groups
"""
    report = parse_status(text)
    assert report is not None and report.node_types == ("head", "cpu_worker", "gpu_worker") and report.has_load
    assert report.demands == ({"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}) and not _read_only(report)
    started_by_hand = text.replace(" 1 head\n 2 cpu_worker", " 1 node_" + "ab12" * 14).replace(" 1 gpu_worker", "")
    by_hand = parse_status(started_by_hand)
    assert by_hand is not None and _read_only(by_hand)
    assert parse_status("No cluster status. It may take a few seconds for the Ray services to start up.") is None
