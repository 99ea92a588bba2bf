"""ddx on a real multi-node Ray cluster with no shared disk, S3 storage and node failures.

One cluster for the module (:mod:`tests.cluster`): a head node (1 CPU, the ``ddx_driver``
resource) and a worker node (1 CPU) in its own mount namespace, where a tmpfs hides the
head's temp and cache folders, this test session's tmp dir and the test cache (which holds
the CIFAR-10 tree), with its own hostname and ``DDX_CACHE``. Storage is a moto S3 server (its
own process) on 127.0.0.1; every sweep is launched as a user would, ``ddx sweep SPEC --address HEAD --storage
's3://…?endpoint_override=…&scheme=http'`` in a subprocess. Node failures are SIGKILLs of
every process of the worker node, at moments read from the cluster's own state (a running
task on that node, a state checkpoint in storage), not from timers.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from methods.artifacts import MANIFEST_SUFFIX, content_key
from orchestrator.storage.locations import exists, filesystem, join, read_bytes, upload_file
from orchestrator.storage.staging import STAGING_KIND, staging_description
from tests.cluster import BIN, CLUSTER_ENV, LocalCluster, Node, S3Server, isolation_available, stop_group
from tests.conftest import TEST_CACHE
from tests.helpers import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

HEAD_RESOURCES = {"ddx_driver": 1000}
SWEEP_TIMEOUT = 900


class Env:
    """The module's cluster, its S3 storage and helpers to run sweeps on it."""

    def __init__(self, cluster: LocalCluster, storage: str, bucket_uri, work: Path) -> None:
        self.cluster = cluster
        self.storage = storage
        self.bucket_uri = bucket_uri
        self.work = work
        self.worker: Node = cluster.nodes[-1]
        self._workers = 1

    @property
    def head(self) -> Node:
        assert self.cluster.head is not None
        return self.cluster.head

    def revive(self) -> Node:
        """A live worker node (a fresh one after a kill), with the same private view as before."""
        if not self.worker.alive:
            self._workers += 1
            self.worker = self.cluster.add_worker(f"ddx-w{self._workers}")
        return self.worker

    def spec(self, data: dict[str, Any]) -> Path:
        path = self.work / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def sweep_args(self, spec: Path) -> list[str]:
        return [str(BIN / "ddx"), "sweep", str(spec), "--address", self.cluster.address, "--storage", self.storage]

    def sweep(self, data: dict[str, Any]) -> tuple[int, str]:
        spec = self.spec(data)
        return self.cluster.run(self.sweep_args(spec), self.work / f"{data['name']}.log", timeout=SWEEP_TIMEOUT)

    def submit(self, data: dict[str, Any]) -> tuple[int, str]:
        """Submit the sweep as a Ray job from this checkout (README: ``ray job submit --working-dir .``):
        the code is uploaded to the cluster and unpacked on each node that runs a piece of it."""
        spec = self.spec(data)
        args = [
            str(BIN / "ray"), "job", "submit", "--address", self.cluster.dashboard_url, "--working-dir", ".", "--",
            "ddx", "sweep", str(spec), "--address", "auto", "--storage", self.storage,
        ]  # fmt: skip
        return self.cluster.run(args, self.work / f"{data['name']}.log", timeout=SWEEP_TIMEOUT, cwd=REPO)

    def rows_written(self, name: str) -> int:
        """Rows the sweep's trials have written so far (their row files in S3)."""
        fs, path = filesystem(join(self.exp(name), "rows"))
        count = 0
        for info in fs.get_file_info(_selector(path)):
            if info.path.endswith(".parquet"):
                with fs.open_input_file(info.path) as fh:
                    count += pq.read_metadata(fh).num_rows
        return count

    def exp(self, name: str) -> str:
        return join(self.storage, name)

    def rows(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(read_bytes(join(self.exp(name), "results.parquet"))))

    def synthetic(self, name: str) -> dict[str, Any]:
        fs, path = filesystem(join(self.exp(name), "synthetic"))
        (info,) = [i for i in fs.get_file_info(_selector(path)) if i.path.endswith(".pt")]
        with fs.open_input_stream(info.path) as fh:
            return torch.load(io.BytesIO(fh.read()), map_location="cpu", weights_only=True)

    def artifacts(self, kind: str) -> list[str]:
        """Names of the objects under ``<storage>/cache/<kind>/``."""
        fs, path = filesystem(join(self.storage, "cache", kind))
        return sorted(i.base_name for i in fs.get_file_info(_selector(path)) if i.is_file)


