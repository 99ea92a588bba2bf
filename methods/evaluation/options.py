"""Student-training settings (the keys of a sweep's ``evaluation`` block), without torch.

:class:`EvalSettings` is the one description of how a student is trained on a distilled set;
:mod:`methods.evaluation.student` runs it and :mod:`methods.evaluation.presets` names bundles of it (presets).
Vocabularies are ``Literal`` types and bounds are :mod:`annotated_types` constraints, so a
validator can read them from the type hints; :meth:`EvalSettings.__post_init__` checks them
at construction too (:func:`check_fields`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from annotated_types import Ge, Gt, Le, Lt

from methods.augment.options import DSA_DEFAULT, AugmentMode, AugmentStrategy, parse_groups
from methods.options import named
from methods.records import OptionValues

#: ``hard``: cross-entropy on the synthetic labels; ``soft``: KL to a teacher's predictions
LabelMode = Literal["hard", "soft"]
LABEL_MODES: tuple[str, ...] = get_args(LabelMode)
#: the prerequisites (:mod:`methods.prerequisites`) each label mode needs
LABEL_MODE_REQUIRES: dict[str, tuple[str, ...]] = {"hard": (), "soft": ("teacher",)}

#: the key under which a synthetic set carries a learned student learning rate (TM's step size α),
#: in the set's ``extra`` metadata (written from :meth:`methods.distill.objective.Objective.row_fields`)
LEARNED_LR_KEY = "syn_lr"
#: the key under which a synthetic set carries **learned soft labels** (DATM: an ``(N, C)`` matrix of
#: logits, one row per instance in the set's order) in its ``extra`` metadata; a hard-label student
#: trains on ``softmax`` of them (:func:`methods.evaluation.student.soft_target_loss`)
LEARNED_LABELS_KEY = "soft_labels"

#: where a student's training targets come from (a row's ``label_source``): the set's class labels
#: (``hard``), the set's learned soft labels (``learned_soft``), or a teacher relabelling every view
#: (``teacher``: ``label_mode: soft``). Rows of different sources are never ranked together.
LabelSource = Literal["hard", "learned_soft", "teacher"]
LABEL_SOURCES: tuple[str, ...] = get_args(LabelSource)
#: what a set's own labels are (``LoadedSet.labels``): class labels, or learned soft labels
SetLabels = Literal["hard", "learned_soft"]
LEARNED_SOFT = "learned_soft"

#: how many seeds of one network train together by default, per device type: on CPU a step is
#: already bound by its arithmetic and vmapped (grouped) convolutions are slower than K separate
#: ones (benchmarks/results/student_batching.json), so CPU students train one by one — one Ray task
#: each, so that a lost node re-runs only its own student; on CUDA up to 16 (then capped by memory)
SEEDS_PER_BATCH: dict[str, int] = {"cpu": 1, "cuda": 16}


def relabelled(label_mode: str) -> bool:
    """Whether students of ``label_mode`` train on a teacher's labels of every view (``soft``) rather
    than on the set's own labels."""
    return "teacher" in LABEL_MODE_REQUIRES.get(label_mode, ())


def label_source(label_mode: str, set_labels: str = "hard") -> str:
    """The row's ``label_source``: ``teacher`` for a label mode that relabels with a teacher (``soft``),
    otherwise what the set's own labels are (``hard`` or ``learned_soft``)."""
    if relabelled(label_mode):
        return "teacher"
    if set_labels not in ("hard", "learned_soft"):
        raise ValueError(f"a set's labels are hard or learned_soft, got {set_labels!r}")
    return set_labels


Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["step", "cosine", "cosine_half", "constant"]
Mix = Literal["none", "cutmix", "mixup"]
Precision = Literal["fp32", "bf16", "auto"]
#: BatchNorm of the teacher while it relabels: ``eval`` (running statistics) or ``train`` (each batch's own)
TeacherMode = Literal["eval", "train"]
#: what the soft-label ``crop`` moves in from outside: ``zero`` (zeros of the normalised images,
#: i.e. the dataset mean: DSA's) or ``black`` (black pixels, (0 − mean)/std per channel)
CropFill = Literal["zero", "black"]

PositiveInt = Annotated[int, Ge(1)]
PositiveFloat = Annotated[float, Gt(0)]
Fraction = Annotated[float, Ge(0), Le(1)]


#: the name of a registered evaluation preset (:data:`methods.evaluation.presets.BUILTIN` or a plugin's)
PresetName = Annotated[str, named("preset")]


