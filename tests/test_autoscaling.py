"""The autoscaler adds worker nodes for a sweep's demand (from zero) and removes them when idle;
``cluster.local.yaml``'s documented commands run as written.

The head is started the way ``cluster.local.yaml`` tells users to (``RAY_FAKE_CLUSTER=1 ray
start --head --autoscaling-config=cluster.local.yaml`` with the head's declared resources:
no CPU, the ``ddx_driver`` token), with its own ports and temp dir; the only change to the
repository's file is the GCS address (this head does not listen on the default port). The sweep
is submitted as the README says, ``ray job submit --working-dir . -- ddx sweep … --address
auto``, with S3 storage on a local moto server (its own process).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.storage.locations import join, read_bytes
from tests.cluster import (
    BIN,
    CLUSTER_ENV,
    LocalCluster,
    S3Server,
    documented_local_cluster,
    isolation_available,
    ray_start_flags,
    session_pids,
)
from tests.helpers import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_sweep_scales_workers_up_from_zero_and_idle_ones_are_removed(tmp_path: Path, monkeypatch) -> None:
    reason = isolation_available()
    if reason:
        pytest.skip(reason)
    for key, value in CLUSTER_ENV.items():  # this process reads S3 and queries the state API too
        monkeypatch.setenv(key, value)
    local = yaml.safe_load((REPO / "cluster.local.yaml").read_text())
    head_type = local["available_node_types"][local["head_node_type"]]
    worker_type = local["available_node_types"]["worker"]
    idle_s = 60 * float(local["idle_timeout_minutes"])

    s3 = S3Server(tmp_path / "s3.log")
    cluster = LocalCluster()
    try:
        local["provider"]["gcs_address"] = cluster.address
        config = cluster.root / "cluster.local.yaml"
        config.write_text(yaml.safe_dump(local))
        head_resources = dict(head_type["resources"])
        cluster.start_head(
            cpus=int(head_resources.pop("CPU")),
            resources=head_resources,
            autoscaling_config=config,
            env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"},
        )
        assert len(cluster.alive_nodes()) == 1  # the head alone: zero workers

        storage = join(s3.bucket("ddx-autoscale"), "results")
        name = "autoscale"
        spec = tmp_path / "autoscale.yaml"
        # four evaluation tasks (one per network and seed: CPU students train one by one) on one-CPU workers
        archs, seeds = ["convnet_d2", "convnet_d1"], 2
        spec.write_text(
            yaml.safe_dump(
                {
                    "name": name,
                    "dataset": {"name": "digits", "resolution": 8},
                    "method": {"objective": "dm", "ipc": 1, "iterations": 10, "batch_real": 32},
                    "resources": {"distill_workers": 1, "eval_cpus": 1, "max_concurrent_trials": 1},
                    "evaluation": {"archs": archs, "seeds": seeds, "epochs": 300, "batch_size": 64},
                }
            )
        )
        # every "node" of this cluster is this machine, with this checkout: the README's
        # `--working-dir local://$PWD` uses it in place (with `.`, each node Ray adds would unpack
        # the upload again over the one session folder they share, under the running driver)
        submit = [
            str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard_url,
            "--working-dir", f"local://{REPO}", "--",
            "ddx", "sweep", str(spec), "--address", "auto", "--storage", storage,
        ]  # fmt: skip
        log = tmp_path / "submit.log"
        proc = cluster.popen(submit, log, cwd=REPO)
        workers_seen: set[str] = set()
        most_at_once = 0
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                workers = {n["node_id"] for n in cluster.alive_nodes() if not n["is_head"]}
            except Exception:  # the dashboard is busy: try again
                workers = set()
            workers_seen |= workers
            most_at_once = max(most_at_once, len(workers))
            time.sleep(1)
        out = log.read_text(errors="replace")
        assert proc.returncode == 0, out[-6000:]
        assert "succeeded" in out, out[-3000:]

        rows = pd.read_parquet(io.BytesIO(read_bytes(join(storage, name, "results.parquet"))))
        assert len(rows) == len(archs) * seeds and (rows["status"] == "ok").all(), rows[["status", "error"]]
        assert set(rows["node_id"]) <= workers_seen  # the head (no CPU) ran none of it
        assert most_at_once == worker_type["max_workers"], (most_at_once, workers_seen)

        # idle workers go: back to the head alone within the idle timeout (+ the autoscaler's rounds)
        start = time.monotonic()
        cluster.wait_for_node_count(1, timeout=idle_s + 120)
        gone_after = time.monotonic() - start
        status = json.dumps({"workers": len(workers_seen), "removed_after_s": round(gone_after, 1)})
        print(status)
    finally:
        cluster.shutdown()
        s3.stop()


def _checkout_copy(target: Path) -> Path:
    """This checkout's files (tracked and new, not ignored) at ``target``: the documented sweep
    writes ./ddx_results there, not into the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = REPO / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    return target


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(3600)  # the quickstart itself: about 2 minutes on 2 idle cores, much longer on busy ones
def test_the_documented_local_cluster_runs_the_quickstart_refuses_what_no_node_type_holds_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    """docs/cluster.md's two commands, run as written from a copy of the checkout: terminal 1's
    ``ray start --block`` (its own process session, as a terminal's), terminal 2's ``ray job
    submit`` of sweeps/quickstart.yaml (its node type holds 2 CPUs: a 1-CPU one left a 2-CPU
    worker waiting for ever). A sweep asking 3 CPUs per worker, which no node type holds, is one line
    and exit 2 before any trial. Ctrl-C in terminal 1 (SIGINT to its process group) leaves no
    process of the cluster, worker nodes included, and frees its ports."""
    start_cmd, submit_cmd = documented_local_cluster(REPO / "docs" / "cluster.md")
    flags = ray_start_flags(start_cmd)
    ports = [int(flags[k]) for k in ("port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port")]
    busy = [p for p in ports if _listening(p)]
    if busy:
        pytest.skip(f"the documented ports {busy} are in use on this machine")
    work = _checkout_copy(tmp_path / "checkout")
    env = {**os.environ, **CLUSTER_ENV, "DDX_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(work)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    head_log = tmp_path / "terminal1.log"
    with open(head_log, "wb") as out:
        head = subprocess.Popen(
            ["bash", "-c", start_cmd], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    sid = head.pid
    try:
        deadline = time.monotonic() + 300
        while True:
            assert head.poll() is None, head_log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{flags['dashboard-port']}/api/version", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, head_log.read_text()[-3000:]
                time.sleep(2)

        # no node type holds 3 CPUs: one line, exit 2, nothing written
        too_big = yaml.safe_load((work / "sweeps" / "quickstart.yaml").read_text())
        too_big["name"] = "too_big"
        too_big["resources"]["cpus_per_worker"] = 3
        (work / "too_big.yaml").write_text(yaml.safe_dump(too_big))
        address = f"{flags['node-ip-address']}:{flags['port']}"
        began = time.monotonic()
        refused = subprocess.run(
            [str(BIN / "ddx"), "sweep", "too_big.yaml", "--address", address],
            cwd=work, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        took = time.monotonic() - began
        assert refused.returncode == 2, refused.stdout + refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("error: resources.cpus_per_worker: one unit needs CPU 3 but no node of this Ray"), line
        assert "no node type of the cluster's autoscaler has it either" in line, line
        assert took < 180 and not (work / "ddx_results" / "too_big" / "spec.json").exists()

        # the documented sweep runs to the end
        job_log = tmp_path / "terminal2.log"
        with open(job_log, "wb") as out:
            rc = subprocess.run(
                ["bash", "-c", submit_cmd], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=2400
            ).returncode
        output = job_log.read_text(errors="replace")
        assert rc == 0 and "succeeded" in output, output[-6000:]
        rows = pd.read_parquet(work / "ddx_results" / "quickstart" / "results.parquet")
        assert len(rows) == 8 and (rows["status"] == "ok").all(), rows[["status", "error"]]

        # Ctrl-C in terminal 1: the terminal sends SIGINT to its foreground process group
        os.killpg(head.pid, signal.SIGINT)
        deadline = time.monotonic() + 120
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(1)
        left = session_pids(sid)
        assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left if Path(f"/proc/{p}").exists()]
        assert not [p for p in ports if _listening(p)]
    finally:
        for pid in session_pids(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
