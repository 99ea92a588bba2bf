"""Resuming a sweep: a fresh Tune run per invocation, told what earlier invocations finished."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.spec.load import parse_spec
from orchestrator.sweep.run import tune_config
from orchestrator.sweep.search_space import PastTrial, build_search
from tests.helpers import REPO, RUN_MARK, ddx, ddx_interrupted, processes_of_run, tiny_digits_spec, write_spec


def _optuna_spec(tmp_path: Path):
    data = tiny_digits_spec(tmp_path, algorithm="optuna", num_samples=4)
    data["method"]["ipc"] = 1
    data["search"] = {"lr_images": {"loguniform": [0.1, 10.0]}}
    return parse_spec(data)


def test_max_concurrent_flag_wins_on_fresh_and_resumed_runs(tmp_path: Path) -> None:
    spec = parse_spec(tiny_digits_spec(tmp_path, resources={"max_concurrent_trials": 3}))
    plan = build_search(spec)
    assert tune_config(spec, plan, None).max_concurrent_trials == 3
    assert tune_config(spec, plan, 1).max_concurrent_trials == 1
    resumed = build_search(spec, history=[({"ipc": 1}, 0.5)])  # a grid re-runs every trial (finished ones skip)
    assert tune_config(spec, resumed, 1).max_concurrent_trials == 1 and resumed.num_samples == 1


def test_resumed_optuna_is_told_finished_trials_and_queues_unfinished_ones(tmp_path: Path) -> None:
    spec = _optuna_spec(tmp_path)
    history = [({"lr_images": 0.5}, 0.61), ({"lr_images": 2.0}, 0.72), ({"lr_images": 7.0}, None)]
    plan = build_search(spec, history)
    assert plan.num_samples == 2  # 4 asked, 2 finished
    searcher = plan.search_alg
    assert searcher.set_search_properties(None, None, plan.param_space)
    first = searcher.suggest("t1")
    assert first["lr_images"] == 7.0  # the unfinished trial runs first
    study = searcher._ot_study
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["lr_images"] for t in done) == [0.5, 2.0]
    assert sorted(t.value for t in done) == [0.61, 0.72]


def test_resumed_optuna_is_told_stopped_trials_as_pruned_and_runs_them_no_more(tmp_path: Path) -> None:
    """A trial the scheduler stopped was told to no one: its record stayed ``running``, so the
    resumed search queued it to run first. Now it is a pruned trial at the probe accuracy it was
    stopped on (or with none, when that was not a number), and it is not run again."""
    from orchestrator.storage.results import STOPPED, ResultStore
    from orchestrator.sweep.run import trial_history

    spec = _optuna_spec(tmp_path)
    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_record("a", {"lr_images": 0.5}, "done", metric=0.61)
    store.write_trial_record("b", {"lr_images": 9.0}, STOPPED, rung=20, metric=0.12, metric_name="probe_val_acc")
    store.write_trial_record("c", {"lr_images": 8.0}, STOPPED, rung=20, metric=None, metric_name="probe_val_acc")
    store.write_trial_record("d", {"lr_images": 7.0}, "running")
    history = sorted(trial_history(store.root), key=lambda p: p.config["lr_images"])
    assert history == [
        PastTrial({"lr_images": 0.5}, 0.61),
        PastTrial({"lr_images": 7.0}, None),
        PastTrial({"lr_images": 8.0}, None, pruned=True),
        PastTrial({"lr_images": 9.0}, 0.12, pruned=True),
    ]
    plan = build_search(spec, history)
    assert plan.num_samples == 1  # 4 asked: one finished, two stopped; only the unfinished one is left
    searcher = plan.search_alg
    assert searcher.set_search_properties(None, None, plan.param_space)
    assert searcher.suggest("t1")["lr_images"] == 7.0  # the unfinished trial runs; the stopped ones do not
    pruned = {t.params["lr_images"]: t for t in searcher._ot_study.trials if t.state.name == "PRUNED"}
    assert sorted(pruned) == [8.0, 9.0]
    assert pruned[9.0].value == 0.12 and list(pruned[9.0].intermediate_values.values()) == [0.12]
    assert pruned[8.0].value is None


def test_trials_this_run_counts_grid_points_or_the_samples_left(tmp_path: Path) -> None:
    """What an interrupted run is measured against: a grid runs every point again, a search only what is left."""
    grid = build_search(parse_spec(tiny_digits_spec(tmp_path)))
    assert grid.trials_this_run == 2
    resumed = build_search(_optuna_spec(tmp_path), [({"lr_images": 0.5}, 0.61), ({"lr_images": 7.0}, None)])
    assert resumed.trials_this_run == 3  # 4 asked, 1 finished (the unfinished one runs again)


def test_ctrl_c_says_interrupted_exits_130_and_the_rerun_completes_without_duplicates(tmp_path: Path) -> None:
    """SIGINT after the first trial: Tune stops and returns normally, which printed the partial table and
    exited 0. Now: a line naming the unfinished trials, exit 130; the same command then finishes the
    sweep with every row exactly once."""
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store", search={"ipc": {"grid": [1, 2, 3]}}))
    mark = uuid.uuid4().hex
    code, err = ddx_interrupted(
        "sweep", str(spec), when=": done", stderr_file=tmp_path / "stderr.txt", env={RUN_MARK: mark}
    )  # trial 1 done
    assert code == 130, err
    assert processes_of_run(mark) == []  # no process of its embedded Ray is left
    assert re.search(r"interrupted: [12] trial\(s\) did not finish; rerun the same command", err), err
    assert "Traceback" not in err
    assert not (tmp_path / "store" / "tiny" / "running.json").exists()  # the sweep's lease, released
    rerun = ddx("sweep", str(spec), timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = pd.read_parquet(tmp_path / "store" / "tiny" / "results.parquet")
    assert len(rows) == 12 and sorted(rows["ipc"].unique()) == [1, 2, 3]
    assert not rows.duplicated(["trial_key", "eval_arch", "seed", "label_mode"]).any()


def test_ctrl_c_as_the_first_trial_starts_is_exit_130_not_success(tmp_path: Path) -> None:
    """Tune reported the trial it stopped seconds after its start as terminated, like a finished
    one: the sweep said 'results: … (0 rows)' and exited 0."""
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store", search={"ipc": {"grid": [2]}}))
    code, err = ddx_interrupted("sweep", str(spec), when=": started", stderr_file=tmp_path / "stderr.txt")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 130, err
    assert lines[-1] == (
        "interrupted: 1 trial(s) did not finish; rerun the same command to resume (finished work is kept)"
    )


def test_sigterm_stops_like_ctrl_c_with_exit_143_and_the_same_command_resumes(tmp_path: Path) -> None:
    """A scheduler's preemption, `timeout` or `kill`: Ray's own handler printed C++ stack lines
    and exited 1 (or 15, silently, while Ray started)."""
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
    mark = uuid.uuid4().hex
    code, err = ddx_interrupted(
        "sweep", str(spec), when=": done", stderr_file=tmp_path / "stderr.txt", sig=signal.SIGTERM, env={RUN_MARK: mark}
    )  # trial 1 done
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 143 and "Traceback" not in err and "SIGTERM received" not in err, err
    assert processes_of_run(mark) == []  # no process of its embedded Ray is left
    assert re.fullmatch(r"terminated \(SIGTERM\): 1 trial\(s\) did not finish; rerun the same command .*", lines[-1])
    rerun = ddx("sweep", str(spec), timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = pd.read_parquet(tmp_path / "store" / "tiny" / "results.parquet")
    assert len(rows) == 8 and not rows.duplicated(["trial_key", "eval_arch", "seed", "label_mode"]).any()

    before_ray = "prerequisites produced"  # the plan's last line, printed before Ray starts
    code, err = ddx_interrupted(
        "sweep", str(spec), when=before_ray, stderr_file=tmp_path / "e2.txt", sig=signal.SIGTERM, timeout=120
    )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 143 and lines == ["terminated (SIGTERM): rerun the same command to resume (finished work is kept)"]


def test_ctrl_c_while_ray_starts_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """SIGINT as soon as the plan is printed (Ray's start-up and the checks, before Tune takes
    Ctrl-C over): it exited 130 without a word."""
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
    when = "prerequisites produced"  # the plan's last line, printed before Ray starts
    code, err = ddx_interrupted("sweep", str(spec), when=when, stderr_file=tmp_path / "stderr.txt", timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 130 and lines == ["interrupted: rerun the same command to resume (finished work is kept)"], err


def test_a_full_disk_stops_the_sweep_with_one_line_and_the_same_command_resumes_once_there_is_room(
    tmp_path: Path,
) -> None:
    """The storage on a 64 KiB tmpfs of the sweep's own (a private mount namespace): the sweep
    stops part-way, exit 1, the storage named as full in one line, no traceback and no half-written
    file; with room made (the tmpfs remounted larger) the same command finishes every row once."""
    from tests.cluster import isolation_available

    if (why := isolation_available()) is not None:
        pytest.skip(why)
    store = tmp_path / "store"
    store.mkdir()
    spec = write_spec(tmp_path / "full.yaml", tiny_digits_spec(store, search={"ipc": {"grid": [2]}}))
    sweep = f"{sys.executable} -m orchestrator sweep {spec}"
    count = (
        f"{sys.executable} -c \"import pandas as pd; d = pd.read_parquet('{store}/tiny/results.parquet'); "
        "print('rows', len(d), (d.status == 'ok').sum(), len(d.drop_duplicates(['eval_arch', 'seed'])))\""
    )
    script = [
        f"mount -t tmpfs -o size=64k tmpfs {store}",
        f"cd {REPO}",
        f"{sweep} > {tmp_path}/1.out 2> {tmp_path}/1.err; echo rc1=$?",
        f"find {store} -name '*.tmp' | sed 's/^/left: /'",
        f"mount -o remount,size=64m {store}",
        f"{sweep} > {tmp_path}/2.out 2> {tmp_path}/2.err; echo rc2=$?",
        count,
    ]
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(script)],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    err1 = (tmp_path / "1.err").read_text()
    assert "rc1=1" in done.stdout, done.stdout + done.stderr + err1[-3000:]
    assert "Traceback" not in err1 and "left: " not in done.stdout, err1[-3000:] + done.stdout
    last = err1.strip().splitlines()[-1]
    assert last.startswith("error: the sweep stopped part-way: storage: cannot write to ") or last.startswith(
        "1 trial(s) and"
    ), err1[-3000:]
    assert "No space left on device" in last or "KiB free" in last or "No space left" in err1, err1[-3000:]
    assert last.endswith("(finished work is kept)"), last
    assert "rc2=0" in done.stdout, done.stdout + (tmp_path / "2.err").read_text()[-3000:]
    assert "rows 4 4 4" in done.stdout, done.stdout  # every row once, all ok


def test_the_driver_records_a_trial_the_scheduler_stops_and_marks_its_result(tmp_path: Path) -> None:
    """At ASHA's STOP (Tune marks the result ``done`` before its callbacks see it) the trial's record
    becomes ``stopped`` with its rung and probe accuracy, and the result carries ``stopped_at_step``
    for the trackers and the display; any other result leaves both alone."""
    from types import SimpleNamespace

    from orchestrator.storage.results import ResultStore
    from orchestrator.sweep.early_stop import RecordStoppedTrials
    from orchestrator.sweep.progress import SweepProgress

    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_record("k1", {"ipc": 1}, "running")
    recorder = RecordStoppedTrials(store.root, ["ipc"])
    trial = SimpleNamespace(trial_id="t1", config={"ipc": 1, "repeat": 0})
    going = {"phase": "distill", "distill_step": 20, "probe_val_acc": 0.4, "trial_key": "k1"}
    recorder.on_trial_result(0, [], trial, going)
    assert store.trial_record("k1")["status"] == "running" and "stopped_at_step" not in going
    stopping = {**going, "done": True}
    recorder.on_trial_result(0, [], trial, stopping)
    assert store.trial_record("k1") == {
        "trial_key": "k1",
        "config": {"ipc": 1},
        "status": "stopped",
        "rung": 20,
        "metric": 0.4,
        "metric_name": "probe_val_acc",
        "trial_id": "t1",
    }
    assert stopping["stopped_at_step"] == 20
    finished = {"phase": "done", "done": True, "val_acc": 0.5, "trial_key": "k2"}  # not the scheduler's
    recorder.on_trial_result(0, [], trial, finished)
    assert "stopped_at_step" not in finished and store.trial_record("k2") is None

    import io

    from rich.console import Console

    progress = SweepProgress("val_acc", "max", 2, Console(file=io.StringIO()))
    progress("complete", "t1", stopping)
    progress("complete", "t2", {"phase": "stopped", "stopped_at_step": 40, "probe_val_acc": 0.25})
    assert progress.stopped == {
        "t1": "at distillation step 20 (probe_val_acc 40.0%)",
        "t2": "at distillation step 40 (probe_val_acc 25.0%), in an earlier run",
    }
