"""The head node dies mid-sweep: the same command, run on a new head, finishes the sweep.

Trial drivers (and a ``ray job submit``'s ``ddx sweep``) live on the head, so losing the head
loses the whole sweep; what it finished is in the storage (S3 here). The head has a hostname of
its own, as another machine would: the leases its processes held (the experiment's
``running.json``, the trials' locks) cannot be seen to be dead from the new head, only to
lapse. So the rerun at once is refused with one line naming the dead head's process; once the
lease has lapsed (90 s after its last renewal), the same command finishes the sweep: every row
``ok``, none twice, and the teacher, produced before the loss, not produced again.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from orchestrator.storage.locations import exists, filesystem, join, read_bytes
from orchestrator.sweep.resume import LEASE_FILE, LEASE_TTL_S
from tests.cluster import BIN, CLUSTER_ENV, LocalCluster, S3Server, isolation_available, stop_group
from tests.conftest import TEST_CACHE
from tests.helpers import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ROW_KEY = ["trial_key", "eval_arch", "eval_resolution", "label_mode", "seed"]


def _spec(name: str) -> dict[str, Any]:
    """Two trials (DM and CFM) that share a teacher (soft labels need it), three rows each."""
    return {
        "name": name,
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"ipc": 1, "iterations": 10, "batch_real": 32, "iterations_per_batch": 3},
        "search": {"objective": {"grid": ["dm", "cfm"]}},
        "teacher": {"arch": "convnet_d2", "epochs": 2, "batch_size": 64},
        "resources": {"distill_workers": 1, "cpus_per_worker": 1, "eval_cpus": 1, "max_concurrent_trials": 2},
        "evaluation": {
            "archs": ["convnet_d2"],
            "seeds": 3,
            "epochs": 300,
            "batch_size": 64,
            "label_mode": "soft",
            "temperature": 30,
        },
    }


def _rows_written(exp: str) -> int:
    fs, path = filesystem(join(exp, "rows"))
    count = 0
    for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
        if info.path.endswith(".parquet") and not info.base_name.startswith("."):
            with fs.open_input_file(info.path) as fh:
                count += pq.read_metadata(fh).num_rows
    return count


def _published(prefix: str) -> bool:
    """Whether an artifact under ``prefix`` is published (its manifest is written last)."""
    return any(name.endswith(".manifest.json") for name in _objects(prefix))


def _objects(prefix: str) -> dict[str, str]:
    """Name → ETag-like identity (size and modification time) of the objects under ``prefix``."""
    fs, path = filesystem(prefix)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True))
    return {i.path.removeprefix(path): f"{i.size}@{i.mtime}" for i in infos if i.is_file}


def test_a_sweep_whose_head_died_is_finished_by_the_same_command_on_a_new_head(tmp_path: Path, monkeypatch) -> None:
    reason = isolation_available()
    if reason:
        pytest.skip(reason)
    for key, value in CLUSTER_ENV.items():  # this process reads S3 too
        monkeypatch.setenv(key, value)
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    s3 = S3Server(tmp_path / "s3.log")
    cluster = LocalCluster(hide=[tmp_path, TEST_CACHE])
    try:
        storage = join(s3.bucket("ddx-head-loss"), "results")
        name = "headloss"
        exp = join(storage, name)
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(yaml.safe_dump(_spec(name), sort_keys=False))
        # `ray job submit`: the sweep's driver runs on the head, as on cluster.yaml
        submit = [
            str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard_url, "--working-dir", ".", "--",
            "ddx", "sweep", str(spec), "--address", "auto", "--storage", storage,
        ]  # fmt: skip

        cluster.start_head(cpus=1, resources={"ddx_driver": 100}, hostname="head-a")
        worker = cluster.add_worker("ddx-w1")
        first = cluster.popen(submit, tmp_path / "first.log", cwd=REPO)
        teacher = join(storage, "cache", "teacher")
        deadline = time.monotonic() + 1200
        while not (_published(teacher) and 1 <= _rows_written(exp) < 6):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-6000:]
            assert time.monotonic() < deadline, "the first run made no rows"
            time.sleep(0.5)
        # the head's machine is lost: every process of it (trial drivers, the sweep's driver), then the cluster
        cluster.head.kill()
        lost_at = time.time()
        worker.kill()
        stop_group(first)
        rows_before = _rows_written(exp)
        produced_before = {k: v for k, v in _objects(teacher).items() if not k.endswith(".lock")}
        assert 1 <= rows_before < 6 and len(produced_before) == 2, produced_before  # the teacher and its manifest
        lease = json.loads(read_bytes(join(exp, LEASE_FILE)))
        assert lease["owner"].startswith("head-a:")  # the dead driver's, which no process will release

        cluster.start_head(cpus=1, resources={"ddx_driver": 100}, hostname="head-b")
        cluster.add_worker("ddx-w2")
        rc, out = cluster.run(submit, tmp_path / "refused.log", timeout=600, cwd=REPO)
        if time.time() < lost_at + LEASE_TTL_S - 5:  # still live: refused, one line naming the dead holder
            assert rc != 0, out[-3000:]
            errors = sorted({ln for ln in out.splitlines() if ln.startswith("error:")})  # the job's log is shown twice
            assert len(errors) == 1 and "another ddx sweep is running this experiment (process " in errors[0], out
            assert " on head-a, since " in errors[0] and f"lapses within {LEASE_TTL_S:.0f} s" in errors[0], errors
            time.sleep(max(0.0, lost_at + LEASE_TTL_S + 2 - time.time()))
            rc, out = cluster.run(submit, tmp_path / "second.log", timeout=1500, cwd=REPO)
        restarted = time.time()
        assert rc == 0 and "succeeded" in out, out[-6000:]

        rows = pd.read_parquet(io.BytesIO(read_bytes(join(exp, "results.parquet"))))
        assert len(rows) == 6 and (rows["status"] == "ok").all(), rows[["status", "error"]]
        assert not rows.duplicated(ROW_KEY).any() and set(rows["objective"]) == {"dm", "cfm"}
        assert {k: v for k, v in _objects(teacher).items() if not k.endswith(".lock")} == produced_before  # not again
        again = rows[pd.to_datetime(rows["created_at"], utc=True) > pd.Timestamp(lost_at, unit="s", tz="UTC")]
        assert len(again) == 6 - rows_before and (again["prerequisite_pieces_produced"] == 0).all(), again
        assert set(again["hostname"]) <= {"head-b", "ddx-w2"} and restarted > lost_at
        assert not exists(join(exp, LEASE_FILE))  # released at the end of the rerun
    finally:
        cluster.shutdown()
        s3.stop()
