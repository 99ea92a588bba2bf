"""Trajectory matching (TM, "MTT"; Cazenavette et al., CVPR 2022), on any parameterization.

Each iteration draws ``trajectories_per_step`` trajectories; trajectory t draws an expert e
and a start epoch s (seeded by (seed, step, t)), runs the student from θ*_{e,s} for
``syn_steps`` differentiable SGD steps on synthetic minibatches with the learnable step size α
(MTT Eq. 1), and scores L_t = ‖θ_N − θ*_{e,s+M}‖² / ‖θ*_{e,s} − θ*_{e,s+M}‖² (MTT Eq. 2).
The iteration's loss is the mean over trajectories. The gradients with respect to the decoded
images and α come from :func:`methods.tm.trajectory.match_trajectory` (``tm_gradient``: unrolled,
exact constant-memory, or TESLA's first-order approximation); they reach the parameterization
(pixels, neural-field weights, …) through one backward pass of the decoder.

α is part of the synthetic set: it is optimised by its own SGD (``syn_lr_lr``, momentum
``syn_lr_momentum``; MTT's ``optimizer_lr``), checkpointed in :meth:`state_dict`, and saved
with the set through :meth:`row_fields` (key :data:`methods.evaluation.student.LEARNED_LR_KEY`), so a
student can train with it (``evaluation.lr_from_set``).

Workers: the loss does not split by instance (every inner step trains on all of them), so
the phase is *replicated*: trajectory t runs on rank ``t % world_size``, gradients are summed
over ranks before the step, and all ranks keep identical sets. Since every draw is seeded by
(seed, step, t), the result for a fixed ``trajectories_per_step`` does not depend on the
number of workers (up to floating-point summation order); workers beyond
``trajectories_per_step`` idle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from methods.augment.ops import DSA
from methods.context import DistillContext, seed_from
from methods.datasets import RealData
from methods.distill.objective import Objective, OptimDefaults, Phase
from methods.evaluation.student import LEARNED_LR_KEY
from methods.functional import FunctionalNet
from methods.networks import build_network
from methods.parameterizations import Parameterization
from methods.records import RowFields
from methods.tm.options import MTT_PIXEL_LR, MTT_PIXEL_MOMENTUM, TMOptions
from methods.tm.trajectory import TrajectoryPlan, match_trajectory, plan_batches


class TrajectoryMatching(Objective):
    def __init__(self, options: TMOptions) -> None:
        super().__init__(options)
        self.aug = DSA(options.augment, same_on_batch=False)
        self.buffer: Any = None
        self.fnet: FunctionalNet | None = None
        self.syn_lr = torch.tensor(float(options.syn_lr_init), requires_grad=True)
        self.lr_opt = self._lr_optimizer()
        self.last_starts: list[tuple[int, int, int]] = []  # (trajectory, expert, start epoch) of the last step

    def _lr_optimizer(self) -> torch.optim.SGD:
        o = self.options
        return torch.optim.SGD([self.syn_lr], lr=o.syn_lr_lr, momentum=o.syn_lr_momentum)

    def optim_defaults(self, param: Parameterization) -> OptimDefaults:
        # MTT's optimizer_img for pixels: SGD, momentum 0.5, lr 1000 (CIFAR-10 IPC 1, ZCA)
        return OptimDefaults(optimizer="sgd", lr=MTT_PIXEL_LR, momentum=MTT_PIXEL_MOMENTUM, schedule="constant")

    def prepare(self, data: RealData, ctx: DistillContext, needs: Mapping[str, Any]) -> None:
        buffer = self.need(needs, "experts", self.name)
        need = self.options.last_epoch_needed()
        if buffer.last_epoch < need:
            raise ValueError(
                f"tm reads expert epochs up to max_start_epoch − 1 + expert_epochs = {need}, but the experts keep "
                f"0…{buffer.last_epoch}; raise experts.keep_epochs / train_epochs or lower max_start_epoch"
            )
        meta = buffer.meta
        shape = (int(meta["channels"]), int(meta["num_classes"]), int(meta["resolution"]))
        if shape != (data.channels, data.num_classes, data.resolution):
            raise ValueError(
                f"the experts were trained on {shape} (channels, classes, resolution) but the data is "
                f"{(data.channels, data.num_classes, data.resolution)}"
            )
        net = build_network(buffer.arch, data.channels, data.num_classes, data.resolution).to(ctx.device)
        net.train()
        self.fnet = FunctionalNet(net)
        if self.fnet.num_params != buffer.num_params:
            raise ValueError(f"{buffer.arch} has {self.fnet.num_params} parameters, the experts {buffer.num_params}")
        self.buffer = buffer
        with torch.no_grad():
            value = self.syn_lr.detach().to(ctx.device)
        self.syn_lr = value.clone().requires_grad_(True)
        self.lr_opt = self._lr_optimizer()

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        n = param.num_instances
        return [Phase(key=0, index=torch.arange(n), units=torch.zeros(n, dtype=torch.long),
                      iterations=iterations, replicated=True)]  # fmt: skip

    def draw(self, step: int, t: int, n_images: int, ctx: DistillContext) -> tuple[int, int, TrajectoryPlan]:
        """Trajectory ``t`` of iteration ``step``: expert, start epoch and plan (seeded by (seed, step, t))."""
        o = self.options
        g = ctx.generator(0x7A1, step, t)
        expert = int(torch.randint(self.buffer.num_experts, (1,), generator=g))
        start = int(torch.randint(o.min_start_epoch, o.start_upper(step), (1,), generator=g))
        batches = plan_batches(n_images, o.batch_syn or n_images, o.syn_steps, g)
        seeds = [seed_from(ctx.seed, 0x7A2, step, t, i) for i in range(o.syn_steps)]
        return expert, start, TrajectoryPlan(batches, seeds)

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        assert self.fnet is not None and self.buffer is not None, "prepare() first"
        o = self.options
        total = o.trajectories_per_step
        g_images = torch.zeros_like(images)
        g_lr = torch.zeros_like(self.syn_lr)
        value = 0.0
        self.last_starts = []
        for t in range(ctx.rank, total, ctx.world_size):
            expert, start, plan = self.draw(step, t, images.shape[0], ctx)
            theta0, target = self.buffer.pair(expert, start, start + o.expert_epochs)
            theta0, target = theta0.to(images.dtype), target.to(images.dtype)
            r = match_trajectory(
                self.fnet, self.aug, images.detach(), labels, self.syn_lr, theta0, target, plan, o.tm_gradient
            )
            value += r.loss / total
            g_images += r.images / total
            g_lr += r.lr / total
            self.last_starts.append((t, expert, start))
        # one backward pass of this surrogate gives the decoder dL/dθ_set and α its dL/dα; its value is L
        surrogate = (images * g_images).sum() + (self.syn_lr * g_lr).sum()
        return surrogate - surrogate.detach() + value

    def learnables(self) -> list[Tensor]:
        return [self.syn_lr]

    def after_step(self, param: Parameterization, index: Tensor, ctx: DistillContext) -> None:
        self.lr_opt.step()
        self.lr_opt.zero_grad(set_to_none=False)

    def state_dict(self) -> dict[str, Tensor]:
        state = {"syn_lr": self.syn_lr.detach().cpu().clone()}
        buf = self.lr_opt.state.get(self.syn_lr, {}).get("momentum_buffer")
        if buf is not None:
            state["syn_lr_momentum"] = buf.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "syn_lr" in state:
            with torch.no_grad():
                self.syn_lr.copy_(state["syn_lr"].to(self.syn_lr))
        if "syn_lr_momentum" in state:
            self.lr_opt.state[self.syn_lr]["momentum_buffer"] = state["syn_lr_momentum"].to(self.syn_lr).clone()

    def row_fields(self) -> RowFields:
        return {LEARNED_LR_KEY: float(self.syn_lr.detach())}
