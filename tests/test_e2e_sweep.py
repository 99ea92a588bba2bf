"""End to end through the real CLI on a real local Ray: rows, schema, values, kill + resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from orchestrator.storage.results import CORE_COLUMNS, ROW_KEY
from tests.helpers import REPO, ddx, tiny_digits_spec, write_spec

pytestmark = pytest.mark.timeout(1200)


def _check_rows(df: pd.DataFrame, trials: int, archs: list[str], seeds: int) -> None:
    assert len(df) == trials * len(archs) * seeds
    assert not df.duplicated(subset=ROW_KEY).any()
    assert df["trial_key"].nunique() == trials
    assert set(df["eval_arch"]) == set(archs)
    assert (df["status"] == "ok").all(), df[["status", "error"]]
    assert df["val_acc"].between(0, 1).all() and df["test_acc"].between(0, 1).all()
    assert (df["eval_seconds"] > 0).all() and (df["distill_seconds"] > 0).all()
    assert df.groupby("trial_key")["seed"].nunique().eq(seeds).all()
    assert df["max_over_test"].isna().all()  # only when asked for


def test_sweep_end_to_end(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    # a Train worker that reserves every CPU of the machine (the quickstart's shape): the trial
    # driver must hold the ddx_driver token, not a sliver of CPU, or the worker is never placed
    whole_node = {"cpus_per_worker": min(2, os.cpu_count() or 1)}
    spec = write_spec(tmp_path / "tiny.yaml", tiny_digits_spec(storage, resources=whole_node))
    proc = ddx("sweep", str(spec), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = storage / "tiny" / "results.parquet"
    assert f"results: {results}" in proc.stdout.replace("\n", "")
    assert not (storage / "tiny" / "running.json").exists()  # the sweep's lease, released
    assert "mean ± std over seeds" in proc.stdout

    table = pq.read_table(results)
    for column, dtype in CORE_COLUMNS.items():
        assert column in table.column_names, column
        assert table.schema.field(column).type == dtype, column
    df = table.to_pandas()
    _check_rows(df, trials=2, archs=["convnet_d3", "resnet18"], seeds=2)
    assert sorted(df["ipc"].unique()) == [1, 2]
    assert set(df["objective"]) == {"dm"} and set(df["label_mode"]) == {"hard"}
    assert set(df["instances_per_class"]) == {1, 2}
    assert (df["budget_scalars"] == df["ipc"] * 64).all()
    assert set(df["iterations"]) == {10}
    assert df["distill_resolution"].eq(8).all() and df["eval_resolution"].eq(8).all()
    assert df["config_hash"].str.len().eq(12).all() and df["torch_version"].notna().all()
    # every row names its protocol and records the student's settings (label mode included)
    assert df["protocol"].notna().all() and df["protocol"].nunique() == 1
    assert all('"label_mode": "hard"' in s for s in df["eval_settings"])
    for path, rows in df.groupby("synthetic_path"):
        assert Path(path).exists()
        # the trial described the set from its card (it loads no tensors): the card's columns are the rows'
        card = json.loads(Path(path + ".card.json").read_text())
        assert rows["instances_per_class"].eq(card["describe"]["instances_per_class"]).all()
        assert rows["budget_scalars"].eq(card["describe"]["budget_scalars"]).all()

    # the report reads the Parquet alone
    rep = ddx("report", str(storage / "tiny"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "8 rows" in rep.stdout

    # running it again resumes a finished sweep: nothing re-run, nothing duplicated
    again = ddx("sweep", str(spec), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    df2 = pd.read_parquet(results)
    assert len(df2) == 8
    assert sorted(df2["created_at"]) == sorted(df["created_at"])


def test_work_no_node_can_hold_is_one_line_and_exit_2(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    spec = write_spec(tmp_path / "big.yaml", tiny_digits_spec(storage, resources={"cpus_per_worker": 512}))
    proc = ddx("sweep", str(spec), cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "resources.cpus_per_worker" in errors[0] and "CPU 512" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not storage.exists()


def _row_files(exp: Path) -> list[Path]:
    rows = exp / "rows"
    return sorted(rows.glob("*.parquet")) if rows.exists() else []


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    spec_data = tiny_digits_spec(storage, name="killme", search={"ipc": {"grid": [1, 2, 3]}}, evaluation={"epochs": 15})
    spec = write_spec(tmp_path / "killme.yaml", spec_data)
    exp = storage / "killme"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sweep", str(spec)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and driver.poll() is None:
            files = _row_files(exp)
            if files and len(pd.read_parquet(files[0])) >= 1:
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the sweep finished before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)  # the driver only: no chance to clean up
        driver.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # reap Ray processes the killed driver left
            os.killpg(driver.pid, signal.SIGKILL)
    before = pd.concat([pd.read_parquet(f) for f in _row_files(exp)], ignore_index=True)
    assert 1 <= len(before) < 12

    proc = ddx("sweep", str(spec), "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    df = pd.read_parquet(exp / "results.parquet")
    _check_rows(df, trials=3, archs=["convnet_d3", "resnet18"], seeds=2)
    # rows written before the kill survive unchanged (not re-run)
    merged = before.merge(df, on=ROW_KEY, suffixes=("_before", "_after"))
    assert len(merged) == len(before)
    assert (merged["created_at_before"] == merged["created_at_after"]).all()
    assert (merged["test_acc_before"] == merged["test_acc_after"]).all()


def test_resume_with_a_changed_spec_is_refused(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    (storage / "tiny").mkdir(parents=True)
    (storage / "tiny" / "spec.json").write_text('{"config_hash": "0000000000000000"}')
    spec = write_spec(tmp_path / "tiny.yaml", tiny_digits_spec(storage))
    proc = ddx("sweep", str(spec), cwd=REPO)
    assert proc.returncode == 2
    assert "--fresh" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_same_path_runs_on_cifar10(tmp_path: Path, cifar10_root: Path) -> None:
    """Real CIFAR-10 images (the JPEG tree from ../shared/data) through the same CLI path."""
    storage = tmp_path / "results"
    spec_data = tiny_digits_spec(
        storage,
        name="cifar",
        dataset={
            "name": "cifar10",
            "root": str(cifar10_root),
            "train_per_class": 30,
            "val_per_class": 5,
            "test_per_class": 20,
        },
        search={"ipc": {"grid": [1]}},
        evaluation={"archs": ["convnet_d3"], "seeds": 1, "epochs": 2},
    )
    del spec_data["dataset"]["resolution"]
    spec = write_spec(tmp_path / "cifar.yaml", spec_data)
    proc = ddx("sweep", str(spec), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    df = pd.read_parquet(storage / "cifar" / "results.parquet")
    assert len(df) == 1 and df["status"].eq("ok").all()
    row = df.iloc[0]
    assert row["dataset"] == "cifar10" and row["distill_resolution"] == 32 and row["budget_scalars"] == 3 * 32 * 32
    assert 0 <= row["test_acc"] <= 1
