"""Running ``ddx evaluate``'s plan on the connected Ray: the sets, their baselines, the reference.

Every unit of the plan (:mod:`orchestrator.evaluation.external`) is evaluated by the evaluation
routine sweeps use (:class:`~orchestrator.evaluation.sets.Evaluator`). Each set's row file is this
process's while it evaluates that set: a second ``ddx evaluate`` into the same folder (the default
``--out`` of a preset is shared) evaluating the same set — a random baseline of the same IPC, say —
waits for it, then runs only what is still missing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd
import ray

from methods.networks import resolve_arch
from methods.parameterizations import payload_bytes
from methods.prerequisites import dataset_identity
from orchestrator.evaluation.external import Plan, Unit
from orchestrator.evaluation.jobs import EvalJob
from orchestrator.evaluation.reference import ReferenceJob, base_row, finish_references, launch_references
from orchestrator.evaluation.sets import Evaluation, Evaluator, SetUnderEvaluation
from orchestrator.storage.artifacts import ArtifactStore, cache_root, content_key
from orchestrator.storage.locations import join, write_bytes_atomic
from orchestrator.storage.results import REQUEST_FILE, ResultStore, Row
from orchestrator.sweep import prerequisites
from orchestrator.sweep.resume import describe_holder


@dataclass
class Outcome:
    experiment: str
    rows: pd.DataFrame
    reference: pd.DataFrame | None
    failed: int


def run(p: Plan, log: Callable[[str], None] = print) -> Outcome:
    """Evaluate every unit of the plan on the connected Ray cluster; write the results folder."""
    req = p.request
    store = ResultStore(req.out)
    artifacts = ArtifactStore(cache_root(req.storage))
    write_bytes_atomic(join(req.out, REQUEST_FILE), json.dumps(req.record(), indent=2, default=str).encode())
    set_bytes = {u.key: payload_bytes(u.payload) for u in p.units}  # what the tasks load
    for u in p.units:  # each set's file next to its rows (ddx report draws them; reproducible inputs)
        write_bytes_atomic(store.synthetic_path(u.key), set_bytes[u.key])

    dataset = req.dataset_options()
    names = prerequisites.needed((), p.students.label_modes)
    produced = prerequisites.Prerequisites()
    prerequisite_cols: Row = {}
    if names:
        log(f"{', '.join(names)}: finding or producing it (the label modes need {', '.join(names)})")
        resources = req.resources()
        produced = prerequisites.ensure(
            {n: req.prerequisite_options(n) for n in names},
            dataset,
            artifacts,
            prerequisites.Resources(resources.cpus, resources.gpus, resources.retries),
        )
        prerequisite_cols = produced.row_fields(artifacts)

    references = None
    ref_settings = req.reference_settings()
    if ref_settings is not None:
        jobs = [ReferenceJob(a, r, s) for a in p.students.archs for r in p.resolutions for s in p.students.seeds]
        identity = {"evaluate": req.name, "dataset": dataset_identity(dataset), "settings": asdict(ref_settings)}
        config = content_key(identity)
        references = launch_references(
            jobs, dataset, ref_settings, artifacts.root, req.resources(), req.out,
            base_row(req.name, dataset.name, config, ref_settings),
        )  # fmt: skip

    finished = total = 0

    def record(s: SetUnderEvaluation, job: EvalJob, row: Row) -> None:
        nonlocal finished
        store.write_trial_rows(s.key, s.rows)
        finished += 1
        ok = row["status"] == "ok"
        acc = f"test {row['test_acc']:.3f}" if ok else f"failed: {row.get('error')}"
        net = f"{resolve_arch(job.arch, job.resolution)}@{job.resolution}"
        what = f"{s.columns['objective']} · {row['protocol']} · {job.label_mode} · {net} seed {job.seed}"
        log(f"[{finished}/{total}] {what}: {acc}")

    evaluation = Evaluation(
        p.protocol, p.students, dataset, req.resources(), produced, artifacts.root, ars=req.spec.evaluation.ars
    )
    evaluator = Evaluator(evaluation, record)

    def launch(u: Unit) -> int:
        """Submit the unit's evaluations that its row file does not hold yet; how many."""
        found = [r for r in store.read_trial_rows(u.key) if r.get("status") == "ok"]
        ref = ray.put(set_bytes[u.key])
        resolution = int(u.payload["config"]["shape"]["resolution"])
        columns = {**u.columns, **prerequisite_cols}
        s = SetUnderEvaluation(u.key, ref, u.ipc, resolution, columns, found, u.resolutions, u.labels)
        return evaluator.submit(s)

    waiting: list[Unit] = []
    with contextlib.ExitStack() as held:
        for u in p.units:
            lock = store.rows_lock(u.key)
            if lock.try_acquire():
                held.callback(lock.release)
                total += launch(u)
            else:
                waiting.append(u)
                log(
                    f"{u.objective}: another ddx evaluate is evaluating it into this folder "
                    f"({describe_holder(lock.holder() or {})}); its evaluations run once that one has "
                    "written its rows, and only those still missing"
                )
        later = f" (and what is missing of {len(waiting)} held by another ddx evaluate, after it)" if waiting else ""
        log(f"{len(p.units)} sets ({p.data_summary}): {total} evaluations to run{later}")
        evaluator.drain()
        for u in waiting:
            held.enter_context(store.rows_lock(u.key))  # waits for the other run's hold
            missing = launch(u)
            total += missing
            log(f"{u.objective}: {missing} evaluations still missing after the other ddx evaluate")
            evaluator.drain()
    reference = finish_references(references) if references is not None else None
    df = store.consolidate()
    failed = int((df["status"] != "ok").sum()) if not df.empty else 0
    if reference is not None:
        failed += int((reference["status"] != "ok").sum())
    return Outcome(req.out, df, reference, failed)


__all__ = ["Outcome", "run"]