def _selector(path: str) -> pafs.FileSelector:
    return pafs.FileSelector(path, allow_not_found=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    reason = isolation_available()
    if reason:
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in CLUSTER_ENV.items():  # this process reads S3 and queries the state API too
            mp.setenv(key, value)
        TEST_CACHE.mkdir(parents=True, exist_ok=True)
        work = tmp_path_factory.mktemp("cluster")
        s3 = S3Server(work / "s3.log")
        cluster = LocalCluster(hide=[tmp_path_factory.getbasetemp(), TEST_CACHE])
        try:
            cluster.start_head(cpus=1, resources=HEAD_RESOURCES)
            cluster.add_worker("ddx-w1")
            storage = join(s3.bucket("ddx-cluster"), "results")
            yield Env(cluster, storage, s3.bucket, work)
        finally:
            cluster.shutdown()
            s3.stop()


def _ok(rc: int, out: str) -> None:
    assert rc == 0, out[-6000:]


def _digits(name: str, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"objective": "dm", "ipc": 1, "iterations": 10, "batch_real": 32},
        "resources": {"distill_workers": 1, "cpus_per_worker": 1, "eval_cpus": 1, "max_concurrent_trials": 1},
        "evaluation": {"archs": ["convnet_d2"], "seeds": 2, "epochs": 20, "batch_size": 64},
    }
    for key, value in over.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    return spec


