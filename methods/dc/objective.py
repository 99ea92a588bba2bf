"""Gradient matching (DC; Zhao, Mopuri & Bilen, ICLR 2021) with DSA (Zhao & Bilen, ICML 2021).

Every iteration draws a freshly initialised network θ and runs ``outer_loop`` synthetic
updates. Update k minimises, per class c,

    D(∇_θ ℓ(S_c; θ), ∇_θ ℓ(B_c; θ))                                    (DC Eq. 9 / DSA Eq. 6)

with B_c a batch of real images of class c and S_c the synthetic ones, both augmented by
the same DSA draw (Siamese augmentation), and D DC's layer-wise distance (DC Eq. 10):

    D = Σ_layers Σ_i (1 − ⟨A_i, B_i⟩ / (‖A_i‖‖B_i‖))

over the output units i of each layer (a conv kernel's gradient is reshaped to
``(out, in·h·w)``; bias and normalisation gradients are skipped, as in the DC code). Between
two updates the network trains ``inner_loop`` epochs on the current synthetic set (plain SGD at
``lr_net`` by default, DatasetCondensation ``main.py``'s ``optimizer_net``; DSA), so θ follows the set it is trained on.

A distillation *step* is one synthetic update, so a run of ``iterations`` networks takes
``iterations × outer_loop`` steps. Workers: the network trains on every class between
updates, so the phase is replicated; class c's matching term runs on rank ``c % world_size``
(seeded by (seed, step, c)) and the gradients are summed before each update, so the result
does not depend on the number of workers (up to summation order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.augment.ops import DSA, augment_seeded, siamese
from methods.context import DistillContext, seed_from
from methods.datasets import RealData
from methods.dc.options import DCOptions
from methods.distill.objective import FreshNetworks, Objective, OptimDefaults, Phase, class_units
from methods.networks import Classifier, build_network
from methods.parameterizations import Parameterization


def layer_distance(g_syn: Tensor, g_real: Tensor, eps: float = 1e-6) -> Tensor:
    """DC's distance between two gradients of one layer: Σ_i (1 − cos(A_i, B_i)) over output units i.

    1-D gradients (biases, normalisation scales) contribute 0, as in the DC code.
    """
    if g_syn.dim() == 1:
        return g_syn.new_zeros(())
    a = g_syn.reshape(g_syn.shape[0], -1)
    b = g_real.reshape(g_real.shape[0], -1)
    cos = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)
    return (1.0 - cos).sum()


def match_distance(g_syn: list[Tensor], g_real: list[Tensor]) -> Tensor:
    """DC Eq. 10: the layer-wise distance summed over the network's parameters."""
    total = g_syn[0].new_zeros(())
    for a, b in zip(g_syn, g_real, strict=True):
        total = total + layer_distance(a, b)
    return total


