"""UniDD's spectral filters as data (Bo, Liu & Wang, "Understanding Dataset Distillation via
Spectral Filtering", CVPR 2025).

UniDD (Eq. 1) writes every DD objective as

    min_{X_s} ‖ f(XᵀX) g(XᵀY) − f(X_sᵀX_s) g(X_sᵀY_s) ‖²_F,

a filter f acting on the eigenvalues of the feature-feature correlation (FFC, XᵀX = UΛUᵀ,
Eq. 2) applied either to the identity (g = I: the *filter* term) or to the feature-label
correlation (g = XᵀY: the *signal* term). A large eigenvalue is a low frequency, so a filter
whose response grows with λ is low-pass and one that falls with λ is high-pass (§2).

A :class:`SpectralFilter` names one method's pair of responses (Table 1):

=============  ==========================  ===============================  =================
kind           filter term (g = I)         signal term (g = XᵀY)            class
=============  ==========================  ===============================  =================
``all_pass``   1                           1                                DM (Eq. 3)
``dc``         λ                           1                                DC (Eq. 6)
``mtt``        (1 − αλ)^P                  α Σ_{p<P} (1 − αλ)^p             MTT (Eq. 10)
``high_pass``  (λ + β)⁻¹                   (λ + β)⁻¹                        FRePo/KRR (Eq. 15),
                                                                            CFM (Eq. 20)
``low_pass``   λ                           λ                                LFM (Fig. 3)
=============  ==========================  ===============================  =================

Each response is applied to a matrix without an eigendecomposition and without an explicit
inverse: polynomials by repeated products, the resolvent (λ + β)⁻¹ by a Cholesky
factorisation and triangular solves (``torch.linalg.cholesky`` + ``torch.cholesky_solve``) in
float64, which keeps the gradient well defined even when eigenvalues are repeated (the
gradient of ``eigh`` is not). :meth:`SpectralFilter.response` gives the scalar response for
tests and plots; :func:`spectral_apply` is the eigendecomposition reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch
from torch import Tensor

from methods.cfm.options import FILTER_KINDS, BetaSchedule

Term = Literal["filter", "signal"]

#: kind → (response on the filter term, response on the signal term); the names are the
#: ``filter`` vocabulary of :class:`methods.cfm.options.FilterMatchingOptions`
BETA_SCHEDULES: tuple[str, ...] = get_args(BetaSchedule)


@dataclass(frozen=True)
class SpectralFilter:
    """One UniDD filter: ``kind`` (see the module table) and its parameters.

    ``beta`` is the ridge of the resolvent (λ + β)⁻¹; ``alpha`` and ``power`` are MTT's
    learning rate α and number of unrolled steps P.
    """

    kind: str
    beta: float = 0.1
    alpha: float = 0.1
    power: int = 2

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise ValueError(f"unknown filter {self.kind!r}; known: {', '.join(FILTER_KINDS)}")
        if self.kind == "high_pass" and not self.beta > 0:
            raise ValueError(f"the high-pass filter (λ+β)⁻¹ needs β > 0 (got {self.beta})")
        if self.kind == "mtt" and (self.power < 1 or not self.alpha > 0):
            raise ValueError(f"the MTT filter needs power ≥ 1 and alpha > 0 (got {self.power}, {self.alpha})")

    def with_beta(self, beta: float) -> SpectralFilter:
        return replace(self, beta=beta)

    def _fn(self, term: Term) -> str:
        return FILTER_KINDS[self.kind][0 if term == "filter" else 1]

    def is_constant(self, term: Term) -> bool:
        """True when the response does not depend on λ (the term then matches nothing)."""
        return self._fn(term) == "one"

    def response(self, lam: Tensor, term: Term = "filter") -> Tensor:
        """f(λ) elementwise, for eigenvalues ``lam``."""
        fn = self._fn(term)
        if fn == "one":
            return torch.ones_like(lam)
        if fn == "identity":
            return lam.clone()
        if fn == "resolvent":
            return 1.0 / (lam + self.beta)
        step = 1.0 - self.alpha * lam
        if fn == "power":
            return step**self.power
        return self.alpha * sum((step**p for p in range(self.power)), torch.zeros_like(lam))

    def apply(self, psi: Tensor, rhs: Tensor | None = None, term: Term = "filter") -> Tensor:
        """f(Ψ) @ rhs for a symmetric PSD ``psi`` (f(Ψ) itself when ``rhs`` is None).

        Computed in float64 (the result keeps that dtype); differentiable in ``psi`` and
        ``rhs``. The resolvent uses a Cholesky solve, never ``torch.linalg.inv``.
        """
        psi = psi.double()
        eye = torch.eye(psi.shape[-1], dtype=psi.dtype, device=psi.device)
        b = eye if rhs is None else rhs.double()
        fn = self._fn(term)
        if fn == "one":
            return b.clone()
        if fn == "identity":
            return psi @ b
        if fn == "resolvent":
            chol = torch.linalg.cholesky(psi + self.beta * eye)
            return torch.cholesky_solve(b, chol)
        if fn == "power":
            out = b
            for _ in range(self.power):
                out = out - self.alpha * (psi @ out)
            return out
        total, term_p = torch.zeros_like(b), b
        for _ in range(self.power):
            total = total + term_p
            term_p = term_p - self.alpha * (psi @ term_p)
        return self.alpha * total


def spectral_apply(f: SpectralFilter, psi: Tensor, rhs: Tensor | None = None, term: Term = "filter") -> Tensor:
    """Reference f(Ψ) @ rhs through ``eigh``: U f(Λ) Uᵀ rhs (Eq. 2), float64. For tests only."""
    lam, u = torch.linalg.eigh(psi.double())
    out = u @ torch.diag(f.response(lam, term)) @ u.T
    return out if rhs is None else out @ rhs.double()


def beta_at(beta: float, t: int, total: int, schedule: str = "cosine") -> float:
    """β_t of the frequency curriculum for synthetic batch ``t`` of ``total`` (0-based).

    ``cosine`` is Eq. 16, β_t = β(1 + cos(πt/T))/2 with T = ``total``: β at the first batch,
    falling monotonically (more high-frequency) and staying > 0 for t < T. ``linear`` falls as
    β(1 − t/T); ``constant`` keeps β (a fixed high-pass filter).
    """
    if schedule not in BETA_SCHEDULES:
        raise ValueError(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {schedule!r}")
    if schedule == "constant" or total <= 0:
        return beta
    if schedule == "cosine":
        return beta * (1.0 + math.cos(math.pi * t / total)) / 2.0
    return beta * (1.0 - t / total)


__all__ = ["BETA_SCHEDULES", "FILTER_KINDS", "SpectralFilter", "beta_at", "spectral_apply"]
