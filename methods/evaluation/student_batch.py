"""Training the students of one group — one network, several seeds — together.

A DD evaluation trains archs × resolutions × seeds fresh students on one synthetic set; a
ConvNet-D3 on 10–500 images is so small that on a GPU a step costs its kernel launches and
Python, not its arithmetic. :func:`train_students` trains K seeds of one network as one
computation: their weights stacked and run by one ``vmap(functional_call)``
(:class:`~methods.evaluation.stacked_students.StackedStudents`), the loss the sum of the K
per-seed losses (so slot k's gradient is seed k's), one optimiser over the stacked tensors
(SGD, Adam and AdamW are elementwise: the same as K optimisers).

**Equivalence.** Every random draw of a student — initialisation, each epoch's permutation,
augmentation parameters, CutMix/Mixup — comes from that seed's own stream
(:class:`~methods.evaluation.seed_streams.SeedStreams`), so a seed makes exactly the draws
:func:`~methods.evaluation.student.train_student` makes for it alone; a batch of one seed *is*
``train_student``. Each seed's view is its own (DSA draws applied in one call per op group,
:func:`methods.augment.draws.apply_each`); under soft labels the teacher relabels each seed's
view: in ``teacher_mode: eval`` the K views in one call, in ``train`` one call per seed (its
BatchNorm normalises with the statistics of the batch it is given, which must be that seed's
view alone). Learned soft labels (an ``(N, C)`` matrix) are trained by the same soft
cross-entropy per seed. What can differ is float round-off: a vmapped convolution runs as one
grouped convolution, whose summation order need not match K separate ones
(``tests/test_student_batch.py``).

**What batches.** :func:`~methods.evaluation.student_chunks.chunk_size`: networks made only of
vmap-safe modules, on CPU or CUDA, K capped by ``max_batch`` (default 1 on CPU, where batching
was measured slower, 16 on CUDA) and by a memory estimate; anything else trains one seed at a
time. Each :class:`~methods.evaluation.student.EvalOutcome` records the K it trained with
(``batched``) and its share of the batch's wall time (``train_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.augment.draws import apply_each, draw, splittable
from methods.datasets import EvalData, RealData, as_eval_data
from methods.evaluation.options import EvalSettings
from methods.evaluation.seed_streams import SeedStreams
from methods.evaluation.stacked_students import StackedStudents
from methods.evaluation.student import (
    EvalOutcome,
    Execution,
    StudentView,
    black_fill,
    check_targets,
    checked_settings,
    lr_at,
    make_optimizer,
    relabelling_teacher,
    soft_target_loss,
    train_student,
)
from methods.evaluation.student_chunks import chunk_size
from methods.networks import Classifier, build_network

#: ``on_step(step, losses)``: after every optimiser step, the (K,) losses of the batch's seeds
Step = Callable[[int, Tensor], None]


def seed_views(views: list[StudentView], streams: SeedStreams, x: Tensor) -> Tensor:
    """``stack([views[k](x[k]) for k …])`` for K batches ``x`` (K, B, C, H, W), each seed drawing on its stream.

    When every augmentation op can draw apart from applying (:func:`methods.augment.draws.splittable`),
    each seed draws on its stream and the draws are applied in one call per op group; otherwise
    (RandomResizedCrop) each seed's view is made on its own. CutMix/Mixup run once per seed.
    """
    aug = views[0].aug
    if splittable(aug):
        drawn = []
        for k in range(len(views)):
            with streams.use(k):
                drawn.append(draw(aug, x[k]))
        out = apply_each(aug, x, drawn)
    else:
        parts = []
        for k in range(len(views)):
            with streams.use(k):
                parts.append(views[k].aug(x[k]))
        out = torch.stack(parts)
    if views[0].mix.kind == "none":
        return out
    mixed = []
    for k in range(len(views)):
        with streams.use(k):
            mixed.append(views[k].mix(out[k]))
    return torch.stack(mixed)


@torch.no_grad()
def relabel(teacher: nn.Module, x: Tensor, mode: str, ex: Execution, device: torch.device) -> Tensor:
    """(K, B, classes): the teacher's logits on each seed's view ``x[k]``.

    ``eval`` (running statistics: a view's logits do not depend on its batch) relabels the K views
    in one call; ``train`` normalises with each call's batch statistics, so each seed's view is
    relabelled alone, exactly as that seed's student alone has it relabelled.
    """
    with ex.autocast(device):
        if mode == "train":
            return torch.stack([teacher(ex.prepare_input(v)) for v in x.unbind(0)])
        return teacher(ex.prepare_input(x.flatten(0, 1))).view(*x.shape[:2], -1)


def per_seed_losses(
    settings: EvalSettings, logits: Tensor, labels: Tensor, target: Tensor | None, learned: bool
) -> Tensor:
    """(K,) losses of ``train_student``'s formulas, seed by seed: KL to the teacher's logits (soft
    labels), soft cross-entropy against learned soft labels, or cross-entropy with class indices."""
    if target is not None:  # soft_label_loss per seed: KL(teacher ‖ student) at temperature T, batch mean, × T²
        t = settings.temperature
        log_q, log_p = F.log_softmax(logits.float() / t, dim=-1), F.log_softmax(target.float() / t, dim=-1)
        return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1).mean(-1) * (t * t)
    if learned:
        return torch.vmap(soft_target_loss)(logits, labels)
    return torch.vmap(F.cross_entropy)(logits.float(), labels)


def _train_chunk(
    images: Tensor,
    labels: Tensor,
    learned: bool,
    view: EvalData,
    arch: str,
    seeds: list[int],
    settings: EvalSettings,
    device: torch.device,
    teacher: Classifier | None,
    progress: Callable[[int, int], None] | None,
    on_step: Step | None,
) -> list[EvalOutcome]:
    """Train ``len(seeds)`` ≥ 2 students as one vmapped computation and evaluate each."""
    ex = Execution.resolve(settings, device)
    start = time.perf_counter()
    streams = SeedStreams(seeds, device)
    soft = settings.label_mode == "soft"
    fill = black_fill(view) if soft and settings.soft_crop_fill == "black" else None
    models: list[Classifier] = []
    views: list[StudentView] = []
    for k in range(len(seeds)):
        with streams.use(k):  # the draws seeded(seed) makes first: the initialisation
            models.append(build_network(arch, view.channels, view.num_classes, images.shape[-1]).to(device))
            views.append(StudentView(settings, view.num_classes, fill))
    students = StackedStudents(models, ex, device)
    relabeller = None
    if soft:
        relabeller = ex.prepare_model(relabelling_teacher(teacher.to(device), settings.teacher_mode))  # type: ignore[union-attr]
    opt = make_optimizer(students.parameters(), settings)
    x_all, y_all = images.detach().to(device), labels.to(device)
    n, kk = len(y_all), len(seeds)
    every = settings.check_every or max(1, settings.epochs // 10)
    curves: list[list[tuple[int, float, float | None]]] = [[] for _ in seeds]
    best: list[float | None] = [None] * kk
    step = 0
    for epoch in range(settings.epochs):
        for g in opt.param_groups:
            g["lr"] = lr_at(settings, epoch)
        perms = []
        for k in range(kk):
            with streams.use(k):
                perms.append(torch.randperm(n, device=device))
        for i in range(0, n, settings.batch_size):
            idx = torch.stack([p[i : i + settings.batch_size] for p in perms])  # seed k's batch in row k
            ys = y_all[idx]
            x = seed_views(views, streams, x_all[idx])
            logits = students.logits(x)
            target = relabel(relabeller, x, settings.teacher_mode, ex, device) if relabeller is not None else None
            losses = per_seed_losses(settings, logits, ys, target, learned)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            if on_step is not None:
                on_step(step, losses.detach())
            step += 1
        if (epoch + 1) % every == 0 or epoch + 1 == settings.epochs:
            vals = students.accuracy(view, "val")
            tests = students.accuracy(view, "test") if settings.track_test else [None] * kk
            for k in range(kk):
                t = tests[k]
                if t is not None:
                    best[k] = t if best[k] is None else max(best[k], t)  # type: ignore[type-var]
                curves[k].append((epoch + 1, vals[k], t))
        if progress is not None:
            progress(epoch + 1, settings.epochs)
    finals = [c[-1][2] for c in curves] if settings.track_test else students.accuracy(view, "test")
    seconds = (time.perf_counter() - start) / kk
    return [
        EvalOutcome(
            val_acc=curves[k][-1][1],
            test_acc=float(finals[k]),  # type: ignore[arg-type]
            epochs=settings.epochs,
            train_seconds=seconds,
            max_over_test=best[k],
            curve=curves[k],
            model=model,
            lr=settings.lr,
            batched=kk,
        )
        for k, model in enumerate(students.modules())
    ]


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
    *,
    teacher: Classifier | None = None,
    max_batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_step: Step | None = None,
) -> list[EvalOutcome]:
    """One student of ``arch`` per seed on ``(images, labels)``, evaluated on ``data``, K seeds at a time.

    Every seed's outcome is the one :func:`~methods.evaluation.student.train_student` gives it
    (same draws; float round-off aside, see the module docstring); ``set_lr``, ``needs`` (the
    teacher of soft labels) and ``teacher`` as there. Seeds train in chunks of
    :func:`~methods.evaluation.student_chunks.chunk_size` (``max_batch`` caps it); a chunk of one
    seed is ``train_student`` itself. Each outcome's ``batched`` is the size of its chunk and its
    ``train_seconds`` the chunk's wall time divided by that size. ``progress(epoch, epochs)`` is
    called per chunk; ``on_step(step, losses)`` gets the chunk's (K,) losses after every step.
    """
    if teacher is None and needs is not None:
        teacher = needs.get("teacher")
    checked = checked_settings(settings, teacher, set_lr)
    device = device or torch.device("cpu")
    seeds = [int(s) for s in seeds]
    if not seeds:
        return []
    res = int(images.shape[-1])
    view = as_eval_data(data, res)
    learned = check_targets(labels, int(images.shape[0]), view.num_classes, checked.label_mode)
    batch = min(checked.batch_size, len(labels))
    size = chunk_size(arch, len(seeds), view.channels, view.num_classes, res, batch, checked, device, max_batch)
    out: list[EvalOutcome] = []
    for c in range(0, len(seeds), size):
        chunk = seeds[c : c + size]
        if len(chunk) == 1:  # one seed: the one-by-one loop, a plain module
            one = train_student(images, labels, view, arch, chunk[0], settings, device, teacher, progress, set_lr,
                                on_step=on_step)  # fmt: skip
            out.append(one)
        else:
            out += _train_chunk(images, labels, learned, view, arch, chunk, checked, device, teacher, progress, on_step)
    return out


__all__ = ["per_seed_losses", "relabel", "seed_views", "train_students"]
