"""Filter matching: UniDD's objective with the filter as a choice — CFM, LFM and the family.

For every hooked teacher layer l (Eq. 17–18 statistics, :mod:`methods.spectral.statistics`)
and a filter f (:class:`methods.spectral.SpectralFilter`), the loss of one synthetic batch is

    L_filter = Σ_l ‖ f(Ψ^l) − f(Ψ_s^l) ‖_F                       (g = I)
    L_signal = Σ_l ‖ f(Ψ^l) Φ^l − f(Ψ_s^l) Φ_s^l ‖_F              (g = XᵀY)
    L        = L_cls(H_s, Y_s) + η · L_filter + η · L_signal        (Eq. 20–21)

with Ψ_s, Φ_s the synthetic statistics under exponential moving updating (Eq. 19) and, for
filters with a ridge β, β_t = β(1 + cos(πt/T))/2 over the batch index t of T batches (Eq. 16;
``linear`` and ``constant`` schedules too). Norms are unsquared Frobenius norms, as in Eq. 20
and the reference code. Each term can be switched off (``use_filter``, ``use_signal``,
``use_ce``) for the Table 5 ablation.

Registered configurations:

* ``cfm`` — Curriculum Frequency Matching: the high-pass filter (λ + β_t)⁻¹ with the cosine
  curriculum (β = 0.1, η = 0.1: CIFAR settings of the supplement's Table 3).
* ``lfm`` — low-frequency matching: the low-pass filter f(λ) = λ (Ψ itself), Fig. 3's
  low-pass arm. It reads no β.
* ``filter_matching`` — any filter of UniDD's Table 1 by name (``all_pass`` = DM-type,
  ``dc``, ``mtt``, ``high_pass`` = FRePo/KRR-type, ``low_pass``), constant β by default.

EMU with W workers (:class:`~methods.recover.loop.BatchRecover` rounds): the moving
statistics are updated at the end of each round with the final (un-augmented) statistics of
every batch in it, summed by one ``all_reduce``; batch b is optimised against the running
mean of the batches of earlier rounds. With ``round_size`` 1 (or one worker and
``round_size`` 0) this is Eq. 19 exactly — batch b sees batches 0…b−1; with rounds of R
batches, batch b sees batches 0…R⌊b/R⌋−1. The state is identical on every rank, is part of
the checkpoint, and for a fixed ``round_size`` does not depend on W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.cfm.options import CFMOptions, FilterMatchingOptions, SpectralMatchingOptions
from methods.context import DistillContext
from methods.datasets import RealData
from methods.distill.objective import Phase
from methods.parameterizations import Parameterization
from methods.recover.loop import BatchRecover
from methods.spectral import (
    MovingStatistics,
    SpectralFilter,
    batch_statistics,
    beta_at,
    cached_real_statistics,
    select_convs,
)


class FilterMatching(BatchRecover):
    """UniDD filter matching against a teacher's per-layer statistics (Eq. 20–21)."""

    def __init__(self, options: SpectralMatchingOptions) -> None:
        super().__init__(options)
        self.filter = self.build_filter(options)
        self.schedule = getattr(options, "beta_schedule", "constant")
        beta_at(self.filter.beta, 0, 1, self.schedule)  # validates the schedule name
        if not (options.use_filter or options.use_signal or options.use_ce):
            raise ValueError("every loss term is switched off (use_filter, use_signal, use_ce)")
        if options.use_filter and not (options.use_signal or options.use_ce) and self.filter.is_constant("filter"):
            raise ValueError(f"the {self.filter.kind} filter's filter term is constant; enable use_signal")
        self.emu = MovingStatistics()
        self.real: list[tuple[Tensor, Tensor]] = []
        self._real_filtered: dict[float, list[tuple[Tensor, Tensor]]] = {}
        self.stats_cache_hit = False
        self.last_terms: dict[str, float] = {}

    @staticmethod
    def build_filter(options: SpectralMatchingOptions) -> SpectralFilter:
        o = options
        return SpectralFilter(
            getattr(o, "filter", "high_pass"),
            beta=getattr(o, "beta", 0.1),
            alpha=getattr(o, "alpha", 0.1),
            power=getattr(o, "power", 2),
        )

    def prepare_statistics(self, data: RealData, ctx: DistillContext) -> None:
        assert self.teacher is not None
        convs = select_convs(self.teacher, self.options.stat_layers, data.resolution)
        self.taps = [m for _, m in convs]
        moments, self.stats_cache_hit = cached_real_statistics(
            self.teacher, convs, data.train_x, data.train_y, self.num_classes, ctx, self.options.stat_batch
        )
        self.real = [(m.psi(), m.phi()) for m in moments]
        self._real_filtered = {}

    def beta_of(self, batch: int) -> float:
        """β_t for IPC batch ``batch`` (Eq. 16 with t = batch, T = number of batches)."""
        return beta_at(self.filter.beta, batch, self.num_batches, self.schedule)

    def real_filtered(self, beta: float) -> list[tuple[Tensor, Tensor]]:
        """(f(Ψ^l), f(Ψ^l)Φ^l) of the real statistics at ridge ``beta`` (memoised)."""
        if beta not in self._real_filtered:
            f = self.filter.with_beta(beta)
            self._real_filtered[beta] = [(f.apply(psi), f.apply(psi, phi, "signal")) for psi, phi in self.real]
        return self._real_filtered[beta]

    def batch_loss(self, inputs: list[Tensor], logits: Tensor, labels: Tensor, batch: int, step: int) -> Tensor:
        onehot = F.one_hot(labels, self.num_classes)
        current = [t for x in inputs for t in batch_statistics(x, onehot)]
        mixed = self.emu.mix(current)
        beta = self.beta_of(batch)
        f = self.filter.with_beta(beta)
        l_filter = logits.new_zeros((), dtype=torch.float64)
        l_signal = logits.new_zeros((), dtype=torch.float64)
        for layer, (real_f, real_s) in enumerate(self.real_filtered(beta)):
            psi_s, phi_s = mixed[2 * layer], mixed[2 * layer + 1]
            if self.options.use_filter and not f.is_constant("filter"):
                l_filter = l_filter + torch.linalg.matrix_norm(real_f - f.apply(psi_s))
            if self.options.use_signal:
                l_signal = l_signal + torch.linalg.matrix_norm(real_s - f.apply(psi_s, phi_s, "signal"))
        ce = self.ce_term(logits, labels)
        self.last_terms = {
            "ce": float(ce.detach()),
            "filter": float(l_filter.detach()),
            "signal": float(l_signal.detach()),
            "beta": beta,
        }
        return ce.double() + self.options.eta * (l_filter + l_signal)

    def end_phase(self, phase: Phase, param: Parameterization, ctx: DistillContext) -> None:
        """Fold the round's final batch statistics into the moving statistics (Eq. 19)."""
        owned = phase.owned(ctx)
        units = self.owned_units(phase, ctx)
        sums = [torch.zeros_like(t) for pair in self.real for t in pair]
        with torch.no_grad():
            for b in torch.unique(units).tolist():
                rows = owned[units == b].to(param.labels.device)
                _, inputs = self.forward_taps(param.decode(index=rows))
                onehot = F.one_hot(param.labels[rows], self.num_classes)
                stats = [t for x in inputs for t in batch_statistics(x, onehot)]
                sums = [s + t for s, t in zip(sums, stats, strict=True)]
        if ctx.distributed:
            flat = ctx.all_reduce(torch.cat([s.reshape(-1) for s in sums]))
            sums = [part.view_as(s) for part, s in zip(flat.split([s.numel() for s in sums]), sums, strict=True)]
        self.emu.update(sums, int(torch.unique(phase.units).numel()))

    def state_dict(self) -> dict[str, Tensor]:
        return self.emu.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.emu.load_state_dict(state, self.device)

    def row_fields(self) -> dict[str, object]:
        out: dict[str, object] = {"eta": self.options.eta, "filter": self.filter.kind}
        if self.filter.kind == "high_pass":
            out["beta"] = self.filter.beta
            out["beta_schedule"] = self.schedule
        return out


class CFM(FilterMatching):
    """Curriculum Frequency Matching: high-pass (λ + β_t)⁻¹ with the cosine curriculum (Eq. 16–21)."""

    @staticmethod
    def build_filter(options: SpectralMatchingOptions) -> SpectralFilter:
        return SpectralFilter("high_pass", beta=getattr(options, "beta", 0.1))


class LFM(FilterMatching):
    """Low-frequency matching: the low-pass filter f(λ) = λ (the Fig. 3 ablation's low-pass arm)."""

    @staticmethod
    def build_filter(options: SpectralMatchingOptions) -> SpectralFilter:
        return SpectralFilter("low_pass")


__all__ = ["CFM", "LFM", "CFMOptions", "FilterMatching", "FilterMatchingOptions", "SpectralMatchingOptions"]
