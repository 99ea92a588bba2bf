"""End to end through the real CLI on a real local Ray: the trial runtime.

The one-worker streaming task and the multi-worker Train run give the same set; a trial
whose loss turns NaN is a loud failure (named rows, exit code 1) while the other trials
finish; trials that share a key distil once; ASHA stops a hopeless trial on its probe
accuracy while TensorBoard and MLflow receive the intermediate metrics.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pandas as pd
import pytest
import torch

from orchestrator.storage.locations import read_bytes
from tests.helpers import ddx, tiny_digits_spec, write_spec

pytestmark = pytest.mark.timeout(1200)


def _sweep(tmp_path: Path, name: str, env: dict[str, str] | None = None, **overrides):
    storage = tmp_path / "results"
    spec = write_spec(tmp_path / f"{name}.yaml", tiny_digits_spec(storage, name=name, **overrides))
    return ddx("sweep", str(spec), cwd=tmp_path, env=env), storage / name


def _synthetic(exp: Path) -> dict[str, torch.Tensor]:
    (path,) = sorted((exp / "synthetic").glob("*.pt"))
    return torch.load(io.BytesIO(read_bytes(str(path))), weights_only=True)["state"]


def test_two_worker_train_run_gives_the_one_worker_set(tmp_path: Path) -> None:
    one_eval = {"archs": ["convnet_d3"], "seeds": 1, "epochs": 1}
    search = {"ipc": {"grid": [2]}}
    single, exp1 = _sweep(tmp_path, "w1", search=search, evaluation=one_eval, resources={"cpus_per_worker": 1})
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]
    multi, exp2 = _sweep(
        tmp_path, "w2", search=search, evaluation=one_eval, resources={"distill_workers": 2, "cpus_per_worker": 1}
    )
    assert multi.returncode == 0, multi.stdout[-2000:] + multi.stderr[-2000:]
    a, b = _synthetic(exp1), _synthetic(exp2)
    torch.testing.assert_close(a["images"], b["images"], rtol=1e-4, atol=1e-5)  # DM shards by class: W-independent
    rows = pd.read_parquet(exp2 / "results.parquet")
    assert set(rows["distill_workers"]) == {2} and (rows["status"] == "ok").all()
    assert rows["hostname"].notna().all() and rows["node_id"].str.len().gt(10).all()


def test_nan_trial_fails_loudly_while_the_others_finish(tmp_path: Path) -> None:
    proc, exp = _sweep(
        tmp_path,
        "nan",
        search={"ipc": {"grid": [1]}, "lr_images": {"grid": [1.0, 1e30]}},
        evaluation={"archs": ["convnet_d3"], "seeds": 2, "epochs": 2},
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    rows = pd.read_parquet(exp / "results.parquet")
    assert len(rows) == 4 and not rows.duplicated(["trial_key", "eval_arch", "seed"]).any()
    failed = rows[rows["status"] == "failed"]
    assert set(failed["lr_images"]) == {1e30} and len(failed) == 2
    assert failed["error"].str.contains("loss became nan at step").all()
    assert (rows.loc[rows["lr_images"] == 1.0, "status"] == "ok").all()
    named = [line for line in proc.stderr.splitlines() if line.startswith("row failed")]
    assert len(named) == 2 and all("loss became nan" in line for line in named)
    assert "0 trial(s) and 2 row(s) failed" in proc.stderr


def test_trials_that_share_a_key_distil_once(tmp_path: Path) -> None:
    """pixels ignores nf_width: the two pixel trials are one key, distilled and evaluated once."""
    proc, exp = _sweep(
        tmp_path,
        "shared",
        method={"warmup_iterations": 20},
        search={
            "ipc": {"grid": [2]},
            "parameterization": {"grid": ["pixels", "neural_field"]},
            "nf_width": {"grid": [4, 6]},
        },
        evaluation={"archs": ["convnet_d3"], "seeds": 1, "epochs": 1},
        resources={"max_concurrent_trials": 2, "cpus_per_worker": 1},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = pd.read_parquet(exp / "results.parquet")
    assert rows["trial_key"].nunique() == 3 and len(rows) == 3  # 4 trials, 3 keys, one row each
    assert len(list((exp / "synthetic").glob("*.pt"))) == 3
    pixels = rows[rows["parameterization"] == "pixels"]
    assert len(pixels) == 1 and pixels["trial_id"].nunique() == 1


def _tb_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars in the TensorBoard event files under ``folder`` (TFRecord framing, tensorboardX protos)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in folder.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        i = 0
        while i + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


@pytest.mark.slow
def test_asha_stops_a_hopeless_trial_and_trackers_see_intermediate_metrics(tmp_path: Path) -> None:
    mlruns = tmp_path / "mlruns"
    proc, exp = _sweep(
        tmp_path,
        "asha",
        method={"iterations": 20, "probe_every": 5, "probe_epochs": 30, "progress_every": 5, "checkpoint_every": 0},
        search={"ipc": {"grid": [10, 1]}},  # IPC 10 first: IPC 1's probe is far below it at the first rung
        evaluation={"archs": ["convnet_d3"], "seeds": 1, "epochs": 5},
        scheduler={"name": "asha", "grace_period": 5, "reduction_factor": 2},
        tracking={"tensorboard": True, "mlflow": {"tracking_uri": mlruns.as_uri()}},
        env={"MLFLOW_ALLOW_FILE_STORE": "true"},  # MLflow 3 keeps its file store behind this switch
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stopped early by the scheduler" in proc.stdout
    rows = pd.read_parquet(exp / "results.parquet")
    assert set(rows["ipc"]) == {10}  # the stopped trial wrote no rows

    scalars = _tb_scalars(exp / "tune")
    steps = sorted({int(v) for _, v in scalars["ray/tune/distill_step"]})
    assert steps[:3] == [5, 10, 15], steps  # intermediate progress, not only the final result
    assert len(scalars["ray/tune/probe_val_acc"]) >= 3

    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = MlflowClient(tracking_uri=mlruns.as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "asha"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    history = [client.get_metric_history(r.info.run_id, "distill_step") for r in runs]
    assert max(len(h) for h in history) >= 3
