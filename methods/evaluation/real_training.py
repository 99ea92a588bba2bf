"""Train a network on the real training set: SRe²L/CFM's *squeeze* step and the full-data
reference row of every evaluation table.

It is the student-training loop of :mod:`methods.evaluation.student` run on real images, so teachers,
references and students share one protocol (validation split for selection, final model
reported).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from methods.datasets import RealData
from methods.evaluation.real_training_options import RealTrainSettings
from methods.evaluation.student import EvalOutcome, train_student
from methods.networks import Classifier, build_network
from methods.records import Meta


def train_on_real(
    data: RealData,
    arch: str,
    seed: int,
    settings: RealTrainSettings,
    device: torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalOutcome:
    """Train ``arch`` on ``data.train_x`` (hard labels); the outcome carries the final model."""
    return train_student(data.train_x, data.train_y, data, arch, seed, settings.as_eval(), device, None, progress)


def save_network(model: Classifier, path: str | Path, meta: Meta) -> None:
    """Save a trained network's weights with the metadata needed to rebuild it."""
    torch.save({"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}, Path(path))


def load_network(path: str | Path, device: torch.device | None = None) -> tuple[Classifier, Meta]:
    """Rebuild a network saved by :func:`save_network` (``weights_only=True``), in eval mode."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    meta = payload["meta"]
    model = build_network(meta["arch"], int(meta["channels"]), int(meta["num_classes"]), int(meta["resolution"]))
    model.load_state_dict(payload["state"])
    return model.to(device or torch.device("cpu")).eval(), meta
