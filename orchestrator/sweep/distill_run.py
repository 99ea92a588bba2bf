"""Launching one trial's distillation: a streaming Ray task for one worker, a Ray Train run for several.

The trial driver's side; it imports neither torch nor the methods. Both paths run the same body
(:func:`orchestrator.sweep.distill_worker.distill_body`, imported only where it runs): load the
(staged) dataset and the trial's prerequisites (fetched from the artifact store onto this node),
resume from the trial's state in storage if there is one, distil, checkpoint the gathered state
to ``<experiment>/train/<trial key>/state.pt`` every ``checkpoint_every`` steps (rank 0 writes,
through :mod:`orchestrator.storage.locations`, so any node can resume it), and finally write the
synthetic set to ``<experiment>/synthetic/<trial key>.pt``. Progress (step, loss, probe accuracy)
is handed to a ``report`` function at every ``progress_every`` steps.

* **One worker** (``resources.distill_workers: 1``): a Ray *streaming generator* task that
  reserves the worker's CPUs/GPUs, runs the body and yields its progress to the trial. It runs in
  a pooled worker process, so a trial pays no process start, no placement group and no
  controller: the fixed cost per trial is a task submission. If its node dies, Ray runs the task
  again elsewhere and the body resumes from the last state in storage. A trial that stops
  reading it (Tune stopped the trial: the scheduler, Ctrl-C) cancels it by force: its body runs on
  the worker's compute thread, which a plain cancel (an interrupt of the task's main thread)
  would not stop.
* **Several workers**: a Ray Train ``TorchTrainer`` (gloo on CPU, nccl on GPU) named after the
  trial key; each worker runs the body on its rank; rank 0 puts its progress on a queue the trial
  reports to Tune from (:func:`run_train`); ``FailureConfig(max_failures)`` restarts the worker
  group after a failure and the body resumes from the state in storage.

Either path's body also ends early, without a set, when the trial's record says the scheduler
stopped the trial (:func:`orchestrator.sweep.distill_worker.stop_requested`): for a Train run,
whose workers the trial cannot cancel, that is how it stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import threading
from collections.abc import Iterator

import ray

from methods.records import JsonObject
from orchestrator.errors import error_line, failed_cause, from_ray, noted_log
from orchestrator.storage.locations import exists, read_json
from orchestrator.sweep.distill_job import JOB_KEY, PROGRESS_KEY, DistillJob, Metrics, Report, worker_record_location

#: a line Ray writes into a worker's log files to say which job, task or actor the next lines are from
_RAY_MARKER = re.compile(r"^:\w+:")
#: Ray's words for a process that is gone (a dead actor, a crashed worker)
_DIED = re.compile(r"\b(died|dead|crashed)\b", re.IGNORECASE)
#: how much of a log's end is read for its last line
_LOG_TAIL_BYTES = 64 * 1024


def distill_stream(job: DistillJob) -> Iterator[Metrics]:
    """The streaming task: :func:`orchestrator.sweep.distill_worker.stream_body`, imported where it runs."""
    from orchestrator.sweep.distill_worker import stream_body

    yield from stream_body(job)


distill_stream_remote = ray.remote(num_returns="streaming")(distill_stream)


def stream_distillation(job: DistillJob, cpus: float, gpus: float, retries: int) -> Iterator[Metrics]:
    """Launch the one-worker distillation task and yield what it yields (the last item has ``distill_done``).

    Closed before its end (the trial was stopped while it waited in ``tune.report``: the
    ``SystemExit`` Tune raises there unwinds the trial), it cancels the task by force."""
    job = dataclasses.replace(job, threads=max(1, int(cpus)))
    gen = distill_stream_remote.options(
        num_cpus=cpus,
        num_gpus=gpus,
        max_retries=retries,  # node or process loss: run again, resuming from the saved state
        retry_exceptions=False,  # an error of the method (e.g. a diverged loss) is not retried
        scheduling_strategy="DEFAULT",
    ).remote(job)
    ended = False
    try:
        for ref in gen:
            yield ray.get(ref)
        ended = True
    finally:
        if not ended:
            with contextlib.suppress(Exception):  # already ended, or Ray itself is going away
                ray.cancel(gen, force=True)


def run_train(
    job: DistillJob,
    run_name: str,
    storage_path: str,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    report: Report | None = None,
    max_failures: int = 2,
) -> None:
    """Fit a ``TorchTrainer`` of ``workers`` workers for ``job``, handing rank 0's progress to ``report``
    on the calling thread (a trial's ``tune.report``); the Train run's error, if any, is raised.

    The progress does not go through Train's own reports and Tune's ``TuneReportCallback``: a Train
    worker's report waits until the controller takes it, and that callback's hand-over to Tune
    waits until the trial takes it, which a stopped trial never does — its Train run then hung,
    workers holding their CPUs. Here rank 0 puts its progress on an unbounded queue (an actor of no
    CPU, as the callback's own queue was), ``fit`` runs on a helper thread, and the calling thread
    reports: the ``SystemExit`` Tune raises in a stopped trial's report unwinds it at once, and the
    Train run ends when its workers read the trial's ``stopped`` record at their next progress
    report (:func:`orchestrator.sweep.distill_worker.stop_requested`).
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Empty, Queue

    from orchestrator.storage.locations import filesystem, is_uri
    from orchestrator.sweep.distill_worker import train_worker

    use_gpu = gpus_per_worker > 0
    resources: dict[str, float] = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = gpus_per_worker
    job = dataclasses.replace(job, threads=max(1, int(cpus_per_worker)))
    fs, path = filesystem(storage_path)
    progress = Queue(actor_options={"num_cpus": 0}) if report is not None else None
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={JOB_KEY: job, PROGRESS_KEY: progress},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=path,
            storage_filesystem=fs if is_uri(storage_path) else None,
            failure_config=ray.train.FailureConfig(max_failures=max_failures, controller_failure_limit=2),
        ),
    )
    failed: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # raised on the calling thread below
            failed.append(err)

    runner = threading.Thread(target=fit, name=f"fit-{run_name}", daemon=True)  # a stopped trial leaves it
    runner.start()
    while True:
        running = runner.is_alive()
        if progress is None:
            runner.join(timeout=0.5)
        else:
            try:
                item = progress.get(timeout=0.5)
            except Empty:
                item = None
            if item is not None:
                report(item)  # Tune stopping the trial raises SystemExit here
                continue
        if not running:  # it had ended before the queue was found empty: nothing more will come
            break
    if failed:
        raise failed[0]


