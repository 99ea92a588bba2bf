"""End to end through the real CLI on a real local Ray: the trial runtime.

The one-worker streaming task and the multi-worker Train run give the same set; a trial
whose loss turns NaN is a loud failure (named rows, exit code 1) while the other trials
finish; trials that share a key distil once; ASHA stops a hopeless trial on its probe
accuracy while TensorBoard and MLflow receive the intermediate metrics.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch

from orchestrator.storage.locations import read_bytes
from tests.helpers import RUN_MARK, ddx, processes_of_run, tiny_digits_spec, write_spec

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
    mark = uuid.uuid4().hex
    single, exp1 = _sweep(
        tmp_path, "w1", env={RUN_MARK: mark}, search=search, evaluation=one_eval, resources={"cpus_per_worker": 1}
    )
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]
    assert processes_of_run(mark) == []  # exit 0: no process of its embedded Ray is left
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
    mark = uuid.uuid4().hex
    proc, exp = _sweep(
        tmp_path,
        "nan",
        env={RUN_MARK: mark},
        search={"ipc": {"grid": [1]}, "lr_images": {"grid": [1.0, 1e30]}},
        evaluation={"archs": ["convnet_d3"], "seeds": 2, "epochs": 2},
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert processes_of_run(mark) == []  # exit 1: no process of its embedded Ray is left
    assert "Traceback" not in proc.stderr
    rows = pd.read_parquet(exp / "results.parquet")
    assert len(rows) == 4 and not rows.duplicated(["trial_key", "eval_arch", "seed"]).any()
    failed = rows[rows["status"] == "failed"]
    assert set(failed["lr_images"]) == {1e30} and len(failed) == 2
    assert failed["error"].str.fullmatch(r"distillation failed: DivergedError: \w+ loss became nan at step .*").all()
    # where the distillation's worker logged: its Ray log file, which holds the traceback
    (where,) = set(failed["error_log"])
    log = Path(where.partition(":")[2])
    assert log.name.startswith("worker-") and "DivergedError" in log.read_text(), where
    assert rows.loc[rows["status"] == "ok", "error_log"].isna().all()
    record = json.loads((exp / "trials" / f"{failed['trial_key'].iloc[0]}.json").read_text())
    assert record["status"] == "failed" and record["error_log"] == where
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
    # the stopped trial's run is KILLED (Tune ended it FINISHED), with the step it was stopped at
    status = {r.info.status: r for r in runs}
    assert sorted(status) == ["FINISHED", "KILLED"], sorted(status)
    assert status["KILLED"].data.metrics["stopped_at_step"] == status["KILLED"].data.metrics["distill_step"]
    assert "stopped_at_step" not in status["FINISHED"].data.metrics


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_trial_asha_stops_stops_distilling_is_recorded_stopped_and_is_not_run_again(
    tmp_path: Path, workers: int
) -> None:
    """A trial ASHA stopped kept distilling to the end (its set written seconds after the stop), its
    record stayed ``running``, and a rerun of the sweep ran it again. One trial at a time, so that
    rungs are reached in order: IPC 10 first (never stopped: nothing to compare it with), then
    IPC 1, far below it at the first rung, then IPC 5 (in the trial process the stopped one leaves).
    One worker (a streaming task, cancelled) and two (a Train run, whose workers read the stop)."""
    iterations = 200
    proc, exp = _sweep(
        tmp_path,
        "stops",
        method={
            "iterations": iterations,
            "probe_every": 20,
            "probe_epochs": 10,
            "progress_every": 10,
            "checkpoint_every": 10,
        },
        search={"ipc": {"grid": [10, 1, 5]}},
        evaluation={"archs": ["convnet_d3"], "seeds": 1, "epochs": 1},
        scheduler={"name": "asha", "grace_period": 20, "reduction_factor": 2},
        resources={"max_concurrent_trials": 1, "distill_workers": workers, "cpus_per_worker": 1},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = {r["config"]["ipc"]: r for r in map(_read_json, (exp / "trials").glob("*.json"))}
    stopped = records[1]
    assert stopped["status"] == "stopped" and stopped["rung"] == 20, stopped  # the first rung
    assert 0 <= stopped["metric"] <= 1 and stopped["metric_name"] == "probe_val_acc"
    assert records[10]["status"] == "done"  # first at every rung: never compared, never stopped
    key = stopped["trial_key"]
    # its distillation stopped (left running, it wrote its set while the next trial ran): no set, and
    # its last checkpoint (one every 10 steps, after the step's report) is close to its rung (measured:
    # at it, or the one before when the process was stopped first)
    for record in (r for r in records.values() if r["status"] == "stopped"):
        assert not (exp / "synthetic" / f"{record['trial_key']}.pt").exists()
        state = torch.load(io.BytesIO((exp / "train" / record["trial_key"] / "state.pt").read_bytes()))
        assert record["rung"] - 10 <= int(state["done"]) < min(iterations, record["rung"] + 60), int(state["done"])
    said = [line for line in proc.stdout.splitlines() if "stopped early by the scheduler at distillation step" in line]
    assert len(said) == sum(r["status"] == "stopped" for r in records.values()) and key[:8] in "".join(said), said
    rows = pd.read_parquet(exp / "results.parquet")
    assert set(rows["trial_key"]) == {r["trial_key"] for r in records.values() if r["status"] == "done"}
    assert 10 in set(rows["ipc"]) and 1 not in set(rows["ipc"])

    # a second run of the same file runs nothing for it: the record, the state and the rows stay as they were
    before = {p: p.stat().st_mtime_ns for p in (exp / "trials" / f"{key}.json", exp / "train" / key / "state.pt")}
    again = ddx("sweep", str(tmp_path / "stops.yaml"), cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert not (exp / "synthetic" / f"{key}.pt").exists()
    assert any(key[:8] in line and "in an earlier run" in line for line in again.stdout.splitlines()), again.stdout
    assert len(pd.read_parquet(exp / "results.parquet")) == len(rows)


@pytest.mark.slow
def test_a_train_workers_exception_is_the_rows_error_not_rays_wrapper(tmp_path: Path) -> None:
    """A diverging distillation on two Train workers: the rows said ``WorkerGroupError: Training failed
    due to worker errors: …``; they now carry the worker's own exception line."""
    proc, exp = _sweep(
        tmp_path,
        "nan2",
        search={"ipc": {"grid": [2]}, "lr_images": {"grid": [1e30]}},
        evaluation={"archs": ["convnet_d3"], "seeds": 1, "epochs": 1},
        resources={"distill_workers": 2, "cpus_per_worker": 1},
    )
    assert proc.returncode == 1 and (exp / "results.parquet").exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = pd.read_parquet(exp / "results.parquet")
    (error,) = set(rows["error"])
    assert re.fullmatch(r"distillation failed: DivergedError: dm loss became nan at step \d+ of \d+", error), error