@dataclass
class EvalSettings:
    """How a student is trained on a synthetic set and evaluated.

    The defaults are the ``dd_standard`` preset (DC/DSA/DM/MTT evaluation: SGD 0.01, momentum
    0.9, weight decay 5e-4, batch 256, 1000 epochs, lr ×0.1 at half-way, DSA with one op per
    batch); ``preset`` names the bundle the values were built from (:mod:`methods.evaluation.presets`,
    :func:`methods.evaluation.presets.build_eval_settings`), ``None`` when built from raw values.

    * ``schedule``: ``step`` (×0.1 at half-way), ``cosine`` (to 0), ``cosine_half``
      (lr·½(1 + cos(π·e / 2E)), ending at lr/2: the CFM reference code's schedule), ``constant``.
    * Hard labels: cross-entropy under the DSA strategy ``augment`` applied in ``augment_mode``
      (``single``: one group per batch, DSA's rule; ``all``: every group).
    * Soft labels (``label_mode: soft``): the student matches the teacher's temperature-scaled
      predictions (KL × T²) on **the view the student sees**: ``soft_augment`` applied with
      every group (``crop_flip`` = random crop and flip, ``rrc_flip`` = RandomResizedCrop with
      area scale in [``rrc_min_scale``, 1] and flip), then, with probability ``mix_prob`` per
      batch, ``mix`` (CutMix or Mixup with Beta(``mix_alpha``, ``mix_alpha``), partners drawn
      by a random permutation); the teacher relabels that mixed view. ``mix`` needs soft labels.
      ``soft_crop_fill``: what the ``crop`` of ``soft_augment`` shifts in — ``zero`` (zeros of
      the normalised images, the dataset mean: DSA's fill) or ``black`` (black pixels: padding
      [0, 1] images before normalising, as torchvision's ``RandomCrop(32, padding=4)`` then
      ``Normalize`` in SRe²L's ``relabel_cifar.py``; not defined on ZCA-whitened data).
      ``teacher_mode``: the teacher's BatchNorm while it relabels — ``eval`` (running
      statistics) or ``train`` (the statistics of each relabelled batch, as SRe²L's
      ``relabel_cifar.py``, which never calls ``model_teacher.eval()``); either way the
      teacher's stored statistics are left unchanged.
    * ``precision``: ``bf16`` runs the student's (and teacher's) forward passes under bf16
      autocast; ``auto`` = bf16 on CUDA, fp32 elsewhere. ``channels_last``: the student's
      memory format; ``auto`` = on for CUDA only. Both default to off until a GPU run shows
      accuracy parity and a speed-up (not measured yet).
    """

    preset: PresetName | None = None
    epochs: PositiveInt = 1000
    batch_size: PositiveInt = 256
    optimizer: Optimizer = "sgd"
    lr: PositiveFloat = 0.01
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.9
    weight_decay: Annotated[float, Ge(0)] = 5e-4
    schedule: Schedule = "step"
    augment: AugmentStrategy = DSA_DEFAULT
    augment_mode: AugmentMode = "single"
    soft_augment: AugmentStrategy = "crop_flip"
    rrc_min_scale: Annotated[float, Gt(0), Le(1)] = 0.08
    mix: Mix = "none"
    mix_prob: Fraction = 1.0
    mix_alpha: PositiveFloat = 1.0
    soft_crop_fill: CropFill = "zero"
    teacher_mode: TeacherMode = "eval"
    label_mode: LabelMode = "hard"
    temperature: PositiveFloat = 4.0
    track_test: bool = False  # also report max_over_test (labelled; not the default metric)
    check_every: Annotated[int, Ge(0)] = 0  # epochs between curve points; 0 → about 10 points
    precision: Precision = "fp32"
    channels_last: bool | Literal["auto"] = False
    lr_from_set: bool = False  # train with the learning rate the set learned (TM's α) instead of ``lr``

    def __post_init__(self) -> None:
        problems = []
        for key in ("augment", "soft_augment"):
            try:
                parse_groups(getattr(self, key))
            except ValueError as err:
                problems.append(f"{key}: {err}")
        if self.mix != "none" and self.label_mode != "soft":
            problems.append(f"mix: {self.mix!r} needs label_mode 'soft' (hard-label students train under DSA)")
        if problems:
            raise ValueError("invalid evaluation settings: " + "; ".join(problems))

    def to_dict(self) -> OptionValues:
        return dataclasses.asdict(self)


__all__ = [
    "LABEL_MODES",
    "LABEL_MODE_REQUIRES",
    "LABEL_SOURCES",
    "LEARNED_LABELS_KEY",
    "LEARNED_LR_KEY",
    "LEARNED_SOFT",
    "CropFill",
    "EvalSettings",
    "LabelMode",
    "LabelSource",
    "Optimizer",
    "PresetName",
    "Schedule",
    "SetLabels",
    "TeacherMode",
    "label_source",
    "relabelled",
]
