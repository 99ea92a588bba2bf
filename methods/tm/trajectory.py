"""The trajectory-matching loss of one trajectory and its gradients (MTT; TESLA's constant-memory pass).

MTT (Cazenavette et al. 2022, Sec. 3, Eq. 1–2 of the paper's method section): from the
expert's weights θ_0 = θ*_t at epoch t the student takes N SGD steps on synthetic minibatches
b_i (augmented by DSA draw A_i), with a learnable step size α,

    θ_{i+1} = θ_i − α ∇_θ ℓ(θ_i; A_i(x_{b_i}), y_{b_i}),                          (MTT Eq. 1)

and the loss is the distance to the expert M epochs later, normalised by the expert's move,

    L = ‖θ_N − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖².                                   (MTT Eq. 2)

Three ways to get dL/dx and dL/dα (:func:`match_trajectory`, ``mode``):

* ``unrolled``: autograd through the N steps (MTT). Memory grows with N: every step's
  graph (activations and the graph of its gradient) is kept until the backward pass.
* ``constant_memory``: the same gradient, computed by an explicit reverse pass (the
  adjoint recursion TESLA, Cui et al. 2023, builds on). The forward pass keeps only the
  θ_i vectors; the backward pass walks i = N−1 … 0 with λ_N = ∂L/∂θ_N = 2(θ_N − θ*)/D and,
  recomputing step i's graph (same minibatch, same seeded augmentation),

      ∂L/∂α   += −λ_{i+1} · g_i
      ∂L/∂x   += −α ∂(g_i · λ_{i+1})/∂x                  (vector–Jacobian product)
      λ_i      = λ_{i+1} − α ∂(g_i · λ_{i+1})/∂θ_i        (Hessian–vector product)

  with g_i = ∇_θ ℓ(θ_i; A_i(x_{b_i})). This is exact (the chain rule, reordered); only one
  step's graph is alive at a time, plus the N+1 stored θ_i vectors (N·|θ| floats).
* ``first_order``: TESLA's published gradient as implemented in DATM's ``DATM_tesla.py``:
  every step uses λ_N in place of λ_{i+1}, i.e. it drops the Hessian terms through which an
  earlier step's images move later θ_i. **Approximate** (exact for N = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.augment.ops import DSA, augment_seeded
from methods.functional import FunctionalNet

MODES = ("unrolled", "constant_memory", "first_order")


@dataclass
class TrajectoryPlan:
    """The random choices of one student trajectory: minibatch indices and augmentation seed per step."""

    batches: list[Tensor]
    aug_seeds: list[int]

    @property
    def steps(self) -> int:
        return len(self.batches)


def plan_batches(n: int, batch: int, steps: int, generator: torch.Generator) -> list[Tensor]:
    """Minibatch indices for ``steps`` inner steps: chunks of ``batch`` from a fresh permutation of the
    ``n`` instances, a new permutation whenever one is used up (MTT's ``indices_chunks``)."""
    out: list[Tensor] = []
    chunks: list[Tensor] = []
    for _ in range(steps):
        if not chunks:
            chunks = list(torch.randperm(n, generator=generator).split(max(1, batch)))
        out.append(chunks.pop(0))
    return out


@dataclass
class TrajectoryGrads:
    """L (a float) and its gradients with respect to the synthetic images and the step size α."""

    loss: float
    images: Tensor
    lr: Tensor


def inner_grad(
    fnet: FunctionalNet, aug: DSA, theta: Tensor, x: Tensor, y: Tensor, seed: int, create_graph: bool
) -> Tensor:
    """g = ∇_θ CE(f(θ; A(x)), y) with the augmentation A drawn from ``seed``."""
    logits = fnet(theta, augment_seeded(aug, seed, x))
    return torch.autograd.grad(F.cross_entropy(logits, y), theta, create_graph=create_graph)[0]


def _forward(
    fnet: FunctionalNet, aug: DSA, images: Tensor, labels: Tensor, lr: Tensor, start: Tensor, plan: TrajectoryPlan
) -> list[Tensor]:
    """θ_0 … θ_N without any graph (each step's gradient is taken and the graph freed)."""
    thetas = [start.detach()]
    x = images.detach()
    for idx, seed in zip(plan.batches, plan.aug_seeds, strict=True):
        theta = thetas[-1].detach().requires_grad_(True)
        g = inner_grad(fnet, aug, theta, x[idx], labels[idx], seed, create_graph=False)
        thetas.append((theta.detach() - lr * g).detach())
    return thetas


def match_trajectory(
    fnet: FunctionalNet,
    aug: DSA,
    images: Tensor,
    labels: Tensor,
    lr: Tensor,
    start: Tensor,
    target: Tensor,
    plan: TrajectoryPlan,
    mode: str = "unrolled",
) -> TrajectoryGrads:
    """L of one trajectory (MTT Eq. 2) and (dL/d images, dL/dα) by the chosen ``mode`` (see the module)."""
    if mode not in MODES:
        raise ValueError(f"tm_gradient must be one of {', '.join(MODES)}, got {mode!r}")
    start, target = start.detach(), target.detach()
    lr = lr.detach().reshape(())
    denom = (start - target).pow(2).sum()
    with torch.enable_grad():
        if mode == "unrolled":
            return _unrolled(fnet, aug, images, labels, lr, start, target, denom, plan)
        thetas = _forward(fnet, aug, images, labels, lr, start, plan)
        theta_n = thetas[-1]
        loss = float((theta_n - target).pow(2).sum() / denom)
        lam_n = 2.0 * (theta_n - target) / denom
        g_images = torch.zeros_like(images)
        g_lr = torch.zeros((), dtype=lr.dtype, device=lr.device)
        lam = lam_n
        x = images.detach()
        for i in reversed(range(plan.steps)):
            idx, seed = plan.batches[i], plan.aug_seeds[i]
            theta = thetas[i].detach().requires_grad_(True)
            xb = x[idx].detach().requires_grad_(True)
            g = inner_grad(fnet, aug, theta, xb, labels[idx], seed, create_graph=True)
            if mode == "first_order":
                s = (g * lam_n).sum()
                (h_x,) = torch.autograd.grad(s, xb)
            else:
                s = (g * lam).sum()
                h_theta, h_x = torch.autograd.grad(s, (theta, xb))
                lam = lam - lr * h_theta
            g_lr = g_lr - s.detach()
            g_images.index_add_(0, idx.to(g_images.device), -lr * h_x)
        return TrajectoryGrads(loss, g_images, g_lr)


def _unrolled(
    fnet: FunctionalNet,
    aug: DSA,
    images: Tensor,
    labels: Tensor,
    lr: Tensor,
    start: Tensor,
    target: Tensor,
    denom: Tensor,
    plan: TrajectoryPlan,
) -> TrajectoryGrads:
    x = images.detach().requires_grad_(True)
    alpha = lr.clone().requires_grad_(True)
    theta = start.clone().requires_grad_(True)
    for idx, seed in zip(plan.batches, plan.aug_seeds, strict=True):
        g = inner_grad(fnet, aug, theta, x[idx], labels[idx], seed, create_graph=True)
        theta = theta - alpha * g
    loss = (theta - target).pow(2).sum() / denom
    g_images, g_lr = torch.autograd.grad(loss, (x, alpha))
    return TrajectoryGrads(float(loss.detach()), g_images, g_lr)


__all__ = ["MODES", "TrajectoryGrads", "TrajectoryPlan", "inner_grad", "match_trajectory", "plan_batches"]
