"""The trial driver stays light, and every task of a worker computes on one thread.

* the modules a Tune trial imports load neither torch nor the methods' implementations (a
  trial is plumbing; the tensors live in the tasks it launches);
* what the trial knows of a saved set comes from its card, which must say what the tensors say;
* distillation, evaluation and prerequisite tasks run their bodies on the process's one
  compute thread (:mod:`orchestrator.cluster.compute_thread`), and errors reach the caller.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cluster import compute_thread
from tests.helpers import fresh_output

DRIVER_MODULES = (
    "orchestrator.sweep.trial",
    "orchestrator.sweep.distill_job",
    "orchestrator.evaluation.tasks",
    "orchestrator.sweep.prerequisites",
)


def test_the_trial_driver_imports_no_torch() -> None:
    code = (
        "import sys\n"
        f"for m in {DRIVER_MODULES!r}: __import__(m)\n"
        "from orchestrator.sweep.prerequisites import Prerequisites, needed\n"
        "from methods.registry import OBJECTIVES, PREREQUISITES\n"
        "assert needed(OBJECTIVES.get('cfm').requires, ['hard', 'soft']) == ['teacher']\n"
        "assert needed(OBJECTIVES.get('dm').requires, ['hard']) == []\n"
        "Prerequisites({'teacher': PREREQUISITES.get('teacher').options()})\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'methods.evaluation.student') if m in sys.modules))\n"
    )
    assert fresh_output(code) == "[]"


def test_a_set_card_says_what_the_tensors_say(tmp_path: Path) -> None:
    from methods.parameterizations import build_parameterization, payload_from_bytes
    from methods.parameterizations.base import ParamConfig
    from methods.parameterizations.options import NeuralFieldOptions, PixelOptions, SetShape
    from orchestrator.sweep.distill_job import set_card_location
    from orchestrator.sweep.distill_worker import set_card, write_set

    shape = SetShape(num_classes=10, ipc=1, channels=3, resolution=32, dataset="cifar10")
    for name, options in (("pixels", PixelOptions()), ("neural_field", NeuralFieldOptions(nf_width=8, nf_depth=2))):
        param = build_parameterization(ParamConfig(name=name, shape=shape, options=options))
        location = str(tmp_path / f"{name}.pt")
        write_set(location, param, {"world_size": 1, "distill_seconds": 1.5})
        card = json.loads(Path(set_card_location(location)).read_text())
        # a set saved without a card is described from its tensors: the same card
        assert card == json.loads(json.dumps(set_card(payload_from_bytes(Path(location).read_bytes()))))
        assert card["describe"]["instances_per_class"] == param.per_class
        assert card["describe"]["budget_scalars"] == 3 * 32 * 32
        assert card["config"]["name"] == name and card["config"]["shape"]["ipc"] == 1
        assert card["extra"] == {"world_size": 1, "distill_seconds": 1.5}
    # the neural field fits more instances than pixels in the same budget
    fields = json.loads(Path(set_card_location(str(tmp_path / "neural_field.pt"))).read_text())
    assert fields["describe"]["instances_per_class"] > 1


def test_compute_thread_is_one_thread_for_every_call() -> None:
    @compute_thread.on_compute_thread
    def where() -> tuple[str, int]:
        return threading.current_thread().name, threading.get_ident()

    first, second = where(), where()
    assert first == second and first[0].startswith(compute_thread.THREAD_NAME)
    assert first[1] != threading.get_ident()
    # from another thread too
    seen: list[tuple[str, int]] = []
    t = threading.Thread(target=lambda: seen.append(where()))
    t.start()
    t.join()
    assert seen == [first]


def test_compute_thread_raises_the_bodys_error_and_nests() -> None:
    @compute_thread.on_compute_thread
    def fails() -> None:
        raise ValueError("the body's error")

    with pytest.raises(ValueError, match="the body's error"):
        fails()

    @compute_thread.on_compute_thread
    def outer() -> int:
        return inner() + 1  # a wrapped call made on the compute thread runs there directly

    @compute_thread.on_compute_thread
    def inner() -> int:
        return 41

    assert outer() == 42


def test_a_process_ends_while_its_compute_thread_still_works() -> None:
    """The compute thread is a daemon: a Ray worker told to exit (Ctrl-C of a sweep, a cancelled task)
    ends at once. A ``ThreadPoolExecutor``'s thread was joined at exit: the worker lived on, an orphaned
    ``ray::IDLE`` holding its memory, until the task body it ran (an evaluation) had finished."""
    code = (
        "import time\n"
        "from orchestrator.cluster import compute_thread\n"
        "compute_thread.submit(time.sleep, 600)\n"
        "time.sleep(0.2)\n"
        "print(compute_thread.THREAD_NAME in [t.name for t in __import__('threading').enumerate()])\n"
    )
    start = time.monotonic()
    assert fresh_output(code, timeout=60) == "True"  # it ran, and did not hold the exit
    assert time.monotonic() - start < 60


def test_the_streaming_distillation_body_runs_on_the_compute_thread(monkeypatch) -> None:
    from orchestrator.sweep import distill_worker
    from orchestrator.sweep.distill_job import DistillJob

    ran_on: list[str] = []

    def body(job: DistillJob, report) -> dict[str, Any]:
        ran_on.append(threading.current_thread().name)
        for step in (1, 2):
            report({"phase": "distill", "distill_step": step})
        return {"distill_seconds": 0.1, "steps": 2.0}

    monkeypatch.setattr(distill_worker, "distill_body", body)
    job = DistillJob(config=None, store_root="", state_location="", synthetic_location="")  # type: ignore[arg-type]
    items = list(distill_worker.stream_body(job))
    assert [i.get("distill_step") for i in items[:2]] == [1, 2]
    assert items[-1] == {"distill_done": 1, "distill_seconds": 0.1, "steps": 2.0}
    assert ran_on == [compute_thread.on_compute_thread(lambda: threading.current_thread().name)()]

    def broken(job: DistillJob, report) -> dict[str, Any]:
        report({"phase": "distill", "distill_step": 1})
        raise FloatingPointError("dm loss became nan at step 2")

    monkeypatch.setattr(distill_worker, "distill_body", broken)
    stream = distill_worker.stream_body(job)
    assert next(stream)["distill_step"] == 1
    with pytest.raises(FloatingPointError, match="nan at step 2"):
        next(stream)


def test_the_warm_up_env_is_the_recorded_one_with_the_drivers_values_never_written(tmp_path, monkeypatch) -> None:
    """A trial's environment is recorded for the next warm-up: variables the driver has by name
    (their values read from the driver's environment when the warm-up starts), the rest with
    their values; a record of another Ray version, or none, starts no warm-up."""
    import ray

    from orchestrator.sweep import warm_up

    path = tmp_path / "trial-env.json"
    monkeypatch.setenv("DDX_TEST_SECRET", "s3cr3t")
    recorder = warm_up.EnvRecorder(str(path), frozenset({"DDX_TEST_SECRET", "RAY_TRAIN_V2_ENABLED", "UNUSED"}))
    trial_env = {"DDX_TEST_SECRET": "s3cr3t", "RAY_TRAIN_V2_ENABLED": "1", "SET_BY_TUNE": "1"}
    record = recorder.record(trial_env)
    assert record == {
        "ray": ray.__version__,
        "set": {"SET_BY_TUNE": "1"},
        "from_driver": ["DDX_TEST_SECRET", "RAY_TRAIN_V2_ENABLED"],
    }
    assert warm_up.trial_task_env(path) is None  # nothing recorded yet
    path.write_text(json.dumps(record))
    monkeypatch.setenv("RAY_TRAIN_V2_ENABLED", "1")
    assert warm_up.trial_task_env(path) == {"env_vars": trial_env}
    monkeypatch.delenv("DDX_TEST_SECRET")  # unset since: Tune copies it no more, nor does the warm-up
    assert warm_up.trial_task_env(path) == {"env_vars": {"RAY_TRAIN_V2_ENABLED": "1", "SET_BY_TUNE": "1"}}
    path.write_text(json.dumps({**record, "ray": "0.0.1"}))
    assert warm_up.trial_task_env(path) is None  # another Ray's trials may run in another environment
    path.write_text("{not json")
    assert warm_up.trial_task_env(path) is None


def test_preparing_a_sweep_imports_neither_tune_nor_pandas() -> None:
    """``ddx sweep`` checks the input and starts the warm-up before Tune's ~1 s import."""

    code = (
        "import sys; import orchestrator.sweep.preflight, orchestrator.sweep.warm_up; "
        "print(sorted(m for m in ('ray.tune', 'pandas', 'torch') if m in sys.modules))"
    )
    assert fresh_output(code) == "[]"


def test_the_warm_up_imports_what_a_tasks_first_optimizer_would() -> None:
    """After the warm-up body, building a student and its first ``torch.optim`` optimizer imports
    nothing of ``torch._dynamo`` (~1.3 s, imported by an optimizer's first construction)."""
    code = (
        "import sys, torch\n"
        "from orchestrator.sweep.warm_up import warm\n"
        "from methods.datasets.options import DatasetOptions\n"
        "warm(DatasetOptions(name='digits', resolution=8), 1)\n"
        "from methods.networks import build_network\n"
        "before = set(sys.modules)\n"
        "torch.optim.SGD(build_network('convnet_d3', 1, 10, 8).parameters(), lr=0.1)\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('torch', 'torchvision'))))\n"
    )
    assert fresh_output(code) == "[]"


def test_a_task_of_a_trial_reuses_the_worker_warmed_in_the_recorded_environment(
    ray_session, tmp_path: Path, monkeypatch
) -> None:
    """Ray reuses a worker only for tasks of the same runtime environment: a first trial records
    its environment (through Ray's public runtime context), a warm-up task runs in the
    environment recorded, and the task a second trial launches lands on that warm worker. As in a
    sweep, the warm-up holds the CPUs the task needs until the trial launches it (an idle worker
    may be stopped by Ray meanwhile). A variable only this test sets keeps other tests' idle
    workers out; its value is never written."""
    import time
    import uuid

    import ray
    from ray import tune

    from orchestrator.sweep import warm_up

    token = f"ddx-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)  # one of the variables Tune copies into its trials
    path = tmp_path / "trial-env.json"
    recorder = warm_up.EnvRecorder(str(path), frozenset(os.environ))
    seen, go = tmp_path / "seen.json", tmp_path / "go"  # one machine: the trial writes what its task saw

    def pid() -> int:
        return os.getpid()

    def warm_until_go() -> int:
        deadline = time.monotonic() + 300
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return os.getpid()

    def recording(config: dict[str, Any]) -> None:
        recorder()
        tune.report({"done": 1})

    def launching(config: dict[str, Any]) -> None:
        task = ray.remote(pid).options(num_cpus=1, scheduling_strategy="DEFAULT")  # as ddx launches its tasks
        go.touch()
        seen.write_text(json.dumps(ray.get(task.remote())))
        tune.report({"done": 1})

    def fit(trainable: Any, name: str) -> None:
        run_config = tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0)
        tune.Tuner(tune.with_resources(trainable, {"CPU": 0.01}), run_config=run_config).fit()

    fit(recording, "record")
    env = warm_up.trial_task_env(path)
    assert env is not None and token not in path.read_text()
    cpus = ray.cluster_resources()["CPU"] - 0.01  # all but the trial driver's: the task waits for the warm-up
    warming = ray.remote(warm_until_go).options(num_cpus=cpus, runtime_env=env).remote()
    fit(launching, "launch")
    assert json.loads(seen.read_text()) == ray.get(warming)


