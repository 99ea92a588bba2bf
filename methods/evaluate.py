"""Train a student network on a synthetic set and measure it honestly.

Protocol (ddx's default): the student is trained for a fixed number of epochs; the model
that is reported is the **final** one. ``val_acc`` is its accuracy on the validation split
carved from the real training set (what sweeps select on); ``test_acc`` its accuracy on the
test split. ``max_over_test`` — the best test accuracy over the checked epochs, the
optimistic number much public DD code reports — is computed only when asked for and is
labelled as such in every row.

Label modes: ``hard`` trains with cross-entropy on the synthetic labels under DSA
augmentation; ``soft`` trains with the KL divergence to a teacher's temperature-scaled
predictions on the same augmented batch (SRe²L/CFM's relabel step, FKD-style).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.augment import DSA
from methods.datasets import RealData
from methods.evaluate_options import LABEL_MODES, EvalSettings
from methods.networks import Classifier, build_network


@dataclass
class EvalOutcome:
    val_acc: float
    test_acc: float
    epochs: int
    train_seconds: float
    max_over_test: float | None = None
    curve: list[tuple[int, float, float | None]] = field(default_factory=list)
    model: Classifier | None = field(default=None, repr=False)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, device: torch.device, batch: int = 1024) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``(x, y)``."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch].to(device, non_blocking=True))
        correct += int((logits.argmax(1).cpu() == y[i : i + batch]).sum())
    model.train(was)
    return correct / max(1, len(y))


def _optimizer(model: nn.Module, s: EvalSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    raise ValueError(f"evaluation.optimizer must be sgd, adam or adamw, got {s.optimizer!r}")


def _lr_at(s: EvalSettings, epoch: int) -> float:
    if s.schedule == "step":
        return s.lr * (0.1 if epoch >= s.epochs // 2 else 1.0)
    if s.schedule == "cosine":
        return s.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, s.epochs)))
    if s.schedule == "constant":
        return s.lr
    raise ValueError(f"evaluation.schedule must be step, cosine or constant, got {s.schedule!r}")


def soft_label_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher ‖ student) on temperature-scaled logits, × T² (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)


def train_student(
    images: Tensor,
    labels: Tensor,
    data: RealData,
    arch: str,
    seed: int,
    settings: EvalSettings,
    device: torch.device | None = None,
    teacher: Classifier | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalOutcome:
    """Train ``arch`` from scratch (seeded) on ``(images, labels)`` and evaluate on ``data``.

    ``data`` must already be at the images' resolution (val/test resized by the caller).
    """
    if settings.label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {settings.label_mode!r}")
    if settings.label_mode == "soft" and teacher is None:
        raise ValueError("label_mode 'soft' needs a teacher network")
    device = device or torch.device("cpu")
    start = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = build_network(arch, data.channels, data.num_classes, images.shape[-1]).to(device)
        strategy = settings.augment if settings.label_mode == "hard" else settings.soft_augment
        aug = DSA(strategy, same_on_batch=False)
        if teacher is not None:
            teacher = teacher.to(device).eval()
        opt = _optimizer(model, settings)
        x_all, y_all = images.detach().to(device), labels.to(device)
        n = len(y_all)
        every = settings.check_every or max(1, settings.epochs // 10)
        curve: list[tuple[int, float, float | None]] = []
        best_test: float | None = None
        model.train()
        for epoch in range(settings.epochs):
            for g in opt.param_groups:
                g["lr"] = _lr_at(settings, epoch)
            perm = torch.randperm(n, device=device)
            for i in range(0, n, settings.batch_size):
                idx = perm[i : i + settings.batch_size]
                x = aug(x_all[idx])
                logits = model(x)
                if settings.label_mode == "soft":
                    with torch.no_grad():
                        target = teacher(x)  # type: ignore[misc]
                    loss = soft_label_loss(logits, target, settings.temperature)
                else:
                    loss = F.cross_entropy(logits, y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            last = epoch + 1 == settings.epochs
            if (epoch + 1) % every == 0 or last:
                val = accuracy(model, data.val_x, data.val_y, device)
                test = accuracy(model, data.test_x, data.test_y, device) if settings.track_test else None
                if test is not None:
                    best_test = test if best_test is None else max(best_test, test)
                curve.append((epoch + 1, val, test))
            if progress is not None:
                progress(epoch + 1, settings.epochs)
        val_acc = curve[-1][1]
        test_acc = curve[-1][2] if settings.track_test else accuracy(model, data.test_x, data.test_y, device)
    return EvalOutcome(
        val_acc=val_acc,
        test_acc=float(test_acc),  # type: ignore[arg-type]
        epochs=settings.epochs,
        train_seconds=time.perf_counter() - start,
        max_over_test=best_test,
        curve=curve,
        model=model,
    )
