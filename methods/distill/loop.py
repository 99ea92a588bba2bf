"""The distillation loop shared by every objective × parameterization pair.

Work is sharded by the phases' ownership units; all ranks walk the same phases and steps in
lockstep, so checkpoints and the final gather are plain collectives. Because every random
draw is seeded by (seed, phase, step, unit) and never by rank, the result does not depend on
the number of workers. Replicated phases (:class:`~methods.distill.objective.Phase`) keep every
row on every rank and sum the ranks' gradients before each step instead; their result depends
on the worker count only through the order of floating-point summation.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from methods.context import DistillContext
from methods.datasets import RealData
from methods.distill.objective import Objective, OptimDefaults, Phase
from methods.distill.options import DistillSettings
from methods.parameterizations import Parameterization
from methods.records import Progress, State

CheckpointFn = Callable[[State], None]


class DivergedError(RuntimeError):
    """The distillation loss became NaN or infinite."""


def probe_accuracy(
    param: Parameterization, state: dict[str, Tensor], data: RealData, ctx: DistillContext, settings: DistillSettings
) -> float | None:
    """Validation accuracy of a probe student trained on the set ``state`` (rank 0; None elsewhere).

    The probe is the evaluation protocol's student (:func:`methods.evaluation.student.train_student`,
    hard labels, default settings) for ``probe_epochs`` epochs on ``probe_arch``, seeded by the
    context seed: a cheap, comparable signal of how good the set is so far.
    """
    if not ctx.is_main:
        return None
    from methods.evaluation.student import EvalSettings, train_student

    snapshot = copy.deepcopy(param)
    snapshot.load_state_dict(state)
    with torch.no_grad():
        images = snapshot.decode()
    from methods.networks import resolve_arch

    out = train_student(
        images, snapshot.labels.clone(), data, resolve_arch(settings.probe_arch, data.resolution), ctx.seed,
        EvalSettings(epochs=settings.probe_epochs), ctx.device,
    )  # fmt: skip
    return out.val_acc


def init_from_real(param: Parameterization, data: RealData, ctx: DistillContext) -> None:
    """Initialise each instance from a random real image of its class (seeded by class)."""
    images = []
    for c in range(param.config.shape.num_classes):
        n = int((param.labels == c).sum())
        g = ctx.generator(0x1A17, c)
        pool = data.class_indices(c)
        pick = torch.randperm(len(pool), generator=g)
        if n > len(pool):  # more instances than real images: draw with replacement
            pick = torch.randint(len(pool), (n,), generator=g)
        images.append(data.train_x[pool[pick[:n]]])
    param.init_from_real(torch.cat(images).to(next(iter(param.instance_tensors().values())).device))


def _optimizer(params: list[Tensor], d: OptimDefaults) -> torch.optim.Optimizer:
    if d.optimizer == "adam":
        return torch.optim.Adam(params, lr=d.lr, betas=d.betas)
    if d.optimizer == "sgd":
        return torch.optim.SGD(params, lr=d.lr, momentum=d.momentum)
    raise ValueError(f"optimizer must be sgd or adam, got {d.optimizer!r}")


def _lr_factor(schedule: str, step: int, total: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(1, total)))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"schedule must be constant or cosine, got {schedule!r}")


def resolve_optim(objective: Objective, param: Parameterization, s: DistillSettings) -> OptimDefaults:
    """Optimiser settings: the objective's defaults, then the parameterization's, then the sweep's."""
    d = dataclasses.replace(objective.optim_defaults(param), **param.optim_defaults(objective.name))
    return OptimDefaults(
        optimizer=s.optimizer or d.optimizer,
        lr=s.lr_images if s.lr_images is not None else d.lr,
        momentum=s.momentum if s.momentum is not None else d.momentum,
        betas=d.betas,
        schedule=s.schedule or d.schedule,
    )


def row_owner(phases: list[Phase], num_instances: int, world: int) -> Tensor:
    """The rank that finally owns each instance row (rank 0 for rows no phase touches)."""
    owner = torch.zeros(num_instances, dtype=torch.long)
    seen = torch.full((num_instances,), -1, dtype=torch.long)
    for ph in phases:
        if ph.replicated:  # every rank holds the same rows: rank 0's copy is the result
            continue
        ranks = ph.units % world
        clash = (seen[ph.index] >= 0) & (seen[ph.index] != ranks)
        if bool(clash.any()):
            raise ValueError("an instance is owned by different ranks in different phases")
        seen[ph.index] = ranks
        owner[ph.index] = ranks
    return owner


def gather_rows(tensors: dict[str, Tensor], owner: Tensor, ctx: DistillContext) -> dict[str, Tensor]:
    """Assemble full tensors from every rank's owned rows with a masked all-reduce.

    Every rank makes the same collective calls whatever it holds: the keys are first made the
    same on every rank (a rank that owns no row has no optimiser state; its missing entries are
    zeros), per-row tensors are summed under each rank's mask, and others (an optimiser's step
    count) take their largest value over the ranks."""
    out = {}
    n = owner.numel()
    tensors = ctx.same_keys(tensors)
    for k, t in tensors.items():
        if not ctx.distributed:
            out[k] = t.detach().clone()
            continue
        if t.dim() == 0 or t.shape[0] != n:
            out[k] = ctx.all_reduce(t.detach().clone(), op="max")
            continue
        mask = (owner.to(t.device) == ctx.rank).view(-1, *([1] * (t.dim() - 1))).to(t.dtype)
        out[k] = ctx.all_reduce(t.detach() * mask)
    return out