def test_a_train_runs_error_line_is_the_failing_workers_own() -> None:
    """A Python exception in a Train worker reached the rows as ``WorkerGroupError: Training failed due to
    worker errors: …``; the row now says the worker's exception. A rank whose process died (only Ray's
    error) gives way to one whose code raised."""
    from ray.exceptions import ActorDiedError
    from ray.train import WorkerGroupError

    from methods.distill.loop import DivergedError
    from orchestrator.errors import error_line, failed_cause

    diverged = DivergedError("dm loss became nan at step 3 of 20")
    group = WorkerGroupError("[Rank 1 Error Snippet]: …", {0: ActorDiedError(), 1: diverged})
    assert failed_cause(group) == (diverged, 1)
    assert error_line(group) == "DivergedError: dm loss became nan at step 3 of 20"
    assert error_line(RuntimeError("plain\nlast line")) == "RuntimeError: last line"
    # rank 1's process died; rank 0's gloo collective then lost its peer: the death is what failed
    dead = ActorDiedError()
    gloo = RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:9131")
    assert failed_cause(WorkerGroupError("…", {0: gloo, 1: dead})) == (dead, 1)


def test_a_dead_workers_row_names_its_process_its_logs_last_line_and_where_the_log_is(tmp_path: Path) -> None:
    """When only Ray's error is left (the process died), the rank's record — written by the worker when it
    started — says which process it was and where it logged; Ray's marker lines are not its last line."""
    import socket

    from ray.exceptions import ActorDiedError
    from ray.train import WorkerGroupError

    from orchestrator.sweep.distill_job import worker_record_location
    from orchestrator.sweep.distill_run import failure_line

    log = tmp_path / "logs" / "worker-ab12-01000000-4242.err"
    log.parent.mkdir()
    log.write_text("warming up\nFatal Python error: Segmentation fault\n\n:task_name:RayTrainWorker.run\n")
    workers = str(tmp_path / "workers")
    record = {"rank": 1, "hostname": socket.gethostname(), "node_ip": "10.1.2.3", "pid": 4242, "log": str(log)}
    Path(worker_record_location(workers, 1)).parent.mkdir(parents=True)
    Path(worker_record_location(workers, 1)).write_text(json.dumps(record))
    group = WorkerGroupError("…", {1: ActorDiedError()})
    assert failure_line(group, workers) == (
        "the process of Train rank 1 (pid 4242) died (ActorDiedError: The actor died unexpectedly before "
        "finishing this task.); the last line of its log: Fatal Python error: Segmentation fault; "
        f"its log: 10.1.2.3:{log}"
    )
    # on another host the log cannot be read here: it is named, no more
    Path(worker_record_location(workers, 1)).write_text(json.dumps({**record, "hostname": "elsewhere"}))
    assert failure_line(group, workers).endswith(
        f"died (ActorDiedError: The actor died unexpectedly before finishing this task.); its log: 10.1.2.3:{log}"
    )
    # no record (the process died before it wrote one): Ray's line, as before
    assert (
        failure_line(group, str(tmp_path / "none"))
        == "ActorDiedError: The actor died unexpectedly before finishing this task."
    )