def last_log_line(path: str, hostname: str | None) -> str | None:
    """The last line of the log file ``path`` of a process on host ``hostname`` (Ray's own marker
    lines skipped); None when it is on another host or cannot be read."""
    if hostname != socket.gethostname():
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - _LOG_TAIL_BYTES))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return None
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip() and not _RAY_MARKER.match(ln.strip())]
    return lines[-1][:500] if lines else None


def _worker_record(workers_location: str, rank: int | None) -> JsonObject | None:
    """What rank ``rank`` (None: the one-worker task, rank 0) recorded of its process, if it has a log."""
    location = worker_record_location(workers_location, rank or 0)
    try:
        info = read_json(location) if exists(location) else None
    except Exception:  # unreadable: nothing is known
        return None
    return info if isinstance(info, dict) and info.get("log") else None


def failure_log(err: BaseException, workers_location: str) -> str | None:
    """Where the worker whose error failed a distillation logged (``node:path``): noted by the worker
    with its error (:func:`orchestrator.errors.noting_log`) or, when its process died (only Ray's
    error is left), read from its rank's record; None when neither says."""
    noted = noted_log(err)
    if noted:
        return noted
    cause, rank = failed_cause(err)
    info = _worker_record(workers_location, rank) if from_ray(cause) and workers_location else None
    return None if info is None else f"{info.get('node_ip') or info.get('hostname')}:{info['log']}"


def failure_line(err: BaseException, workers_location: str) -> str:
    """What a failed distillation's rows say: the worker's own exception line (under Ray's and Ray
    Train's wrappers, :func:`orchestrator.errors.error_line`) or, when only Ray's error is left (the
    worker's process died: a crash in gloo, a segfault, the OOM killer), which process died, the
    last line of its log when this host can read it, and where that log is (``node:path``; each
    rank recorded it when it started, :func:`orchestrator.sweep.distill_worker.record_worker`)."""
    line = error_line(err)
    cause, rank = failed_cause(err)
    if not from_ray(cause) or not workers_location:
        return line
    info = _worker_record(workers_location, rank)
    if info is None:
        return line
    who = "the distillation task's process" if rank is None else f"the process of Train rank {rank}"
    who += f" (pid {info.get('pid')})"
    name, _, said = line.partition(": ")
    if _DIED.search(str(cause)):  # Ray's wrapper of a dead process: its first sentence says enough
        first = re.split(r"(?<=\.)\s", said, maxsplit=1)[0] if said else ""
        out = f"{who} died ({name}: {first})" if first else f"{who} died ({name})"
    else:
        out = f"{line} ({who})"
    last = last_log_line(str(info["log"]), info.get("hostname"))
    if last:
        out += f"; the last line of its log: {last}"
    return f"{out}; its log: {info.get('node_ip') or info.get('hostname')}:{info['log']}"


__all__ = ["failure_line", "failure_log", "last_log_line", "run_train", "stream_distillation"]