def sync_gradients(tensors: list[Tensor], ctx: DistillContext) -> None:
    """Sum the gradients of ``tensors`` over all ranks, in one flat all-reduce (missing gradients count as 0)."""
    if not ctx.distributed or not tensors:
        return
    for t in tensors:
        if t.grad is None:
            t.grad = torch.zeros_like(t)
    flat = ctx.all_reduce(torch.cat([t.grad.reshape(-1) for t in tensors]))
    for t, g in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
        t.grad.copy_(g.view_as(t.grad))


def _optim_rows(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> dict[str, Tensor]:
    flat = {}
    for i, p in enumerate(params):
        for k, v in opt.state.get(p, {}).items():
            if torch.is_tensor(v):
                flat[f"{i}.{k}"] = v
    return flat


def _load_optim_rows(
    opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], flat: dict[str, Tensor], keep: Tensor
) -> None:
    """Restore optimiser state, zeroing rows this rank does not own (they must not move)."""
    for i, p in enumerate(params):
        state = {}
        for key, v in flat.items():
            idx, name = key.split(".", 1)
            if int(idx) != i:
                continue
            v = v.to(p.device)
            if v.dim() > 0 and v.shape[0] == keep.numel():
                v = v * keep.to(v.device).view(-1, *([1] * (v.dim() - 1))).to(v.dtype)
            state[name] = v
        if state:
            opt.state[p] = state


def distill(
    param: Parameterization,
    objective: Objective,
    data: RealData,
    ctx: DistillContext,
    settings: DistillSettings,
    needs: Mapping[str, Any] | None = None,
    resume: State | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> dict[str, float]:
    """Run ``objective`` on ``param`` and leave the full synthetic set on every rank.

    ``needs`` are the loaded prerequisites the objective declares (``Objective.requires``).
    ``resume`` is a state written earlier through ``on_checkpoint``: the loop continues from
    its phase and step. Returns summary numbers (seconds, steps, final loss).
    """
    start = time.perf_counter()
    objective.prepare(data, ctx, needs or {})
    phases = objective.phases(param, settings.iterations, ctx)
    owner = row_owner(phases, param.num_instances, ctx.world_size)
    optim = resolve_optim(objective, param, settings)
    params = [p for p in param.parameters() if p.requires_grad]
    first_phase, first_step = 0, 0
    if resume is not None:
        param.load_state_dict(resume["param"])
        objective.load_state_dict(resume.get("objective", {}))
        first_phase, first_step = int(resume["phase"]), int(resume["step"])
    total_steps = sum(p.iterations for p in phases)
    done = sum(p.iterations for p in phases[:first_phase]) + first_step
    last_loss = float("nan")

    def checkpoint(phase_i: int, step: int, opt: torch.optim.Optimizer | None) -> None:
        state = {
            "phase": phase_i,
            "step": step,
            "done": done,  # steps finished over all phases
            "param": gather_rows(param.state_dict(), owner, ctx),
            "objective": objective.state_dict(),
            "optim": gather_rows(_optim_rows(opt, params), owner, ctx) if opt is not None else {},
        }
        if on_checkpoint is not None:
            on_checkpoint(state)

    for phase_i in range(first_phase, len(phases)):
        phase = phases[phase_i]
        owned = phase.owned(ctx)
        opt = _optimizer(params, optim)
        base_lrs = [g["lr"] for g in opt.param_groups]
        step0 = first_step if phase_i == first_phase else 0
        if resume is not None and phase_i == first_phase and resume.get("optim"):
            keep = torch.zeros(param.num_instances, dtype=torch.bool)
            keep[owned] = True
            _load_optim_rows(opt, params, resume["optim"], keep)
        objective.begin_phase(phase, ctx)
        for step in range(step0, phase.iterations):
            factor = _lr_factor(optim.schedule, step, phase.iterations)
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * factor
            opt.zero_grad(set_to_none=False)
            if phase.replicated:
                idx = owned.to(param.labels.device)
                loss = objective.loss(param.decode(index=idx), param.labels[idx], phase, step, ctx)
                if loss.requires_grad:  # a rank without a share of the work contributes zeros
                    loss.backward()
                sync_gradients(params + objective.learnables(), ctx)
                last_loss = float(ctx.all_reduce(loss.detach().clone().reshape(())))
                opt.step()
                objective.after_step(param, idx, ctx)
            elif owned.numel() > 0:
                idx = owned.to(param.labels.device)
                loss = objective.loss(param.decode(index=idx), param.labels[idx], phase, step, ctx)
                last_loss = float(loss.detach())
                if not math.isfinite(last_loss):
                    raise DivergedError(f"{objective.name} loss became {last_loss} at step {done + 1} of {total_steps}")
                loss.backward()
                opt.step()
                objective.after_step(param, idx, ctx)
            done += 1
            probe = settings.probe_every and done % settings.probe_every == 0 and done < total_steps
            if (settings.progress_every and done % settings.progress_every == 0) or probe:
                info: Progress = {"step": done, "total_steps": total_steps, "loss": last_loss}
                if probe:
                    full = gather_rows(param.state_dict(), owner, ctx)
                    info["probe_val_acc"] = probe_accuracy(param, full, data, ctx, settings)
                ctx.progress(info)
            if settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < total_steps:
                checkpoint(phase_i, step + 1, opt)
        objective.end_phase(phase, param, ctx)
    with torch.no_grad():
        for k, v in gather_rows(param.state_dict(), owner, ctx).items():
            param.state_dict()[k].copy_(v)
    return {"distill_seconds": time.perf_counter() - start, "steps": float(total_steps), "loss": last_loss}
