"""Training the students of one group — one network, several seeds — together.

:func:`train_students` returns one :class:`~methods.evaluation.student.EvalOutcome` per seed,
each exactly what :func:`~methods.evaluation.student.train_student` gives that seed alone, with
``batched`` saying how many seeds trained in one computation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from methods.datasets import EvalData, RealData
from methods.evaluation.options import EvalSettings
from methods.evaluation.student import EvalOutcome, train_student


def train_students(
    images: Tensor,
    labels: Tensor,
    data: RealData | EvalData,
    arch: str,
    seeds: Sequence[int],
    settings: EvalSettings,
    device: torch.device | None = None,
    set_lr: float | None = None,
    needs: Mapping[str, Any] | None = None,
) -> list[EvalOutcome]:
    """One student of ``arch`` per seed on ``(images, labels)``, evaluated on ``data`` (one by one)."""
    return [
        replace(
            train_student(images, labels, data, arch, seed, settings, device, set_lr=set_lr, needs=needs), batched=1
        )
        for seed in seeds
    ]


__all__ = ["train_students"]
