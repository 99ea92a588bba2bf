"""Tiny expert trajectories for trajectory-matching tests (digits, ConvNet-D1: a second on CPU)."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.datasets import RealData
from methods.tm.experts import ExpertBuffer, Experts
from methods.tm.options import ExpertOptions

TINY_EXPERTS = ExpertOptions(arch="convnet_d1", num_experts=2, train_epochs=4, batch_size=128, lr=0.05, augment="none")


def make_experts(data: RealData, out: Path, options: ExpertOptions = TINY_EXPERTS) -> list[Path]:
    """Produce every expert of ``options`` into ``out`` (one file each), as the orchestrator would."""
    experts = Experts(options)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for unit in range(experts.units()):
        path = out / f"expert{unit}.pt"
        if not path.exists():
            experts.produce(data, unit, path, torch.device("cpu"))
        paths.append(path)
    return paths


def load_buffer(paths: list[Path], options: ExpertOptions = TINY_EXPERTS) -> ExpertBuffer:
    return Experts(options).load(paths, torch.device("cpu"))
