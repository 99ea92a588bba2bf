"""Trajectory-matching gradients: the constant-memory reverse pass equals autograd through the unrolled steps."""

from __future__ import annotations

import pytest
import torch

from methods.augment.ops import DSA, DSA_DEFAULT
from methods.functional import FunctionalNet
from methods.networks import build_network
from methods.tm.trajectory import TrajectoryPlan, inner_grad, match_trajectory, plan_batches


def _case(dtype: torch.dtype, steps: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    net = build_network("convnet_d2", 3, 4, 16).to(dtype)
    fnet = FunctionalNet(net)
    start = fnet.flatten()
    target = start + 0.02 * torch.randn(start.shape, dtype=dtype)
    images = torch.randn(8, 3, 16, 16, dtype=dtype)
    labels = torch.arange(4).repeat_interleave(2)
    plan = TrajectoryPlan(plan_batches(8, 3, steps, torch.Generator().manual_seed(seed)), list(range(100, 100 + steps)))
    lr = torch.tensor(0.05, dtype=dtype)
    return fnet, DSA(DSA_DEFAULT), images, labels, lr, start, target, plan


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# float64 shows the exactness (observed ~1e-14); in float32 the two orders of the same sums differ by
# round-off (observed 1.6e-5 here, while each float32 path is ~1.5e-4 from the float64 result)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_constant_memory_gradient_equals_unrolled(dtype: torch.dtype, tol: float) -> None:
    case = _case(dtype)
    unrolled = match_trajectory(*case, mode="unrolled")
    constant = match_trajectory(*case, mode="constant_memory")
    assert unrolled.loss == pytest.approx(constant.loss, rel=1e-6)
    assert float(unrolled.images.abs().max()) > 0 and float(unrolled.lr.abs()) > 0
    assert _rel(constant.images, unrolled.images) <= tol
    assert _rel(constant.lr, unrolled.lr) <= tol
    # every image the plan used has a gradient; the loss is not flat in any of them
    used = torch.unique(torch.cat(case[-1].batches))
    assert bool((constant.images[used].flatten(1).norm(dim=1) > 0).all())


def test_gradient_matches_a_finite_difference_of_the_loss() -> None:
    fnet, aug, images, labels, lr, start, target, plan = _case(torch.float64, steps=3)
    g = match_trajectory(fnet, aug, images, labels, lr, start, target, plan, mode="constant_memory")
    direction = torch.randn_like(images)
    eps = 1e-7  # the loss is piecewise smooth (ReLU kinks): central differences need a small step

    def loss_at(x: torch.Tensor, a: torch.Tensor) -> float:
        return match_trajectory(fnet, aug, x, labels, a, start, target, plan, mode="unrolled").loss

    fd_x = (loss_at(images + eps * direction, lr) - loss_at(images - eps * direction, lr)) / (2 * eps)
    assert float((g.images * direction).sum()) == pytest.approx(fd_x, rel=1e-4)
    fd_lr = (loss_at(images, lr + eps) - loss_at(images, lr - eps)) / (2 * eps)
    assert float(g.lr) == pytest.approx(fd_lr, rel=1e-4)


def test_first_order_is_tesla_s_approximation() -> None:
    """Approximate path: exact for one step; for N steps it is the gradient of the unroll with every θ_i detached."""
    one = _case(torch.float64, steps=1)
    exact = match_trajectory(*one, mode="unrolled")
    approx = match_trajectory(*one, mode="first_order")
    assert _rel(approx.images, exact.images) < 1e-10 and _rel(approx.lr, exact.lr) < 1e-10

    fnet, aug, images, labels, lr, start, target, plan = _case(torch.float64, steps=4)
    x = images.clone().requires_grad_(True)
    alpha = lr.clone().requires_grad_(True)
    theta = start.clone()
    for idx, seed in zip(plan.batches, plan.aug_seeds, strict=True):  # θ_i detached: no path through earlier steps
        g = inner_grad(fnet, aug, theta.detach().requires_grad_(True), x[idx], labels[idx], seed, create_graph=True)
        theta = theta.detach() - alpha * g if theta.grad_fn is None else theta - alpha * g
    loss = (theta - target).pow(2).sum() / (start - target).pow(2).sum()
    want_x, want_lr = torch.autograd.grad(loss, (x, alpha))
    got = match_trajectory(fnet, aug, images, labels, lr, start, target, plan, mode="first_order")
    assert _rel(got.images, want_x) < 1e-10 and _rel(got.lr, want_lr) < 1e-10
    exact = match_trajectory(fnet, aug, images, labels, lr, start, target, plan, mode="constant_memory")
    assert _rel(got.images, exact.images) > 1e-3  # and it is not the exact gradient


def test_minibatches_walk_permutations_like_mtt() -> None:
    batches = plan_batches(10, 4, 6, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(batches[:3]).tolist()) == list(range(10))
    assert sorted(torch.cat(batches[3:]).tolist()) == list(range(10))
    again = plan_batches(10, 4, 6, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="tm_gradient"):
        match_trajectory(*_case(torch.float32, steps=1), mode="tesla")
