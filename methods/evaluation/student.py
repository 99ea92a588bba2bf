"""Train a student network on a synthetic set and measure it honestly.

Protocol (ddx's default): the student is trained for a fixed number of epochs; the model
that is reported is the **final** one. ``val_acc`` is its accuracy on the validation split
carved from the real training set (what sweeps select on); ``test_acc`` its accuracy on the
test split. ``max_over_test`` — the best test accuracy over the checked epochs, the
optimistic number much public DD code reports — is computed only when asked for and is
labelled as such in every row.

Label modes: ``hard`` trains with cross-entropy on the synthetic labels under DSA
augmentation (:mod:`methods.augment.ops`; one op group per batch by default); ``soft`` trains
with the KL divergence to a teacher's temperature-scaled predictions on **the view the
student sees** — the ``soft_augment`` ops applied jointly, then CutMix/Mixup if asked — which
is SRe²L/CFM/RDED's relabel step (FKD-style, computed online). A set that carries **learned soft
labels** (an ``(N, C)`` matrix, DATM) trains its ``hard``-mode students on them instead of class
indices: cross-entropy against ``softmax`` of each row (:func:`soft_target_loss`, DATM's
``SoftCrossEntropy``), under the same DSA view.

The real validation/test images are resized to the synthetic images' resolution one batch at
a time (:class:`~methods.datasets.EvalData`); the training split is never touched.
Settings are :class:`~methods.evaluation.options.EvalSettings` (presets: :mod:`methods.evaluation.presets`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.augment.ops import DSA, BatchMix
from methods.datasets import EvalData, RealData, as_eval_data
from methods.evaluation.options import LABEL_MODES, LEARNED_LR_KEY, EvalSettings
from methods.networks import Classifier, build_network
from methods.seeding import seeded


def learned_lr(extra: Mapping[str, Any]) -> float | None:
    """The learned learning rate a saved set carries (``extra`` as ``load_synthetic`` returns it), or None."""
    value = extra.get(LEARNED_LR_KEY)
    return None if value is None else float(value)


@dataclass
class EvalOutcome:
    val_acc: float
    test_acc: float
    epochs: int
    train_seconds: float
    max_over_test: float | None = None
    curve: list[tuple[int, float, float | None]] = field(default_factory=list)
    model: Classifier | None = field(default=None, repr=False)
    lr: float | None = None  # the (initial) learning rate the student trained with
    batched: int = 1  # students trained in one batched computation with this one (1: alone)


@dataclass(frozen=True)
class Execution:
    """How the forward passes run on a device: autocast dtype (None: fp32) and memory format."""

    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def resolve(cls, settings: EvalSettings, device: torch.device) -> Execution:
        """``auto`` → bf16 autocast and channels_last on CUDA, neither elsewhere; explicit values are kept."""
        cuda = device.type == "cuda"
        p = settings.precision
        dtype = torch.bfloat16 if p == "bf16" or (p == "auto" and cuda) else None
        cl = settings.channels_last
        return cls(dtype, cuda if cl == "auto" else bool(cl))

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[None]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def prepare_input(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x


@torch.no_grad()
def accuracy(
    model: nn.Module,
    x: Tensor | Iterable[tuple[Tensor, Tensor]],
    y: Tensor | None = None,
    device: torch.device | None = None,
    batch: int = 1024,
    execution: Execution | None = None,
) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``(x, y)`` or on a stream of ``(x, y)`` batches."""
    device = device or torch.device("cpu")
    ex = execution or Execution()
    batches = ((x[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch)) if y is not None else x
    was = model.training
    model.eval()
    correct = total = 0
    for xb, yb in batches:  # type: ignore[union-attr]
        with ex.autocast(device):
            logits = model(ex.prepare_input(xb.to(device, non_blocking=True)))
        correct += int((logits.argmax(1).cpu() == yb).sum())
        total += len(yb)
    model.train(was)
    return correct / max(1, total)


def split_accuracy(model: nn.Module, data: EvalData, split: str, device: torch.device, ex: Execution) -> float:
    """Accuracy on ``data``'s ``split``, streamed at ``data.resolution``."""
    return accuracy(model, data.batches(split), None, device, execution=ex)


def _optimizer(model: nn.Module, s: EvalSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    raise ValueError(f"evaluation.optimizer must be sgd, adam or adamw, got {s.optimizer!r}")


def lr_at(s: EvalSettings, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) under ``s.schedule``."""
    if s.schedule == "step":
        return s.lr * (0.1 if epoch >= s.epochs // 2 else 1.0)
    if s.schedule == "cosine":
        return s.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, s.epochs)))
    if s.schedule == "cosine_half":
        return s.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, s.epochs) / 2.0))
    if s.schedule == "constant":
        return s.lr
    raise ValueError(f"evaluation.schedule must be step, cosine, cosine_half or constant, got {s.schedule!r}")


_lr_at = lr_at  # the former private name


def soft_label_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher ‖ student) on temperature-scaled logits, × T² (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1),
        F.log_softmax(teacher_logits.float() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)


def black_fill(data: RealData | EvalData) -> Tensor:
    """A black pixel in ``data``'s normalised space: (0 − mean)/std per channel (SRe²L's crop padding)."""
    if data.zca:
        raise ValueError(
            "soft_crop_fill 'black' needs per-channel normalised data: on ZCA-whitened data no per-channel "
            "value is a black pixel (use soft_crop_fill: zero)"
        )
    return -torch.tensor(data.mean, dtype=torch.float32) / torch.tensor(data.std, dtype=torch.float32)


def soft_target_loss(student_logits: Tensor, target_logits: Tensor) -> Tensor:
    """Cross-entropy against learned soft labels: −Σ_c softmax(t)_c · log softmax(z)_c, averaged over
    the batch (DATM's ``SoftCrossEntropy``: the labels are logits, temperature 1)."""
    target = F.softmax(target_logits.float(), dim=1)
    return -(target * F.log_softmax(student_logits.float(), dim=1)).sum(dim=1).mean()


def check_targets(labels: Tensor, n: int, num_classes: int, label_mode: str) -> bool:
    """Whether ``labels`` are learned soft labels (``(n, num_classes)`` float) rather than class indices
    (``(n,)``); a :class:`ValueError` for anything else, or for soft labels under a teacher's label mode."""
    if labels.dim() == 1 and not labels.dtype.is_floating_point:
        return False
    if labels.dim() != 2 or not labels.dtype.is_floating_point or tuple(labels.shape) != (n, num_classes):
        raise ValueError(
            f"labels must be ({n},) class indices or ({n}, {num_classes}) learned soft labels, got "
            f"{labels.dtype} of shape {tuple(labels.shape)}"
        )
    if label_mode != "hard":
        raise ValueError(f"learned soft labels train hard-mode students (the set's own labels), not {label_mode!r}")
    return True


class StudentView(nn.Module):
    """The batch a student trains on: DSA for hard labels; joint ops then CutMix/Mixup for soft labels.

    ``crop_fill``: the per-channel value the soft-label ``crop`` shifts in (None: zeros), for
    ``soft_crop_fill: black`` (:func:`black_fill`). ``labels`` are not read (the mixes pair images
    only; the teacher relabels the view).
    """

    def __init__(self, settings: EvalSettings, num_classes: int, crop_fill: Tensor | None = None) -> None:
        super().__init__()
        s = settings
        if s.label_mode == "hard":
            self.aug = DSA(s.augment, same_on_batch=False, mode=s.augment_mode)
            self.mix = BatchMix("none")
        else:
            self.aug = DSA(
                s.soft_augment, same_on_batch=False, mode="all", rrc_min_scale=s.rrc_min_scale, crop_fill=crop_fill
            )
            self.mix = BatchMix(s.mix, s.mix_prob, s.mix_alpha)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.mix(self.aug(x))


def relabelling_teacher(teacher: nn.Module, mode: str) -> nn.Module:
    """The teacher as it relabels the students' views (``EvalSettings.teacher_mode``).

    ``eval``: BatchNorm normalises with the running statistics (``teacher.eval()``, as UniDD's
    ``generate_soft_label_online.py`` and SRe²L's ImageNet ``generate_soft_label.py`` do). ``train``:
    every relabelled batch is normalised with its own statistics, as in SRe²L's ``relabel_cifar.py``,
    whose ``model_teacher`` is never put in eval mode. There the train-mode passes also move the
    running statistics, which train mode never reads again, so they change no soft label; ddx
    relabels with a copy whose BatchNorm layers do not track them, and the teacher itself (shared by
    later students and other steps) is left as it was.
    """
    if mode == "eval":
        return teacher.eval()
    if mode != "train":
        raise ValueError(f"teacher_mode must be eval or train, got {mode!r}")
    relabeller = copy.deepcopy(teacher).train()
    for m in relabeller.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False  # batch statistics, and the (copied) running ones untouched
    return relabeller


def train_student(
    images: Tensor,
    labels: Tensor,
    data: RealData | EvalData,
    arch: str,
    seed: int,
    settings: EvalSettings,
    device: torch.device | None = None,
    teacher: Classifier | None = None,
    progress: Callable[[int, int], None] | None = None,
    set_lr: float | None = None,
    needs: Mapping[str, Any] | None = None,
) -> EvalOutcome:
    """Train ``arch`` from scratch (seeded) on ``(images, labels)`` and evaluate on ``data``.

    ``data`` is a :class:`~methods.datasets.RealData` or an :class:`~methods.datasets.EvalData`;
    its validation and test splits are served at the images' resolution, resized batch by batch.
    ``set_lr`` is the learning rate the synthetic set carries (:func:`learned_lr`); with
    ``settings.lr_from_set`` it replaces ``settings.lr`` (the schedule still applies), as MTT
    evaluates its sets with the learned step size. ``needs``: the loaded prerequisites the label
    mode requires (:data:`~methods.evaluation.options.LABEL_MODE_REQUIRES`: soft labels take the
    ``teacher`` there when ``teacher`` is not given).
    """
    if teacher is None and needs is not None:
        teacher = needs.get("teacher")
    if settings.lr_from_set:
        if set_lr is None:
            raise ValueError("evaluation.lr_from_set needs a synthetic set that carries a learned learning rate "
                             f"(extra[{LEARNED_LR_KEY!r}], written by the tm objective)")  # fmt: skip
        settings = replace(settings, lr=float(set_lr))
    if settings.label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {settings.label_mode!r}")
    if settings.label_mode == "soft" and teacher is None:
        raise ValueError("label_mode 'soft' needs a teacher network")
    device = device or torch.device("cpu")
    view = as_eval_data(data, int(images.shape[-1]))
    learned = check_targets(labels, int(images.shape[0]), view.num_classes, settings.label_mode)
    ex = Execution.resolve(settings, device)
    start = time.perf_counter()
    with seeded(seed, device):
        model = build_network(arch, view.channels, view.num_classes, images.shape[-1]).to(device)
        model = ex.prepare_model(model)
        fill = black_fill(view) if settings.label_mode == "soft" and settings.soft_crop_fill == "black" else None
        student_view = StudentView(settings, view.num_classes, fill)
        if teacher is not None:
            teacher = ex.prepare_model(relabelling_teacher(teacher.to(device), settings.teacher_mode))
        opt = _optimizer(model, settings)
        x_all, y_all = images.detach().to(device), labels.to(device)
        n = len(y_all)
        every = settings.check_every or max(1, settings.epochs // 10)
        curve: list[tuple[int, float, float | None]] = []
        best_test: float | None = None
        model.train()
        for epoch in range(settings.epochs):
            for g in opt.param_groups:
                g["lr"] = lr_at(settings, epoch)
            perm = torch.randperm(n, device=device)
            for i in range(0, n, settings.batch_size):
                idx = perm[i : i + settings.batch_size]
                x = ex.prepare_input(student_view(x_all[idx]))
                with ex.autocast(device):
                    logits = model(x)
                    if settings.label_mode == "soft":
                        with torch.no_grad():
                            target = teacher(x)  # type: ignore[misc]  # the teacher relabels this very view
                if settings.label_mode == "soft":
                    loss = soft_label_loss(logits, target, settings.temperature)
                elif learned:
                    loss = soft_target_loss(logits, y_all[idx])
                else:
                    loss = F.cross_entropy(logits.float(), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            last = epoch + 1 == settings.epochs
            if (epoch + 1) % every == 0 or last:
                val = split_accuracy(model, view, "val", device, ex)
                test = split_accuracy(model, view, "test", device, ex) if settings.track_test else None
                if test is not None:
                    best_test = test if best_test is None else max(best_test, test)
                curve.append((epoch + 1, val, test))
            if progress is not None:
                progress(epoch + 1, settings.epochs)
        val_acc = curve[-1][1]
        test_acc = curve[-1][2] if settings.track_test else split_accuracy(model, view, "test", device, ex)
    return EvalOutcome(
        val_acc=val_acc,
        test_acc=float(test_acc),  # type: ignore[arg-type]
        epochs=settings.epochs,
        train_seconds=time.perf_counter() - start,
        max_over_test=best_test,
        curve=curve,
        model=model,
        lr=settings.lr,
    )


__all__ = [
    "LABEL_MODES",
    "EvalOutcome",
    "EvalSettings",
    "Execution",
    "StudentView",
    "accuracy",
    "black_fill",
    "check_targets",
    "lr_at",
    "relabelling_teacher",
    "soft_label_loss",
    "soft_target_loss",
    "split_accuracy",
    "train_student",
]