#: a sitecustomize that makes Train rank 1's process exit (``os._exit``) at distillation step 10, after
#: a line on its stderr: what a crash in gloo or a segfault does, as far as Ray can tell
CRASH_HOOK = """
import importlib.abc, importlib.util, os, sys

class _Crash(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "orchestrator.sweep.distill_worker":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            metrics = module.progress_metrics

            def dying(info):
                import torch.distributed as dist
                if dist.is_initialized() and dist.get_rank() == 1 and int(info["step"]) >= 10:
                    print("ddx test: this worker exits on purpose", file=sys.stderr, flush=True)
                    os._exit(3)
                return metrics(info)

            module.progress_metrics = dying

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Crash())
"""


@pytest.mark.slow
def test_a_train_worker_whose_process_died_is_named_with_its_log(tmp_path: Path) -> None:
    """A Train worker's process that dies leaves only Ray's ``WorkerGroupError: … The actor is dead
    because its worker process has died …`` in the rows; the cause was in the worker's log. The
    rows now name the rank, the last line of its log and where that log is."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)
    pythonpath = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    proc, exp = _sweep(
        tmp_path,
        "dies",
        env={"PYTHONPATH": pythonpath},
        method={"iterations": 40, "progress_every": 5},
        search={"ipc": {"grid": [2]}},
        evaluation={"archs": ["convnet_d3"], "seeds": 1, "epochs": 1},
        resources={"distill_workers": 2, "cpus_per_worker": 1},
    )
    assert proc.returncode == 1 and (exp / "results.parquet").exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = pd.read_parquet(exp / "results.parquet")
    (error,) = set(rows["error"])
    said = re.fullmatch(
        r"distillation failed: the process of Train rank 1 \(pid \d+\) died \((\w+): [^)]*\); "
        r"the last line of its log: ddx test: this worker exits on purpose; its log: [^:]+:(/\S+\.err)",
        error,
    )
    assert said, error
    assert "WorkerGroupError" not in error
    log = Path(said.group(2))
    assert log.parent.name == "logs" and "ddx test: this worker exits on purpose" in log.read_text()
