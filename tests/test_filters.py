"""UniDD's filters (Table 1, Eq. 1–2, 14–16) and the CFM β schedule: values, identities, gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from methods.spectral import FILTER_KINDS, SpectralFilter, beta_at, spectral_apply

D = torch.float64


def psd_with_spectrum(lam: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A symmetric matrix U diag(λ) Uᵀ with a random orthogonal U (returned too)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(lam, dtype=torch.float64)) @ q.T, q


def test_push_through_identity_supplement_eq7() -> None:
    """X_sᵀ(X_sX_sᵀ + βI)⁻¹ = (X_sᵀX_s + βI)⁻¹X_sᵀ, for m < d and m > d."""
    g = torch.Generator().manual_seed(1)
    for m, d in ((5, 12), (12, 5)):
        xs = torch.randn(m, d, generator=g, dtype=torch.float64)
        beta = 0.3
        left = torch.linalg.solve(xs @ xs.T + beta * torch.eye(m, dtype=D), xs).T  # (X_sX_sᵀ+βI)⁻¹ symmetric
        right = torch.linalg.solve(xs.T @ xs + beta * torch.eye(d, dtype=D), xs.T)
        assert torch.allclose(left, right, atol=1e-12)
        ours = SpectralFilter("high_pass", beta=beta).apply(xs.T @ xs, xs.T, "signal")
        assert torch.allclose(ours, left, atol=1e-12)


def test_krr_loss_eq14_equals_eq15() -> None:
    """The linear-kernel KRR loss (Eq. 14, Gram form) equals its UniDD form (Eq. 15)."""
    g = torch.Generator().manual_seed(2)
    n, m, d, c, beta = 40, 6, 9, 3, 0.05
    x, xs = torch.randn(n, d, generator=g, dtype=D), torch.randn(m, d, generator=g, dtype=D)
    y = torch.nn.functional.one_hot(torch.randint(c, (n,), generator=g), c).double()
    ys = torch.nn.functional.one_hot(torch.arange(m) % c, c).double()
    w_real = torch.linalg.solve(x.T @ x + beta * torch.eye(d, dtype=D), x.T @ y)
    eq14 = ((w_real - xs.T @ torch.linalg.solve(xs @ xs.T + beta * torch.eye(m, dtype=D), ys)) ** 2).sum()
    f = SpectralFilter("high_pass", beta=beta)
    eq15 = ((f.apply(x.T @ x, x.T @ y, "signal") - f.apply(xs.T @ xs, xs.T @ ys, "signal")) ** 2).sum()
    assert eq14.item() > 1e-3
    assert math.isclose(eq14.item(), eq15.item(), rel_tol=1e-10)


FILTERS = [
    SpectralFilter("all_pass"),
    SpectralFilter("dc"),
    SpectralFilter("mtt", alpha=0.1, power=3),
    SpectralFilter("high_pass", beta=0.01),
    SpectralFilter("high_pass", beta=1.0),
    SpectralFilter("low_pass"),
]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: f"{f.kind}-{f.beta}")
@pytest.mark.parametrize("term", ["filter", "signal"])
def test_matrix_form_equals_eigendecomposition(f: SpectralFilter, term: str) -> None:
    """f(Ψ) without eigh (products, Cholesky solves) equals U f(Λ) Uᵀ (Eq. 2), with and without a signal."""
    psi, _ = psd_with_spectrum([5.0, 2.0, 1.0, 0.3, 0.01, 0.0])
    phi = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(f.apply(psi, term=term), spectral_apply(f, psi, term=term), atol=1e-9)
    assert torch.allclose(f.apply(psi, phi, term), spectral_apply(f, psi, phi, term), atol=1e-9)


def test_responses_on_a_known_spectrum() -> None:
    """Eigenvalues sorted from low to high frequency: low-pass falls, high-pass rises (§2, Fig. 1)."""
    lam = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.1, 0.01], dtype=D)  # large λ = low frequency first
    psi, u = psd_with_spectrum(lam.tolist(), seed=4)

    def along_frequency(f: SpectralFilter, term: str = "filter") -> torch.Tensor:
        # the response measured on each eigenvector: uᵢᵀ f(Ψ) uᵢ = f(λᵢ)
        measured = torch.einsum("di,de,ei->i", u, f.apply(psi, term=term), u)
        assert torch.allclose(measured, f.response(lam, term), atol=1e-9)
        return measured

    low = along_frequency(SpectralFilter("low_pass"))
    assert bool((low.diff() < 0).all()), "low-pass must decrease with frequency"
    for beta in (1e-3, 1e-2, 1e-1, 1.0):
        high = along_frequency(SpectralFilter("high_pass", beta=beta))
        assert bool((high.diff() > 0).all()), "high-pass must increase with frequency"
    mtt = along_frequency(SpectralFilter("mtt", alpha=0.1, power=3))  # αλ < 1: (1−αλ)^P rises
    assert bool((mtt.diff() > 0).all())
    assert torch.allclose(along_frequency(SpectralFilter("all_pass")), torch.ones(7, dtype=D))
    assert torch.allclose(along_frequency(SpectralFilter("dc"), "signal"), torch.ones(7, dtype=D))
    assert bool((along_frequency(SpectralFilter("dc"), "filter").diff() < 0).all())


def test_high_pass_tends_to_all_pass_as_beta_grows() -> None:
    """β(λ + β)⁻¹ → 1: a large β makes the high-pass filter all-pass up to scale (§3)."""
    psi, _ = psd_with_spectrum([3.0, 1.0, 0.1])
    eye = torch.eye(3, dtype=D)
    gaps = [(b * SpectralFilter("high_pass", beta=b).apply(psi) - eye).abs().max().item() for b in (1, 1e2, 1e4)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3


def test_mtt_signal_is_the_geometric_sum() -> None:
    """MTT's signal filter α Σ_{p<P} (1−αλ)^p = (1 − (1−αλ)^P)/λ (Eq. 10)."""
    lam = torch.tensor([2.0, 0.7, 0.05], dtype=D)
    f = SpectralFilter("mtt", alpha=0.2, power=5)
    assert torch.allclose(f.response(lam, "signal"), (1 - (1 - 0.2 * lam) ** 5) / lam, atol=1e-12)


