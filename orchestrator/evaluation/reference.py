"""The full-data reference: each evaluation network trained on the whole real training set.

It is the upper-bound row of every report table. One Ray task per (arch, resolution, seed),
scheduled like the evaluation tasks (same CPUs/GPUs, fractions allowed, retries, a failed
row instead of a missing one). The training itself is :func:`methods.evaluation.real_training.train_on_real`
— the student protocol on real images (validation split for selection, final model
reported) — and its outcome is cached in the content-addressed :class:`ArtifactCache`
under ``<storage>/cache/reference/``, keyed by the dataset, network, resolution, seed and
settings, so every later sweep on the same storage reuses it. The rows of one sweep are
merged into ``<experiment>/reference.parquet``, next to ``results.parquet``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import ray
import torch

from methods.datasets import cached_dataset
from methods.datasets.options import DatasetOptions
from methods.evaluation.protocol import settings_json
from methods.evaluation.real_training import RealTrainSettings, train_on_real
from methods.networks import resolve_arch
from methods.prerequisites import dataset_identity
from methods.records import Description
from orchestrator.cluster.compute_thread import on_compute_thread
from orchestrator.evaluation.tasks import TaskResources
from orchestrator.provenance import node_columns, now, versions
from orchestrator.spec.model import SweepSpec
from orchestrator.storage.artifacts import LOCK_SUFFIX, ArtifactStore, LeaseLock, cache_root, content_key
from orchestrator.storage.results import (
    Row,
    distinct_references,
    exists,
    join,
    read_table_file,
    rows_to_table,
    table_bytes,
    write_bytes_atomic,
)
from orchestrator.storage.staging import staged

REFERENCE_FILE = "reference.parquet"
#: what identifies one reference row: its settings (the config hash) and its run
REFERENCE_KEY = ["config_hash", "eval_arch_requested", "eval_resolution", "seed"]
#: bump when the reference protocol changes, so cached references are not reused
#: (2: ``crop_flip`` applies crop and flip jointly, DSA crop is an integer shift with zero fill)
PROTOCOL = 2
REFERENCE_OBJECTIVE = "full_data"
#: the ``protocol`` of reference rows: their own real-data training settings (``eval_settings``),
#: not an evaluation protocol of synthetic sets (DD-Ranking's Acc(real, hard) term)
REFERENCE_PROTOCOL = "full_data"
#: the cached outcome (JSON); not ``.json``, which the cache uses for the artifact's description
RESULT_SUFFIX = ".result"


@dataclass(frozen=True)
class ReferenceJob:
    arch: str  # as named in the spec (``convnet`` resolves per resolution inside the task)
    resolution: int | None  # None: the dataset's loaded resolution
    seed: int


def reference_jobs(spec: SweepSpec) -> list[ReferenceJob]:
    """One job per evaluation arch × resolution × reference seed (empty when not asked for)."""
    ev = spec.evaluation
    if ev.reference is None:
        return []
    resolutions: list[int | None] = list(ev.resolutions) if ev.resolutions else [spec.dataset.resolution]
    n_seeds = ev.reference.seeds or ev.seeds
    seeds = [spec.seed + i for i in range(n_seeds)]
    return [ReferenceJob(a, r, s) for a in ev.archs for r in resolutions for s in seeds]


def reference_settings(spec: SweepSpec) -> RealTrainSettings:
    assert spec.evaluation.reference is not None
    return spec.evaluation.reference.options()


def reference_description(
    dataset: DatasetOptions, arch: str, resolution: int, seed: int, settings: RealTrainSettings
) -> Description:
    """Everything that determines a reference accuracy (the cache key's content)."""
    return {
        "kind": "full_data_reference",
        "protocol": PROTOCOL,
        "dataset": dataset_identity(dataset),
        "arch": arch,
        "resolution": resolution,
        "seed": seed,
        "settings": asdict(settings),
    }


def reference_job(
    job: ReferenceJob,
    dataset: DatasetOptions,
    settings: RealTrainSettings,
    store_root: str,
    threads: int,
    use_gpu: bool,
) -> Row:
    """Train (or fetch from the artifact store) one full-data reference; return the row's measured columns."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
    start = time.perf_counter()
    data = cached_dataset(staged(dataset), job.resolution)
    resolution = data.resolution
    arch = resolve_arch(job.arch, resolution)
    description = reference_description(dataset, arch, resolution, job.seed, settings)
    cache = ArtifactStore(store_root)
    cached = cache.ref("reference", description, RESULT_SUFFIX) is not None

    def produce(tmp: Path) -> None:
        out = train_on_real(data, arch, job.seed, settings, device)
        record = {
            "val_acc": out.val_acc,
            "test_acc": out.test_acc,
            "epochs": out.epochs,
            "train_seconds": out.train_seconds,
            "train_images": len(data.train_y),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "curve": out.curve,
        }
        tmp.write_text(json.dumps(record))

    path = cache.get_or_create("reference", description, produce, suffix=RESULT_SUFFIX)
    record = json.loads(path.read_text())
    return {
        "status": "ok",
        "error": None,
        "eval_arch": arch,
        "eval_arch_requested": job.arch,
        "eval_resolution": resolution,
        "val_acc": float(record["val_acc"]),
        "test_acc": float(record["test_acc"]),
        "epochs": int(record["epochs"]),
        "train_images": int(record["train_images"]),
        "eval_seconds": time.perf_counter() - start,
        "train_seconds": float(record["train_seconds"]),
        "device": record["device"],
        "curve": json.dumps(record["curve"]),
        "cached": cached,
        "reference_key": content_key(description),
        **node_columns(),
    }


reference_remote = ray.remote(on_compute_thread(reference_job))


@dataclass
class PendingReferences:
    """Reference tasks launched (they run alongside the sweep's trials or ``ddx evaluate``'s sets)."""

    experiment_dir: str
    base: Row  # the columns every reference row of this experiment shares
    refs: dict[ray.ObjectRef, ReferenceJob]


def launch_references(
    jobs: list[ReferenceJob],
    dataset: DatasetOptions,
    settings: RealTrainSettings,
    store_root: str,
    resources: TaskResources,
    experiment_dir: str,
    base: Row,
) -> PendingReferences:
    """Launch one reference task per job."""
    options, threads, gpu = resources.options(), resources.threads, resources.gpus > 0
    refs = {
        reference_remote.options(**options).remote(job, dataset, settings, store_root, threads, gpu): job
        for job in jobs
    }
    return PendingReferences(experiment_dir, base, refs)


def start_references(spec: SweepSpec) -> PendingReferences | None:
    """Launch the sweep's reference tasks, or return None when ``evaluation.reference`` is unset."""
    jobs = reference_jobs(spec)
    if not jobs:
        return None
    res = spec.resources
    settings = reference_settings(spec)
    return launch_references(
        jobs,
        spec.dataset_options(),
        settings,
        cache_root(spec.storage),
        TaskResources(res.eval_cpus, res.eval_gpus, res.eval_retries),
        spec.experiment_dir(),
        base_row(spec.name, spec.dataset.name, spec.config_hash(), settings),
    )


def base_row(sweep: str, dataset: str, config_hash: str, settings: RealTrainSettings) -> Row:
    """Columns shared by an experiment's reference rows (``settings``: how each network trains on real data)."""
    return {
        "sweep": sweep,
        "trial_key": "reference",
        "objective": REFERENCE_OBJECTIVE,
        "parameterization": "real",
        "dataset": dataset,
        "label_mode": "hard",
        "protocol": REFERENCE_PROTOCOL,
        "eval_settings": settings_json(settings.as_eval()),
        "config_hash": config_hash,
        **versions(),
    }


def finish_references(pending: PendingReferences) -> pd.DataFrame:
    """Wait for every reference task; write and return ``reference.parquet`` (failed rows included)."""
    base = pending.base
    rows: list[Row] = []
    refs = dict(pending.refs)
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        for ref in done:
            job = refs.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as err:  # failed after its retries: keep it as a failed row
                text = str(err).strip().splitlines()
                result = {
                    "status": "failed",
                    "error": (text[-1] if text else type(err).__name__)[:2000],
                    "eval_arch": job.arch,
                    "eval_arch_requested": job.arch,
                    "eval_resolution": job.resolution,
                    "val_acc": float("nan"),
                    "test_acc": float("nan"),
                }
            rows.append({**base, **result, "seed": job.seed, "created_at": now()})
    df = pd.DataFrame(rows).sort_values(REFERENCE_KEY[1:]).reset_index(drop=True)
    write_reference_rows(pending.experiment_dir, df)
    return df


def write_reference_rows(experiment: str, df: pd.DataFrame) -> None:
    """Merge ``df`` into the folder's ``reference.parquet`` (a row of the same :data:`REFERENCE_KEY`
    replaces the older one), under the file's lock: ``ddx evaluate`` runs into one folder each
    add the references of their own networks, and none may drop another's."""
    location = join(experiment, REFERENCE_FILE)
    with LeaseLock(join(experiment, REFERENCE_FILE + LOCK_SUFFIX)):  # a URI's query stays last
        if exists(location):
            df = pd.concat([read_table_file(location), df], ignore_index=True)
            df = df.drop_duplicates(subset=[c for c in REFERENCE_KEY if c in df.columns], keep="last")
            df = df.sort_values(REFERENCE_KEY[1:]).reset_index(drop=True)
        write_bytes_atomic(location, table_bytes(rows_to_table(df.to_dict("records"))))


def read_reference(experiment: str) -> pd.DataFrame | None:
    """``reference.parquet`` next to an experiment's ``results.parquet`` (one row per reference run:
    :func:`~orchestrator.storage.results.distinct_references`), or None if it has none."""
    base = experiment
    if experiment.endswith(".parquet"):
        base = experiment.rsplit("/", 1)[0] if "://" in experiment else str(Path(experiment).parent)
    path = join(base, REFERENCE_FILE)
    if not exists(path):
        return None
    return distinct_references(read_table_file(path))
