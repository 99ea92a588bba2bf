"""Teachers (the squeeze step) as cached artifacts: trained once per content, reused by all.

A teacher is named by the content hash of (dataset options, architecture, training settings,
seed) in the artifact cache (:mod:`orchestrator.cache`) under the sweep's storage root, so every
trial of a sweep — and every later sweep on the same storage — finds the same file. The first
trial that needs it trains it in a Ray task (``scheduling_strategy="DEFAULT"`` so the trial's
placement group does not capture it; the spec's evaluation resources) while holding the
cache's file lock; concurrent trials wait for the file instead of training it again.

The Train workers of a recover objective and the soft-label evaluation tasks load the file
with :func:`methods.real_training.load_network`: the storage root must be visible to them
(local storage on one machine, or a shared filesystem on a cluster).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
import torch

from methods.datasets import DatasetOptions, cached_dataset
from methods.objectives import OBJECTIVES
from methods.real_training import RealTrainSettings
from methods.squeeze import squeeze
from orchestrator.cache import ArtifactCache, cache_root
from orchestrator.spec import SweepSpec, TeacherBlock

TEACHER_KIND = "teachers"


def teacher_description(dataset: dict[str, Any], arch: str, settings: RealTrainSettings, seed: int) -> dict[str, Any]:
    """Everything that determines a teacher (its cache identity)."""
    return {"dataset": dict(dataset), "arch": arch, "settings": asdict(settings), "seed": int(seed)}


def train_teacher_bytes(
    dataset: dict[str, Any], arch: str, settings: dict[str, Any], seed: int, threads: int, use_gpu: bool
) -> bytes:
    """Train a teacher (in a Ray task) and return its saved file's bytes."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
    data = cached_dataset(DatasetOptions(**dataset))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "teacher.pt"
        squeeze(data, arch, seed, RealTrainSettings(**settings), path, device)
        return path.read_bytes()


train_teacher_remote = ray.remote(train_teacher_bytes)


def spec_needs_teacher(spec: SweepSpec, hp: dict[str, Any] | None = None) -> bool:
    """True when the trial's objective (or any of the sweep's) needs a teacher, or labels are soft."""
    objectives = [hp["objective"]] if hp is not None else spec.hyper_values("objective")
    if any("teacher" in OBJECTIVES.get(o).requires for o in objectives):
        return True
    return "soft" in spec.evaluation.label_modes


def teacher_block(spec: SweepSpec) -> TeacherBlock:
    return spec.teacher or TeacherBlock()


def ensure_teacher(spec: SweepSpec, dataset: dict[str, Any]) -> Path:
    """The path of the sweep's teacher, training it in a Ray task if the cache lacks it."""
    block = teacher_block(spec)
    settings = block.settings()
    description = teacher_description(dataset, block.arch, settings, block.seed)
    res = spec.resources

    def produce(tmp: Path) -> None:
        task = train_teacher_remote.options(
            num_cpus=res.eval_cpus,
            num_gpus=res.eval_gpus,
            scheduling_strategy="DEFAULT",
            max_retries=res.eval_retries,
            retry_exceptions=True,
        )
        threads = max(1, int(res.eval_cpus))
        ref = task.remote(dataset, block.arch, asdict(settings), block.seed, threads, res.eval_gpus > 0)
        tmp.write_bytes(ray.get(ref))

    return ArtifactCache(cache_root(spec)).get_or_create(TEACHER_KIND, description, produce)


def teacher_columns(path: str | Path) -> dict[str, Any]:
    """Result-row columns describing the teacher saved at ``path`` (architecture, accuracies)."""
    meta = torch.load(Path(path), map_location="cpu", weights_only=True)["meta"]
    return {
        "teacher_arch": meta["arch"],
        "teacher_val_acc": float(meta.get("val_acc", float("nan"))),
        "teacher_test_acc": float(meta.get("test_acc", float("nan"))),
    }


__all__ = ["ensure_teacher", "spec_needs_teacher", "teacher_columns", "teacher_description", "train_teacher_bytes"]
