"""The autoscaler adds worker nodes for a sweep's demand (from zero) and removes them when idle.

The head is started the way ``cluster.local.yaml`` tells users to (``RAY_FAKE_CLUSTER=1 ray
start --head --autoscaling-config=cluster.local.yaml`` with the head's declared resources:
no CPU, the ``ddx_driver`` token), with its own ports and temp dir; the only change to the
repository's file is the GCS address (this head does not listen on the default port). The sweep
is submitted as the README says, ``ray job submit --working-dir . -- ddx sweep … --address
auto``, with S3 storage on a local moto server (its own process).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.storage.locations import join, read_bytes
from tests.cluster import BIN, CLUSTER_ENV, LocalCluster, S3Server, isolation_available
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
        # two evaluation tasks (one per network, each training its seeds together) on one-CPU workers
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
