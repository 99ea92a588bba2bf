"""DD-Ranking's scores: hard-label recovery, improvement over random, LRS and ARS.

Li et al. 2025, *DD-Ranking: Rethinking the Evaluation of Dataset Distillation* (arXiv
2505.13300; the definitions below follow the paper's benchmark description and the
``LabelRobustScore*`` / ``AugmentationRobustScore`` classes of NUS-HPC-AI-Lab/DD-Ranking).
Accuracies are fractions in [0, 1]; so are HLR and IOR (differences of accuracies, in
[−1, 1]), which keeps α and β in [−1, 1] and the scores in [0, 1].

* **HLR** (hard-label recovery, lower is better):
  ``HLR = Acc(real, hard) − Acc(syn, hard)``.
* **IOR** (improvement over random, higher is better):
  ``IOR = Acc(syn, any) − Acc(rdm, any)`` — the synthetic set and a random real subset of the
  same size, both under the method's own evaluation (labels and augmentation).
* **LRS** (label-robust score): ``α = w·IOR − (1 − w)·HLR``,
  ``LRS = (e^α − e^{−1}) / (e − e^{−1})`` (w = 0.5 by default).
* **ARS** (augmentation-robust score):
  ``β = γ·(Acc(syn, aug) − Acc(rdm, aug)) + (1 − γ)·(Acc(syn, no aug) − Acc(rdm, no aug))``,
  normalised the same way: ``ARS = (e^β − e^{−1}) / (e − e^{−1})`` (γ = 0.5 by default).

No torch here: plain floats in, floats out.
"""

from __future__ import annotations

import math

#: the objective whose sets are DD-Ranking's baseline: real images chosen at random, same IPC
RANDOM_OBJECTIVE = "random"

#: DD-Ranking's default weights (the leaderboard's w = 0.5; the ARS code's ars_lambda = 0.5)
DEFAULT_W = 0.5
DEFAULT_GAMMA = 0.5


def _finite(*values: float) -> bool:
    return all(v is not None and not math.isnan(float(v)) for v in values)


def hard_label_recovery(acc_real_hard: float, acc_syn_hard: float) -> float:
    """HLR = Acc(real, hard) − Acc(syn, hard): how far hard-label training on the set is from full data."""
    if not _finite(acc_real_hard, acc_syn_hard):
        return math.nan
    return float(acc_real_hard) - float(acc_syn_hard)


def improvement_over_random(acc_syn: float, acc_random: float) -> float:
    """IOR = Acc(syn, any) − Acc(rdm, any), both under the same evaluation protocol."""
    if not _finite(acc_syn, acc_random):
        return math.nan
    return float(acc_syn) - float(acc_random)


def normalised_score(x: float) -> float:
    """(e^x − e^{−1}) / (e − e^{−1}): maps x ∈ [−1, 1] onto [0, 1] (DD-Ranking's normalisation)."""
    if not _finite(x):
        return math.nan
    return (math.exp(x) - math.exp(-1.0)) / (math.e - math.exp(-1.0))


def label_robust_score(hlr: float, ior: float, w: float = DEFAULT_W) -> float:
    """LRS from HLR and IOR: α = w·IOR − (1 − w)·HLR, then :func:`normalised_score`."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w must be in [0, 1], got {w}")
    if not _finite(hlr, ior):
        return math.nan
    return normalised_score(w * float(ior) - (1.0 - w) * float(hlr))


def augmentation_robust_score(gap_with_aug: float, gap_without_aug: float, gamma: float = DEFAULT_GAMMA) -> float:
    """ARS from the two improvements over random (with and without augmentation):
    β = γ·gap_aug + (1 − γ)·gap_no_aug, then :func:`normalised_score`."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not _finite(gap_with_aug, gap_without_aug):
        return math.nan
    return normalised_score(gamma * float(gap_with_aug) + (1.0 - gamma) * float(gap_without_aug))


__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_W",
    "RANDOM_OBJECTIVE",
    "augmentation_robust_score",
    "hard_label_recovery",
    "improvement_over_random",
    "label_robust_score",
    "normalised_score",
]