class GradientMatching(Objective):
    def __init__(self, options: DCOptions) -> None:
        super().__init__(options)
        self.aug = DSA(options.augment, same_on_batch=True)
        self.train_aug = DSA(options.augment, same_on_batch=False)
        self.data: RealData | None = None
        self.nets: FreshNetworks | None = None
        self.net: Classifier | None = None
        self.net_opt: torch.optim.Optimizer | None = None
        self.outer, self.inner = options.loops(1)
        self.net_iteration = -1
        self._step = -1
        self._ctx: DistillContext | None = None

    def optim_defaults(self, param: Parameterization) -> OptimDefaults:
        # DC/DSA's optimizer_img: SGD, lr 0.1, momentum 0.5
        return OptimDefaults(optimizer="sgd", lr=0.1, momentum=0.5, schedule="constant")

    def prepare(self, data: RealData, ctx: DistillContext, needs: Mapping[str, Any]) -> None:
        self.data = data
        self._ctx = ctx
        net = build_network(self.options.distill_arch, data.channels, data.num_classes, data.resolution)
        self.nets = FreshNetworks(net, ctx.device)
        for p in self.nets.net.parameters():
            p.requires_grad_(True)

    def phases(self, param: Parameterization, iterations: int, ctx: DistillContext) -> list[Phase]:
        self.outer, self.inner = self.options.loops(param.config.shape.ipc)
        index = torch.arange(param.num_instances)
        return [Phase(key=0, index=index, units=class_units(param), iterations=iterations * self.outer,
                      replicated=True)]  # fmt: skip

    def _network(self, step: int, ctx: DistillContext) -> Classifier:
        """The network of ``step``: a fresh draw (seeded by the iteration) at each iteration's first update."""
        assert self.nets is not None
        it, k = divmod(step, self.outer)
        if k == 0 or self.net is None or self.net_iteration != it:
            self._fresh(it, ctx)
        assert self.net is not None
        return self.net

    def _fresh(self, it: int, ctx: DistillContext) -> None:
        assert self.nets is not None
        self.net = self.nets.draw(seed_from(ctx.seed, 0xDC0, it))
        self.net.train()
        self.net_iteration = it
        o = self.options
        self.net_opt = torch.optim.SGD(self.net.parameters(), lr=o.lr_net, momentum=o.net_momentum)

    def loss(self, images: Tensor, labels: Tensor, phase: Phase, step: int, ctx: DistillContext) -> Tensor:
        assert self.data is not None
        self._step = step
        net = self._network(step, ctx)
        params = list(net.parameters())
        total = images.new_zeros(())
        for c in torch.unique(labels).tolist():
            if not ctx.owns(int(c)):
                continue
            real = self.data.sample_class(c, self.options.batch_real, ctx.generator(0xDC1, step, c))
            real = real.to(images.device, non_blocking=True)
            syn = images[labels == c]
            real_a, syn_a = siamese(self.aug, seed_from(ctx.seed, 0xDC2, step, c), real, syn)
            y_real = torch.full((real_a.shape[0],), c, dtype=torch.long, device=images.device)
            y_syn = torch.full((syn_a.shape[0],), c, dtype=torch.long, device=images.device)
            g_real = torch.autograd.grad(F.cross_entropy(net(real_a), y_real), params)
            g_real = [g.detach() for g in g_real]
            g_syn = torch.autograd.grad(F.cross_entropy(net(syn_a), y_syn), params, create_graph=True)
            total = total + match_distance(list(g_syn), g_real)
        return total

    def after_step(self, param: Parameterization, index: Tensor, ctx: DistillContext) -> None:
        """Between two updates of an iteration: train the network ``inner_loop`` epochs on the current set."""
        step = self._step
        k = step % self.outer
        if k == self.outer - 1 or self.inner == 0:
            return
        assert self.net is not None and self.net_opt is not None
        with torch.no_grad():
            x_all = param.decode().detach()
        y_all = param.labels.to(x_all.device)
        n = x_all.shape[0]
        g = ctx.generator(0xDC3, step)
        for epoch in range(self.inner):
            perm = torch.randperm(n, generator=g)
            for b, idx in enumerate(perm.split(self.options.batch_train)):
                idx = idx.to(x_all.device)
                x = augment_seeded(self.train_aug, seed_from(ctx.seed, 0xDC4, step, epoch, b), x_all[idx])
                loss = F.cross_entropy(self.net(x), y_all[idx])
                self.net_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.net_opt.step()

    def state_dict(self) -> dict[str, Tensor]:
        """The current iteration's network and its optimiser momentum (identical on every rank), so a
        run resumed in the middle of an iteration continues with the same network."""
        if self.net is None or self.net_opt is None:
            return {}
        state = {f"net.{k}": v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        for i, p in enumerate(self.net.parameters()):
            buf = self.net_opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                state[f"net_momentum.{i}"] = buf.detach().cpu().clone()
        state["net_iteration"] = torch.tensor(self.net_iteration)
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "net_iteration" not in state or self._ctx is None:
            return
        self._fresh(int(state["net_iteration"]), self._ctx)
        assert self.net is not None and self.net_opt is not None
        device = next(self.net.parameters()).device
        self.net.load_state_dict({k[4:]: v.to(device) for k, v in state.items() if k.startswith("net.")})
        for i, p in enumerate(self.net.parameters()):
            if f"net_momentum.{i}" in state:
                self.net_opt.state[p]["momentum_buffer"] = state[f"net_momentum.{i}"].to(device).clone()