def _run_on(env: Env, node: Node, code: str) -> Any:
    """Run ``code`` in a Ray task pinned to ``node``; return what it prints last (as JSON)."""
    script = f"""
import json, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address={env.cluster.address!r}, log_to_driver=False)
@ray.remote(num_cpus=1)
def probe():
{chr(10).join("    " + line for line in code.strip().splitlines())}
print(json.dumps(ray.get(probe.options(
    scheduling_strategy=NodeAffinitySchedulingStrategy({node.node_id!r}, soft=False)).remote())))
"""
    rc, out = env.cluster.run([sys.executable, "-c", script], env.work / "probe.log", timeout=300)
    assert rc == 0, out[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_the_worker_node_sees_none_of_the_heads_files(env: Env, tmp_path: Path) -> None:
    """The premise of every other test here: no shared disk between the nodes."""
    markers = [tmp_path / "test-tmp", env.head.cache / "head-cache", TEST_CACHE / "test-cache"]
    for marker in markers:
        marker.write_text("x")
    code = f"""
import os, socket
return {{"host": socket.gethostname(), "cache": os.environ.get("DDX_CACHE"),
        "seen": [os.path.exists(p) for p in {[str(m) for m in markers]!r}]}}
"""
    try:
        on_worker = _run_on(env, env.worker, code)
        on_head = _run_on(env, env.head, code)
    finally:
        for marker in markers:
            marker.unlink()
    assert on_worker == {"host": "ddx-w1", "cache": str(env.worker.cache), "seen": [False, False, False]}
    assert on_head == {"host": env.head.hostname, "cache": str(env.head.cache), "seen": [True, True, True]}
    assert env.head.hostname != "ddx-w1"


def test_a_worker_no_node_holds_is_one_line_and_exit_2_before_any_trial(env: Env) -> None:
    """Two CPUs per worker on this cluster of 1-CPU nodes, which has no autoscaler (Ray runs its
    read-only one): the sweep waited for ever; now one line, exit 2, and nothing written."""
    name = "too_big"
    start = time.monotonic()
    rc, out = env.sweep(_digits(name, resources={"cpus_per_worker": 2}))
    took = time.monotonic() - start
    errors = [line for line in out.splitlines() if line.startswith("error")]
    assert rc == 2 and errors == [
        "error: resources.cpus_per_worker: one unit needs CPU 2 but no node of this Ray has that (largest: CPU 1), "
        "and this cluster has no autoscaler to add one; lower it or add such a node"
    ], out[-3000:]
    assert took < 120 and " : started" not in out  # no trial started
    assert not exists(join(env.exp(name), "spec.json"))


def test_teacher_sweep_soft_labels_and_cfm_on_two_nodes(env: Env) -> None:
    """Soft labels and a CFM trial need the teacher: produced once, in S3, loaded on both nodes."""
    env.revive()
    name = "teacher"
    spec = _digits(
        name,
        teacher={"arch": "convnet_d2", "epochs": 2, "batch_size": 64},
        method={"iterations_per_batch": 3},
        search={"objective": {"grid": ["dm", "cfm"]}},
        evaluation={"label_mode": "soft", "temperature": 30, "seeds": 3},
    )
    del spec["method"]["objective"]  # swept
    _ok(*env.sweep(spec))
    rows = env.rows(name)
    assert len(rows) == 6 and not rows.duplicated(["trial_key", "eval_arch", "seed", "label_mode"]).any()
    assert (rows["status"] == "ok").all(), rows[["status", "error"]]
    assert set(rows["objective"]) == {"dm", "cfm"} and set(rows["label_mode"]) == {"soft"}
    assert rows["val_acc"].between(0, 1).all()
    assert set(rows["hostname"]) == {env.head.hostname, env.worker.hostname}, rows["hostname"]
    assert rows["node_id"].nunique() == 2

    # one teacher in the bucket; a verified copy of it in each node's own cache
    teacher = env.artifacts("teacher")
    assert len(teacher) == 2 and teacher[1] == teacher[0] + ".manifest.json", teacher
    manifest = json.loads(read_bytes(join(env.storage, "cache", "teacher", teacher[1])))
    copies = {node.hostname: node.cache / "artifacts" / "teacher" / teacher[0] for node in (env.head, env.worker)}
    for host, copy in copies.items():
        assert copy.is_file(), f"no teacher copy on {host}"
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["producer"] in copies  # the other node fetched it from S3 and loaded it


def _tiny_cifar(root: Path, train: int, test: int) -> list[tuple[Path, str]]:
    """(file, relative path) of a tiny CIFAR-10 tree: ``train`` + ``test`` images per class."""
    out = []
    for split, n in (("train", train), ("test", test)):
        for cls in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            for img in sorted(cls.iterdir())[:n]:
                out.append((img, f"{split}/{cls.name}/{img.name}"))
    return out


def test_ddif_sweep_on_a_dataset_staged_from_s3(env: Env, cifar10_root: Path) -> None:
    """``dataset.root`` is an S3 URI: each node stages it once into its own cache; DDiF fields;
    submitted as a Ray job with the checkout as its working dir (no node has it at that path)."""
    env.revive()
    data_root = join(env.bucket_uri("ddx-data"), "cifar10-tiny")
    for path, rel in _tiny_cifar(cifar10_root, train=12, test=5):
        upload_file(path, join(data_root, *rel.split("/")))
    name = "ddif_s3"
    spec = _digits(
        name,
        dataset={"name": "cifar10", "root": data_root, "resolution": 16, "train_per_class": 10,
                 "val_per_class": 2, "test_per_class": 5},
        method={"parameterization": "neural_field", "warmup_iterations": 20, "iterations": 10},
        search={"nf_width": {"grid": [4, 6]}},
        evaluation={"epochs": 10},
    )  # fmt: skip
    rc, out = env.submit(spec)
    assert rc == 0 and "succeeded" in out, out[-6000:]
    rows = env.rows(name)
    assert len(rows) == 4 and (rows["status"] == "ok").all(), rows[["status", "error"]]
    assert set(rows["parameterization"]) == {"neural_field"} and set(rows["nf_width"]) == {4, 6}
    assert set(rows["hostname"]) == {env.head.hostname, env.worker.hostname}, rows["hostname"]
    unpacked = list(
        env.worker.temp_dir.glob("session_*/runtime_resources/working_dir_files/*/orchestrator/sweep/trial.py")
    )
    assert unpacked, "the job's code did not reach the worker node through Ray"
    staged = content_key(staging_description(data_root))
    for node in (env.head, env.worker):
        tree = node.cache / STAGING_KIND / staged
        manifest = json.loads(Path(str(tree) + MANIFEST_SUFFIX).read_text())  # written once the copy is complete
        assert manifest["description"] == {"root": data_root}, f"not staged on {node.name}"
        assert len(manifest["files"]) == 170
        assert len(list((tree / "train").glob("*/*.jpg"))) == 120 and len(list((tree / "test").glob("*/*.jpg"))) == 50


def _wait_for(what: str, check, timeout: float, proc=None, log: Path | None = None, poll: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log else ""
            raise AssertionError(f"the sweep ended (rc {proc.returncode}) before {what}:\n{tail}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _hold_the_heads_cpu(env: Env):
    """A driver whose actor holds the head's CPU (until stopped), so new work lands on the worker."""
    script = f"""
import ray, time
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address={env.cluster.address!r}, log_to_driver=False)
@ray.remote(num_cpus=1)
class Hold:
    def ping(self): return 1
h = Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy({env.head.node_id!r}, soft=False)).remote()
ray.get(h.ping.remote())
print("holding", flush=True)
time.sleep(3600)
"""
    log = env.work / "hold.log"
    proc = env.cluster.popen([sys.executable, "-c", script], log)
    _wait_for("the head's CPU to be held", lambda: "holding" in log.read_text(errors="replace"), 120, proc, log)
    return proc


def test_worker_node_killed_mid_distillation_resumes_from_storage(env: Env, tmp_path: Path) -> None:
    """SIGKILL the node running the distillation: Ray reruns the task on the head, which resumes
    from the state checkpoint in S3; the set equals an uninterrupted run's (DM is deterministic)."""
    worker = env.revive()
    name = "kill_distill"
    iterations, every = 120, 10
    data = _digits(
        name,
        method={"ipc": 2, "iterations": iterations, "checkpoint_every": every},
        evaluation={"seeds": 1, "epochs": 2},
    )
    spec = env.spec(data)
    hold = _hold_the_heads_cpu(env)
    log = env.work / f"{name}.log"
    proc = env.cluster.popen(env.sweep_args(spec), log)
    state_dir = join(env.exp(name), "train")

    def checkpoint_step() -> int | None:
        fs, path = filesystem(state_dir)
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        states = [i.path for i in fs.get_file_info(selector) if i.path.endswith("/state.pt")]
        if not states:
            return None
        with fs.open_input_stream(states[0]) as fh:
            done = int(torch.load(io.BytesIO(fh.read()), map_location="cpu", weights_only=True)["done"])
        return done if done >= 2 * every else None

    step = _wait_for("a state checkpoint in S3", checkpoint_step, 600, proc, log)
    running = env.cluster.running_tasks("distill_stream")
    assert [t["node_id"] for t in running] == [worker.node_id], running
    worker.kill()  # before the holder stops (that takes about a second): the run is still mid-way
    stop_group(hold)  # the head's CPU is free for the rerun
    rc = proc.wait(timeout=SWEEP_TIMEOUT)
    out = log.read_text(errors="replace")
    assert rc == 0, out[-6000:]
    assert step < iterations

    rows = env.rows(name)
    assert len(rows) == 1 and (rows["status"] == "ok").all(), rows[["status", "error"]]
    payload = env.synthetic(name)
    resumed = int(payload["extra"]["resumed_from_step"])
    assert step <= resumed < iterations and resumed % every == 0, resumed
    assert not exists(join(state_dir, str(rows["trial_key"].iloc[0]), "state.pt"))  # cleaned up after the set

    reference = _uninterrupted(data, tmp_path)
    assert payload["config"] == reference["config"] and set(payload["state"]) == set(reference["state"])
    for key, tensor in reference["state"].items():
        assert torch.equal(payload["state"][key], tensor), key


def _uninterrupted(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The same trial's distillation body, run here from start to end with nothing killed."""
    from orchestrator.spec.load import parse_spec
    from orchestrator.spec.trials import trial_config
    from orchestrator.sweep.distill_job import DistillJob
    from orchestrator.sweep.distill_worker import distill_body

    spec = parse_spec({**data, "storage": str(folder)})
    threads = torch.get_num_threads()
    job = DistillJob(
        config=trial_config(spec, {}),
        store_root=str(folder / "cache"),
        state_location=str(folder / "state.pt"),
        synthetic_location=str(folder / "set.pt"),
    )
    try:
        distill_body(job, lambda _: None)
    finally:
        torch.set_num_threads(threads)
    return torch.load(folder / "set.pt", map_location="cpu", weights_only=True)


def test_worker_node_killed_mid_evaluation_and_a_nan_trial(env: Env) -> None:
    """SIGKILL the node while it trains students: the lost tasks are retried on the head (0 rows
    lost, 0 duplicated); a trial whose loss turns NaN is ``failed`` with its reason; exit code 1."""
    worker = env.revive()
    name = "kill_eval"
    seeds = 4
    data = _digits(
        name,
        search={"lr_images": {"grid": [1.0, 1e30]}},
        evaluation={"seeds": seeds, "epochs": 1200},  # a student trains for about 5 s on the worker
    )
    spec = env.spec(data)
    hold = _hold_the_heads_cpu(env)  # the first trial's work runs on the worker
    log = env.work / f"{name}.log"
    proc = env.cluster.popen(env.sweep_args(spec), log)

    def evaluating_on_worker() -> bool:
        # a student finished (its row is in S3) and the next one runs on the worker: the worker
        # took it over at once (a leased worker process gets the next task), so this lands mid-task.
        # Read from the worker's processes, not the state API: its RUNNING lags, and once said so
        # of a student that had finished, so that the kill found nothing to retry
        return bool(env.rows_written(name)) and worker.executing("evaluate_group")

    _wait_for("an evaluation running on the worker node", evaluating_on_worker, 600, proc, log, 0.1)
    worker.kill()  # at once: a student trains for several seconds
    stop_group(hold)  # the head's CPU is free for the retries
    rc = proc.wait(timeout=SWEEP_TIMEOUT)
    out = log.read_text(errors="replace")
    assert rc == 1, out[-6000:]

    # the student killed with the node was trained again, on the head (Ray's task retry)
    from ray.util.state import list_tasks

    def evaluations(*filters: tuple[str, str, str]) -> list:
        return list_tasks(
            address=env.cluster.address, filters=[("name", "=", "evaluate_group"), *filters],
            detail=True, limit=1000, raise_on_missing_output=False,
        )  # fmt: skip

    killed = [t for t in evaluations(("node_id", "=", worker.node_id)) if t.state == "FAILED"]
    assert len(killed) == 1, killed
    attempts = [t for t in evaluations(("job_id", "=", killed[0].job_id)) if t.task_id == killed[0].task_id]
    retried = [t for t in attempts if t.attempt_number >= 1]
    where = {worker.node_id: "worker", env.head.node_id: "head"}
    said = [(t.attempt_number, where.get(t.node_id, t.node_id), t.state) for t in attempts]
    assert retried and all(t.node_id == env.head.node_id and t.state == "FINISHED" for t in retried), said

    rows = env.rows(name)
    ok, nan = rows[rows["lr_images"] == 1.0], rows[rows["lr_images"] == 1e30]
    assert len(ok) == seeds and sorted(ok["seed"]) == list(range(seeds))  # none lost, none twice
    assert (ok["status"] == "ok").all(), ok[["status", "error"]]
    assert len(nan) == seeds and (nan["status"] == "failed").all()
    assert nan["error"].str.contains("loss became nan at step").all(), nan["error"]
    failed_lines = [line for line in out.splitlines() if line.startswith("row failed")]
    assert len(failed_lines) == seeds and all("loss became nan" in line for line in failed_lines), out[-3000:]
