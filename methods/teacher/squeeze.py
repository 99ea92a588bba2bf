"""The *squeeze* step: train the teacher a recover objective and soft-label evaluation use.

The teacher is a network trained on the real training split with
:func:`methods.evaluation.real_training.train_on_real` (the shared real-data protocol), saved with
:func:`methods.evaluation.real_training.save_network` together with its metadata (architecture, shape,
settings, validation/test accuracy), so any process can rebuild it with
:func:`methods.evaluation.real_training.load_network`.

:data:`SQUEEZE_PRESETS` holds the CFM supplement's Table 2 squeeze configurations.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from methods.datasets import RealData
from methods.datasets.options import DatasetOptions
from methods.evaluation.real_training import RealTrainSettings, load_network, save_network, train_on_real
from methods.prerequisites import Prerequisite, dataset_identity
from methods.records import Description, Meta, RowFields
from methods.teacher.options import SQUEEZE_PRESETS, TeacherOptions, preset_settings


def squeeze(
    data: RealData,
    arch: str,
    seed: int,
    settings: RealTrainSettings,
    path: str | Path,
    device: torch.device | None = None,
) -> Meta:
    """Train ``arch`` on ``data`` and save it to ``path``; returns the saved metadata."""
    start = time.perf_counter()
    out = train_on_real(data, arch, seed, settings, device)
    assert out.model is not None
    meta = {
        "arch": arch,
        "channels": data.channels,
        "num_classes": data.num_classes,
        "resolution": data.resolution,
        "seed": seed,
        "settings": asdict(settings),
        "val_acc": out.val_acc,
        "test_acc": out.test_acc,
        "train_images": len(data.train_y),
        "seconds": time.perf_counter() - start,
    }
    save_network(out.model, path, meta)
    return meta


class Teacher(Prerequisite):
    """The squeeze step as a prerequisite: one network trained on the real training split."""

    def describe(self, dataset: DatasetOptions, unit: int) -> Description:
        o = self.options
        return {
            "dataset": dataset_identity(dataset),
            "arch": o.arch,
            "settings": asdict(o.settings()),
            "seed": int(o.seed),
        }

    def produce(self, data: RealData, unit: int, out: Path, device: torch.device) -> None:
        squeeze(data, self.options.arch, self.options.seed, self.options.settings(), out, device)

    def load(self, paths: list[Path], device: torch.device) -> Any:
        return load_network(paths[0], device)[0]

    def row_fields(self, paths: list[Path]) -> RowFields:
        meta = torch.load(paths[0], map_location="cpu", weights_only=True)["meta"]
        return {
            "teacher_arch": meta["arch"],
            "teacher_val_acc": float(meta.get("val_acc", float("nan"))),
            "teacher_test_acc": float(meta.get("test_acc", float("nan"))),
        }


__all__ = ["SQUEEZE_PRESETS", "Teacher", "TeacherOptions", "preset_settings", "squeeze"]
