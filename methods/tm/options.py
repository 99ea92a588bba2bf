"""Options of trajectory matching and its expert trajectories (torch-free: the spec validator reads them).

* :class:`ExpertOptions` is the sweep's top-level ``experts:`` block (the ``experts``
  prerequisite, :mod:`methods.tm.experts`); its defaults are MTT's ``buffer.py`` (Cazenavette
  et al. 2022): ConvNet-D3 (instance norm), SGD lr 0.01 without momentum or weight decay,
  batch 256, DSA with DSA's default strategy, 50 epochs, 100 experts.
* :class:`TMOptions` are the ``tm`` objective's hyper-parameters (keys of the sweep's
  ``method`` block); its defaults are MTT's CIFAR-10 IPC 1 setting.
* :data:`DDIF_TM_SETTINGS` is DDiF's Table 9(c) (TM with neural fields), copied from the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Ge, Gt

from methods.augment.options import DSA_DEFAULT, AugmentStrategy
from methods.options import OptionError, named

if TYPE_CHECKING:
    from methods.distill.trial import TrialConfig

#: DSA's default strategy (:data:`methods.augment.options.DSA_DEFAULT`)
DSA_DEFAULT_STRATEGY = DSA_DEFAULT

TMGradient = Literal["unrolled", "constant_memory", "first_order"]


@dataclass
class ExpertOptions:
    """The ``experts:`` block: how each expert trajectory is trained and which snapshots are kept.

    Each expert is ``arch`` trained from a fresh initialisation on the real training split
    (seeded by ``(seed, expert index)``) with plain SGD for ``train_epochs`` epochs; the flat
    parameter vector is snapshotted at epoch 0 (the initialisation) and after every epoch.

    ``keep_epochs`` is the last snapshot kept (snapshots ``0 … keep_epochs``); ``None`` keeps
    all ``train_epochs + 1``. Trajectory matching reads epochs up to
    :meth:`TMOptions.last_epoch_needed` (``max_start_epoch − 1 + expert_epochs``), so a sweep
    that sets ``keep_epochs`` to that number stores only what it can read. Training stops at
    the last kept epoch: with a constant learning rate the epochs after it would change no
    kept snapshot.
    """

    arch: Annotated[str, named("network")] = "convnet_d3"
    num_experts: Annotated[int, Ge(1)] = 100
    train_epochs: Annotated[int, Ge(1)] = 50
    keep_epochs: Annotated[int, Ge(1)] | None = None
    lr: Annotated[float, Gt(0)] = 0.01
    momentum: Annotated[float, Ge(0)] = 0.0
    weight_decay: Annotated[float, Ge(0)] = 0.0
    batch_size: Annotated[int, Ge(1)] = 256
    augment: AugmentStrategy = DSA_DEFAULT_STRATEGY
    seed: int = 0

    @property
    def epochs_trained(self) -> int:
        """Epochs actually trained: ``train_epochs``, or fewer when ``keep_epochs`` ends earlier."""
        if self.keep_epochs is None:
            return self.train_epochs
        return min(self.train_epochs, self.keep_epochs)


@dataclass
class TMOptions:
    """Trajectory-matching hyper-parameters (MTT, Cazenavette et al. 2022; defaults: CIFAR-10 IPC 1).

    Per iteration, each of ``trajectories_per_step`` trajectories draws an expert and a start
    epoch ``s`` uniformly from ``{min_start_epoch, …, upper − 1}`` (MTT's
    ``np.random.randint(0, max_start_epoch)``; ``upper = max_start_epoch`` unless the DATM
    schedule below is on), takes ``syn_steps`` SGD steps of the student from the expert's
    epoch-``s`` weights on synthetic minibatches of ``batch_syn`` instances (``None``: all),
    with the learnable step size α (initial ``syn_lr_init`` = MTT's ``--lr_teacher``; its own
    SGD with ``syn_lr_lr`` = MTT's ``--lr_lr`` and momentum ``syn_lr_momentum``), and matches
    the expert's epoch ``s + expert_epochs``.

    DATM's difficulty schedule (Guo et al. 2024, "sequential generation"): with
    ``start_epoch_initial_max`` set, the upper bound grows linearly from it to
    ``max_start_epoch`` over the first ``start_epoch_expand_until`` iterations.

    ``tm_gradient`` picks how dL/d(images) and dL/dα are computed: ``unrolled`` (autograd
    through all steps, MTT), ``constant_memory`` (exact reverse pass recomputing one step's
    graph at a time; memory independent of ``syn_steps``) or ``first_order`` (TESLA's published
    formula as in DATM's ``DATM_tesla.py``: drops the dependence of later steps on earlier
    ones; **approximate**).
    """

    syn_steps: Annotated[int, Ge(1)] = 50
    expert_epochs: Annotated[int, Ge(1)] = 2
    max_start_epoch: Annotated[int, Ge(1)] = 2
    min_start_epoch: Annotated[int, Ge(0)] = 0
    start_epoch_initial_max: Annotated[int, Ge(1)] | None = None
    start_epoch_expand_until: Annotated[int, Ge(0)] = 0
    batch_syn: Annotated[int, Ge(1)] | None = None
    syn_lr_init: Annotated[float, Gt(0)] = 0.01
    syn_lr_lr: Annotated[float, Ge(0)] = 1e-7
    syn_lr_momentum: Annotated[float, Ge(0)] = 0.5
    tm_gradient: TMGradient = "unrolled"
    trajectories_per_step: Annotated[int, Ge(1)] = 1
    augment: AugmentStrategy = DSA_DEFAULT_STRATEGY

    def start_upper(self, step: int) -> int:
        """Exclusive upper bound of the start epoch at iteration ``step`` (DATM's schedule when set)."""
        if self.start_epoch_initial_max is None or self.start_epoch_expand_until <= 0:
            return self.max_start_epoch
        grown = self.start_epoch_initial_max + int(
            (self.max_start_epoch - self.start_epoch_initial_max) * step / self.start_epoch_expand_until
        )
        return min(grown, self.max_start_epoch)

    def last_epoch_needed(self) -> int:
        """The last expert epoch a run can read: ``max_start_epoch − 1 + expert_epochs``."""
        return self.max_start_epoch - 1 + self.expert_epochs

    def __post_init__(self) -> None:
        """No start epoch to draw is an error (``min_start_epoch`` at or above the first bound)."""
        lowest_upper = self.start_upper(0)
        if self.min_start_epoch >= lowest_upper:
            raise ValueError(
                f"tm: min_start_epoch ({self.min_start_epoch}) must be below the start-epoch bound "
                f"({lowest_upper} at the first iteration)"
            )

    def check_trial(self, trial: TrialConfig) -> None:
        """Every trajectory finds its epochs in the experts: ``max_start_epoch − 1 + expert_epochs``
        ≤ the last snapshot the ``experts`` block keeps (``keep_epochs`` / ``train_epochs``)."""
        experts: ExpertOptions = trial.prerequisite("experts")
        need, kept = self.last_epoch_needed(), experts.epochs_trained
        if need > kept:
            raise OptionError(
                f"tm with max_start_epoch={self.max_start_epoch}, expert_epochs={self.expert_epochs} reads expert "
                f"epochs up to {need}, but the experts keep epochs 0…{kept}; raise experts.train_epochs / keep_epochs "
                f"to ≥ {need}",
                key="experts.keep_epochs" if experts.keep_epochs is not None else "experts",
            )


#: MTT's CIFAR-10 pixel learning rate at IPC 1 (with ZCA): SGD, momentum 0.5 (distill.py's optimizer_img)
MTT_PIXEL_LR = 1000.0
MTT_PIXEL_MOMENTUM = 0.5

#: DDiF Table 9(c): TM with neural fields —
#: (dataset, IPC) → syn_steps, expert_epochs, max_start_epoch, batch_syn, field lr (Adam), lr of α, initial α
DDIF_TM_SETTINGS: dict[tuple[str, int], dict[str, float | int]] = {
    ("cifar10", 1): {"syn_steps": 60, "expert_epochs": 2, "max_start_epoch": 10, "batch_syn": 74,
                     "lr_images": 1e-3, "syn_lr_lr": 1e-5, "syn_lr_init": 1e-2},
    ("cifar10", 10): {"syn_steps": 60, "expert_epochs": 2, "max_start_epoch": 10, "batch_syn": 256,
                      "lr_images": 1e-3, "syn_lr_lr": 1e-5, "syn_lr_init": 1e-2},
    ("cifar10", 50): {"syn_steps": 60, "expert_epochs": 2, "max_start_epoch": 40, "batch_syn": 235,
                      "lr_images": 1e-4, "syn_lr_lr": 1e-5, "syn_lr_init": 1e-2},
    ("cifar100", 1): {"syn_steps": 60, "expert_epochs": 2, "max_start_epoch": 40, "batch_syn": 170,
                      "lr_images": 1e-3, "syn_lr_lr": 1e-5, "syn_lr_init": 1e-2},
    ("cifar100", 10): {"syn_steps": 60, "expert_epochs": 2, "max_start_epoch": 40, "batch_syn": 230,
                       "lr_images": 1e-3, "syn_lr_lr": 1e-5, "syn_lr_init": 1e-2},
    ("cifar100", 50): {"syn_steps": 60, "expert_epochs": 2, "max_start_epoch": 40, "batch_syn": 276,
                       "lr_images": 1e-3, "syn_lr_lr": 1e-5, "syn_lr_init": 1e-2},
}  # fmt: skip


__all__ = [
    "DDIF_TM_SETTINGS",
    "DSA_DEFAULT_STRATEGY",
    "MTT_PIXEL_LR",
    "MTT_PIXEL_MOMENTUM",
    "ExpertOptions",
    "TMGradient",
    "TMOptions",
]
