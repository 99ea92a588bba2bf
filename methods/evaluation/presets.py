"""Evaluation protocol presets: named, documented bundles of student-training settings.

A preset is data (:class:`ProtocolPreset`): a full set of :class:`~methods.evaluation.options.EvalSettings`
values (the label mode included), the student networks and number of evaluation networks where
the source fixes them, per-dataset and per-IPC variations where the source has them, and the
citation of the table or file each value comes from. Settings are built as *preset + overrides*
by :func:`build_eval_settings` (explicit keys win; unset keys — ``epochs`` among them — follow
the preset). Nothing here imports torch.

Sources read for these presets (the values below were taken from these texts only):

* DC/DSA/DM evaluation — VICO-UoE/DatasetCondensation ``main_DM.py`` (``epoch_eval_train``
  1000, ``lr_net`` 0.01, ``batch_train`` 256, DSA strategy ``color_crop_cutout_flip_scale_rotate``,
  ``num_eval`` 20) and ``utils.py`` (``ParamDiffAug``: one DSA op per batch, ``aug_mode='S'``;
  ``evaluate_synset``: SGD momentum 0.9, weight decay 5e-4, lr ×0.1 at half of the epochs).
* CFM paper — Bo, Liu & Wang, *Understanding Dataset Distillation via Spectral Filtering*,
  §4.1 and supplement Tables 2 and 4 ("Recover & Validation Configurations").
* CFM reference code — bdy9527/UniDD ``generate_soft_label_online.py`` (commit fd8f5a6).
* SRe²L code — VILA-Lab/SRe2L ``SRe2L/*small_dataset/relabel_cifar.py`` / ``relabel_cifar.sh``
  (CIFAR-100) and ``SRe2L/validate/train_FKD.py`` / ``train_FKD.sh`` (ImageNet-1K).
* DDiF — Shin et al., *Distilling Dataset into Neural Field* (ICLR 2025), Appendix B.2/B.4.
* MTT evaluation — GeorgeCazenavette/mtt-distillation ``distill.py`` (``args.lr_net = syn_lr.item()``
  before ``evaluate_synset``; ``num_eval`` 5, ``batch_train`` 256, ``epoch_eval_train`` 1000) and
  ``utils.py`` (``evaluate_synset``: SGD momentum 0.9, weight decay 5e-4, lr ×0.1 at E/2 + 1, DSA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from methods.augment.options import DSA_DEFAULT
from methods.registry import PRESETS


@dataclass(frozen=True)
class ProtocolPreset:
    """One named evaluation protocol.

    ``settings``: :class:`EvalSettings` values (every key the source fixes; the rest are the
    ddx defaults, listed in the docs table). ``archs``: the student networks the source
    evaluates (ddx registry names; ``None`` when it does not fix them). ``seeds``: evaluation
    networks per set the source trains (``None`` when not fixed). ``by_dataset``: values that
    replace ``settings`` for a dataset (ddx dataset names). ``batch_size_by_ipc``: per dataset,
    IPC → batch size where the source ties the batch to the IPC. ``source``: where the values
    are written; ``notes``: departures and choices ddx makes, with reasons.
    """

    name: str
    summary: str
    source: str
    settings: Mapping[str, Any]
    archs: tuple[str, ...] | None = None
    seeds: int | None = None
    by_dataset: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    batch_size_by_ipc: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    notes: str = ""


_DD_STANDARD = {
    "epochs": 1000,
    "batch_size": 256,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "step",
    "augment": DSA_DEFAULT,
    "augment_mode": "single",
    "label_mode": "hard",
    "mix": "none",
}

#: ddx's presets, declared for the plugin registry (entry-point group ``ddx.presets``)
BUILTIN: tuple[ProtocolPreset, ...] = (
    ProtocolPreset(
        name="dd_standard",
        summary="DC/DSA/DM/MTT student evaluation: ConvNet, DSA (one op per batch), SGD 0.01, 1000 epochs",
        source=(
            "VICO-UoE/DatasetCondensation main_DM.py (epoch_eval_train=1000, lr_net=0.01, batch_train=256, "
            "dsa_strategy=color_crop_cutout_flip_scale_rotate) and utils.py (ParamDiffAug aug_mode='S'; "
            "evaluate_synset: SGD momentum 0.9, weight decay 5e-4, lr x0.1 at epoch E/2)"
        ),
        settings=dict(_DD_STANDARD),
        archs=("convnet",),
        notes=(
            "ConvNet-D3 at 32 px (width 128, instance norm, average pooling); 'convnet' takes the depth of "
            "the resolution (D4 at 64 px, as DM's Tiny-ImageNet runs). The reference code trains 20 random "
            "networks per set (num_eval=20); choose evaluation.seeds for the budget at hand."
        ),
    ),
    ProtocolPreset(
        name="ddif_paper",
        summary="DDiF (ICLR 2025) evaluation: ConvNet-Dn by resolution, DSA, one-hot labels, 5 networks",
        source=(
            "Shin et al. 2025, Appendix B.2 (ConvNetD3 for 32 px, D5 128, D6 256, D7 512), B.4 ('we use DSA'; "
            "'train 5 randomly initialized networks'), §3 and C.3 (fixed one-hot labels)"
        ),
        settings=dict(_DD_STANDARD),
        archs=("convnet",),
        seeds=5,
        notes=(
            "The text fixes DSA, the ConvNet depth per resolution, one-hot labels and 5 evaluation networks; "
            "it refers to 'the conventional evaluation procedure of the previous studies' for the rest, so "
            "optimiser, epochs and schedule are dd_standard's (the TM lineage trains the student with the "
            "learned step size: a set distilled with tm carries it, evaluation.lr_from_set uses it). "
            "Cross-architecture (Table 3): AlexNet, "
            "VGG11, ResNet18 and ViT students (ViT size not stated)."
        ),
    ),
    ProtocolPreset(
        name="mtt_paper",
        summary="MTT/DATM student evaluation: dd_standard with the learned step size as the student's lr",
        source=(
            "GeorgeCazenavette/mtt-distillation distill.py (args.lr_net = syn_lr.item() before evaluate_synset; "
            "num_eval=5, batch_train=256, epoch_eval_train=1000) and utils.py (evaluate_synset: SGD momentum 0.9, "
            "weight decay 5e-4, lr x0.1 at epoch E/2+1, DSA)"
        ),
        settings={**_DD_STANDARD, "lr_from_set": True},
        archs=("convnet",),
        seeds=5,
        notes=(
            "The learned lr is part of the protocol: every set must carry one (MTT/DATM's syn_lr_best.pt, a set "
            "distilled with tm), and ddx evaluate trains the random baseline with the rate of the sets it is "
            "compared with. DATM's evaluation (distill/evaluation.py) trains on its learned soft labels with "
            "batch_train 128 (--set evaluation.batch_size=128). The reference decays the lr at E/2+1; ddx at E/2."
        ),
    ),
    ProtocolPreset(
        name="cfm_paper",
        summary="CFM paper, supplement Table 4: soft labels, 1000 epochs, Adam 1e-3, T=30, crop+flip (CIFAR-10)",
        source=(
            "Bo, Liu & Wang, 'Understanding Dataset Distillation via Spectral Filtering', supplement Table 4 "
            "(Recover & Validation Configurations), §4.1 (FKD relabelling as in SRe2L; ConvNet-128 and ResNet-18 "
            "students, Table 2)"
        ),
        settings={
            "epochs": 1000,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 1e-3,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "schedule": "cosine",
            "label_mode": "soft",
            "temperature": 30.0,
            "soft_augment": "crop_flip",
            "mix": "none",
        },
        archs=("convnet_d3", "resnet18"),
        by_dataset={
            "cifar100": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
            "tiny_imagenet": {
                "epochs": 100,
                "optimizer": "sgd",
                "lr": 0.2,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "temperature": 20.0,
                "soft_augment": "rrc_flip",
            },
        },
        notes=(
            "Table 4's CIFAR column reads 'Adam / SGD' and '1e-3 / 1e-1'; ddx reads it as CIFAR-10 / CIFAR-100, "
            "the convention of Table 2's '200 / 100' epochs. 'RandomCrop' is ddx's DSA crop (integer shift up "
            "to 4 px at 32 px, zero fill) applied jointly with the flip. The paper's ConvNet-128 cites DC's "
            "instance-norm ConvNet (convnet_d3)."
        ),
    ),
    ProtocolPreset(
        name="cfm_code",
        summary="What the CFM reference code runs: AdamW 1e-3, RRC+flip+CutMix relabelled by the teacher, T=20",
        source=(
            "bdy9527/UniDD generate_soft_label_online.py (commit fd8f5a6): CIFAR branches (epochs 1000, batch by "
            "IPC, RandomResizedCrop(32)+RandomHorizontalFlip), mix_type 'cutmix' with alpha 1.0 on every batch, "
            "AdamW(lr 1e-3, weight_decay 1e-2), LambdaLR 0.5(1+cos(pi e/E/2)), temperature 20, teacher(inputs) "
            "on the mixed batch; CIFAR students ConvNet(width 128, depth 3, net_norm='batch') or ResNet-18"
        ),
        settings={
            "epochs": 1000,
            "batch_size": 100,
            "optimizer": "adamw",
            "lr": 1e-3,
            "momentum": 0.9,
            "weight_decay": 1e-2,
            "schedule": "cosine_half",
            "label_mode": "soft",
            "temperature": 20.0,
            "soft_augment": "rrc_flip",
            "rrc_min_scale": 0.08,
            "mix": "cutmix",
            "mix_prob": 1.0,
            "mix_alpha": 1.0,
            "track_test": True,
            "check_every": 10,
        },
        archs=("convnet_bn_d3", "resnet18"),
        by_dataset={"tiny_imagenet": {"epochs": 300, "batch_size": 100, "rrc_min_scale": 0.5}},
        batch_size_by_ipc={"cifar10": {1: 10, 10: 50, 50: 100}, "cifar100": {1: 20, 10: 100, 50: 200}},
        notes=(
            "Differs from cfm_paper in: optimiser (AdamW 1e-3, wd 1e-2 vs Adam 1e-3, wd 5e-4 / SGD 0.1), "
            "temperature (20 vs 30 on CIFAR), batch size (10/50/100 by IPC on CIFAR-10 vs 64), schedule "
            "(half cosine ending at lr/2 vs cosine), augmentation (RandomResizedCrop + flip + CutMix vs "
            "RandomCrop + flip), Tiny-ImageNet epochs (300 vs 100) and the CIFAR ConvNet (BatchNorm vs the "
            "instance-norm ConvNet-128 the paper cites). The code's KL omits the T^2 factor ddx applies; "
            "under AdamW a constant loss scale leaves the update unchanged (up to epsilon). The code reports "
            "the best test accuracy over its checks in the last 20% of epochs: ddx keeps the final model's "
            "test_acc and records that kind of number only as max_over_test (track_test, every 10 epochs)."
        ),
    ),
    ProtocolPreset(
        name="sre2l_soft",
        summary="SRe2L relabel on CIFAR: AdamW 1e-3, cosine, T=30, random crop+flip, Mixup(0.8), 400 epochs",
        source=(
            "VILA-Lab/SRe2L SRe2L/*small_dataset/relabel_cifar.py (RandomCrop(32, padding=4)+RandomHorizontalFlip "
            "on [0, 1] images, then Normalize; mixup alpha 0.8 with torch.randperm partners on every batch, "
            "teacher(inputs) on the mixed batch with the teacher never put in eval mode; AdamW(lr 1e-3, "
            "weight_decay 0.01), CosineAnnealingLR(T_max=epochs), temperature 30, ResNet-18 student) and "
            "relabel_cifar.sh (epochs 400, batch 128)"
        ),
        settings={
            "epochs": 400,
            "batch_size": 128,
            "optimizer": "adamw",
            "lr": 1e-3,
            "momentum": 0.9,
            "weight_decay": 0.01,
            "schedule": "cosine",
            "label_mode": "soft",
            "temperature": 30.0,
            "soft_augment": "crop_flip",
            "mix": "mixup",
            "mix_prob": 1.0,
            "mix_alpha": 0.8,
            "soft_crop_fill": "black",
            "teacher_mode": "train",
        },
        archs=("resnet18",),
        notes=(
            "The code is written for CIFAR-100. Its padding fills black pixels before normalisation: "
            "soft_crop_fill 'black' shifts in (0 - mean)/std per channel (the other presets fill zeros in "
            "normalised space, the dataset mean, as DSA does). Its teacher relabels in train mode, so "
            "BatchNorm normalises each mixed batch with its own statistics: teacher_mode 'train'; the running "
            "statistics that the reference's passes also update are never read in that mode, and ddx leaves "
            "the teacher's unchanged."
        ),
    ),
    ProtocolPreset(
        name="sre2l_imagenet",
        summary="SRe2L FKD validation on ImageNet-1K: RRC+flip+CutMix, AdamW 1e-3, cosine, T=20, 300 epochs",
        source=(
            "VILA-Lab/SRe2L SRe2L/validate/train_FKD.py (RandomResizedCrop(224, scale=(0.08, 1))+flip, AdamW "
            "lr 1e-3 wd 0.01, cosine, 300 epochs) and train_FKD.sh (batch 1024, -T 20, --mix-type cutmix)"
        ),
        settings={
            "epochs": 300,
            "batch_size": 1024,
            "optimizer": "adamw",
            "lr": 1e-3,
            "momentum": 0.9,
            "weight_decay": 0.01,
            "schedule": "cosine",
            "label_mode": "soft",
            "temperature": 20.0,
            "soft_augment": "rrc_flip",
            "rrc_min_scale": 0.08,
            "mix": "cutmix",
            "mix_prob": 1.0,
            "mix_alpha": 1.0,
        },
        archs=("resnet18",),
        notes=(
            "FKD in the reference precomputes the teacher's labels of each crop; ddx relabels the same view "
            "online, which is what precomputation reproduces."
        ),
    ),
)

#: the preset whose values are :class:`EvalSettings`'s defaults
DEFAULT_PRESET = "dd_standard"


def get_preset(name: str) -> ProtocolPreset:
    """The preset registered as ``name`` (ddx's or a plugin's); :class:`~methods.registry.UnknownNameError`
    (a ``ValueError``) naming the known ones otherwise."""
    return PRESETS.get(name)


def preset_values(name: str, dataset: str | None = None, ipc: int | None = None) -> dict[str, Any]:
    """The settings values of preset ``name`` for ``dataset`` and ``ipc`` (with ``preset`` set)."""
    p = get_preset(name)
    values = {**p.settings}
    if dataset is not None:
        values.update(p.by_dataset.get(dataset, {}))
        by_ipc = p.batch_size_by_ipc.get(dataset, {})
        if ipc is not None and ipc in by_ipc:
            values["batch_size"] = by_ipc[ipc]
    values["preset"] = name
    return values


__all__ = ["BUILTIN", "DEFAULT_PRESET", "ProtocolPreset", "get_preset", "preset_values"]