def test_resolvent_gradient_is_finite_with_repeated_eigenvalues() -> None:
    """The Cholesky path has a well-defined gradient where eigh's is singular (Ψ = I)."""
    psi = torch.eye(4, dtype=D, requires_grad=True)
    f = SpectralFilter("high_pass", beta=0.1)
    f.apply(psi).sum().backward()
    assert psi.grad is not None and bool(torch.isfinite(psi.grad).all())
    a = torch.randn(4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = (a @ a.T).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: f.apply((p + p.T) / 2, term="filter"), (x,))


def test_beta_schedule_endpoints_and_monotonicity() -> None:
    """Eq. 16: β_0 = β, β_T = 0, non-increasing in t, > 0 for every batch t < T."""
    beta, total = 0.1, 10
    cos = [beta_at(beta, t, total, "cosine") for t in range(total + 1)]
    assert cos[0] == pytest.approx(beta) and cos[-1] == pytest.approx(0.0, abs=1e-15)
    assert all(a > b for a, b in itertools.pairwise(cos))
    assert all(v > 0 for v in cos[:total])
    assert cos[total // 2] == pytest.approx(beta / 2)
    lin = [beta_at(beta, t, total, "linear") for t in range(total + 1)]
    assert lin[0] == pytest.approx(beta) and lin[-1] == pytest.approx(0.0)
    assert all(a > b for a, b in itertools.pairwise(lin))
    assert all(beta_at(beta, t, total, "constant") == beta for t in range(total))
    # cosine stays above linear over the first half: the curriculum lingers on low frequencies
    assert all(c >= li for c, li in zip(cos[: total // 2], lin[: total // 2], strict=True))
    with pytest.raises(ValueError, match="beta_schedule"):
        beta_at(beta, 0, total, "exponential")


def test_filter_validation() -> None:
    with pytest.raises(ValueError, match="unknown filter"):
        SpectralFilter("band_pass")
    with pytest.raises(ValueError, match="β > 0"):
        SpectralFilter("high_pass", beta=0.0)
    assert set(FILTER_KINDS) == {"all_pass", "dc", "mtt", "high_pass", "low_pass"}
    assert SpectralFilter("all_pass").is_constant("filter") and not SpectralFilter("dc").is_constant("filter")
