"""The Tune trainable: one trial = distil (Ray Train) → evaluate (Ray tasks) → record (Parquet).

The trial is a thin driver holding only a token resource; the Train workers and the
evaluation tasks reserve the real CPUs/GPUs. Every piece of work is keyed by the trial's
stable key (see :func:`orchestrator.search_space.trial_key`), so a re-run trial skips what
was finished: a distilled set already saved is not distilled again, and evaluation rows
already written are not run again.
"""

from __future__ import annotations

import io
import math
from typing import Any

import ray
import torch
from ray import tune

from orchestrator.cache import cache_root
from orchestrator.distill_job import DistillJob, run_train
from orchestrator.evaluation import EvalJob, plan_jobs, row_key_of, run_evaluations
from orchestrator.provenance import now, versions
from orchestrator.search_space import REPEAT_KEY, trial_hyper, trial_key
from orchestrator.spec import SweepSpec
from orchestrator.store import ResultStore, exists, join, read_bytes, write_bytes_atomic
from orchestrator.teachers import ensure_teacher, spec_needs_teacher, teacher_columns


def dataset_options(spec: SweepSpec) -> dict[str, Any]:
    return spec.dataset.model_dump()


def eval_settings(spec: SweepSpec) -> dict[str, Any]:
    return spec.evaluation.model_dump(exclude={"archs", "resolutions", "seeds", "label_mode", "reference"})


def eval_jobs(spec: SweepSpec, distill_resolution: int) -> list[EvalJob]:
    ev = spec.evaluation
    seeds = [spec.seed + i for i in range(ev.seeds)]
    return plan_jobs(ev.archs, ev.resolutions or [distill_resolution], seeds, ev.label_modes)


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    ok = [r for r in rows if r.get("status") == "ok"]

    def mean(col: str) -> float:
        vals = [float(r[col]) for r in ok if r.get(col) is not None and not math.isnan(float(r[col]))]
        return sum(vals) / len(vals) if vals else float("nan")

    return {
        "val_acc": mean("val_acc"),
        "test_acc": mean("test_acc"),
        "rows_ok": float(len(ok)),
        "rows_failed": float(len(rows) - len(ok)),
    }


def run_trial(config: dict[str, Any], spec_json: str, code: dict[str, str]) -> None:
    spec = SweepSpec.model_validate_json(spec_json)
    trial_id = tune.get_context().get_trial_id() or "local"
    hp = trial_hyper(spec, config)
    key = trial_key(spec, hp)
    store = ResultStore(spec.experiment_dir())
    distill_seed = spec.seed + int(hp.get(REPEAT_KEY, 0))
    teacher_path = str(ensure_teacher(spec, dataset_options(spec))) if spec_needs_teacher(spec, hp) else None

    syn_uri = store.synthetic_path(key)
    if exists(syn_uri):
        payload = torch.load(io.BytesIO(read_bytes(syn_uri)), map_location="cpu", weights_only=True)
    else:
        job = DistillJob(
            dataset=dataset_options(spec),
            hp=hp,
            seed=distill_seed,
            teacher_path=teacher_path,
            cache_dir=str(cache_root(spec)),
        )
        local, _ = run_train(
            job,
            run_name=f"trial-{key}",
            storage_path=join(spec.experiment_dir(), "train"),
            workers=spec.resources.distill_workers,
            cpus_per_worker=spec.resources.cpus_per_worker,
            gpus_per_worker=spec.resources.gpus_per_worker,
        )
        data = local.read_bytes()
        write_bytes_atomic(syn_uri, data)
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    extra = payload.get("extra", {})
    shape = payload["config"]["shape"]
    from methods.parameterizations import from_payload

    param = from_payload(payload)
    base = {
        "sweep": spec.name,
        "trial_id": trial_id,
        "trial_key": key,
        "objective": hp["objective"],
        "parameterization": payload["config"]["name"],
        "dataset": spec.dataset.name,
        "ipc": int(shape["ipc"]),
        "budget_scalars": int(param.config.shape.budget_scalars),
        "instances_per_class": int(param.per_class),
        "distill_arch": hp.get("distill_arch"),
        "distill_resolution": int(shape["resolution"]),
        "distill_workers": int(extra.get("world_size", spec.resources.distill_workers)),
        "distill_seed": distill_seed,
        "distill_seconds": float(extra.get("distill_seconds", float("nan"))),
        "config_hash": key,
        "synthetic_path": syn_uri,
        **code,
    }
    hyper_cols = {k: v for k, v in hp.items() if k not in base and k != REPEAT_KEY}
    hyper_cols.update({k: v for k, v in extra.items() if k in ("beta", "eta", "beta_schedule", "filter")})
    base.update(hyper_cols)
    if teacher_path is not None:
        base.update(teacher_columns(teacher_path))

    rows = [r for r in store.read_trial_rows(key) if r.get("status") == "ok"]
    done = {row_key_of(r) for r in rows}
    jobs = [j for j in eval_jobs(spec, int(shape["resolution"])) if j.key not in done]

    def record(job: EvalJob, result: dict[str, Any]) -> None:
        rows.append(
            {
                **base,
                **result,
                "eval_arch": job.arch,
                "eval_arch_requested": job.requested or job.arch,
                "eval_resolution": job.resolution,
                "seed": job.seed,
                "label_mode": job.label_mode,
                "created_at": now(),
            }
        )
        store.write_trial_rows(key, rows)

    if jobs:
        run_evaluations(
            ray.put(payload),
            jobs,
            dataset_options(spec),
            eval_settings(spec),
            spec.resources.eval_cpus,
            spec.resources.eval_gpus,
            spec.resources.eval_retries,
            record,
            teacher_path=teacher_path,
        )
    tune.report({**_summary(rows), "trial_key": key})


def code_columns() -> dict[str, str]:
    return versions()