def test_a_failed_evaluation_task_row_has_the_workers_own_error_and_where_it_logged(ray_session) -> None:
    """An evaluation task that raised in its Ray worker: the row said the last line of Ray's
    ``RayTaskError`` text and nothing of where the worker logged. It now says the worker's own
    exception line, and ``error_log`` is that worker's log file (``node:path``), which holds the traceback."""
    from types import SimpleNamespace

    import ray

    from orchestrator.evaluation.tasks import evaluate_remote, failed_result

    job = SimpleNamespace(group=("convnet_d3", 8, "hard"))  # what the task reads before it decodes the set
    ref = evaluate_remote.options(max_retries=0).remote(b"not a saved set", [job], None, None, 1, False)
    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        ray.get(ref)
    row = failed_result(raised.value)
    cause = raised.value.cause
    assert row["status"] == "failed" and row["error"].startswith(f"{type(cause).__name__}: "), row["error"]
    assert "RayTaskError" not in row["error"] and "Traceback" not in row["error"]
    node, _, path = row["error_log"].partition(":")
    assert node == ray.util.get_node_ip_address() and Path(path).name.startswith("worker-") and path.endswith(".err")
    deadline = time.monotonic() + 10  # the worker's stderr reaches its file at once; allow a slow disk
    while type(cause).__name__ not in Path(path).read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert type(cause).__name__ in Path(path).read_text()
    # a plain error (not from a Ray worker): its last line, as before, and no log
    plain = failed_result(RuntimeError("first\nlast line"))
    assert plain["error"] == "last line" and plain["error_log"] is None
