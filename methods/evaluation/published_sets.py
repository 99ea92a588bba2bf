"""Distilled sets as the field publishes them, read onto ddx's form (:class:`~.external_sets.LoadedSet`).

Each reader follows its reference's own save code (the facts below were read there):

* ``dc`` — VICO-UoE/DatasetCondensation ``main.py``/``main_DM.py`` (DC, DSA, DM): ``res_*.pt`` =
  ``{"data": [[image_syn, label_syn], …], "accs_all_exps": {…}}``, one ``[images, labels]`` pair per
  experiment (``--num_exp``), images ``(N, C, H, W)`` normalised with the constants of its
  ``utils.get_dataset`` (:data:`REFERENCE_STATS`), labels ``(N,)`` class indices. Every experiment
  is a separate set (``<file>#<n>``), or one with ``experiment``. ``accs_all_exps`` holds numpy
  scalars: the file is read with ``weights_only=True`` and numpy's scalar types allowed, nothing else.
* ``mtt`` — GeorgeCazenavette/mtt-distillation ``distill.py`` and NUS-HPC-AI-Lab/DATM ``distill/DATM.py``:
  ``images_best.pt`` (``image_syn``: ``(N, C, H, W)``, class-major), ``labels_best.pt`` (MTT:
  ``(N,)`` class indices; DATM: the **learned soft labels**, ``(N, C)`` logits its evaluation trains on
  with ``SoftCrossEntropy``), and the learned step size (``syn_lr_best.pt``, DATM: ``lr_best.pt``; the
  ``lr_net`` their evaluation uses), in a folder (DATM: ``…/Normal/``). The images are **ZCA-whitened**
  when distilled with ``--zca`` — MTT's and DATM's CIFAR default, so the default space of CIFAR sets
  here — (kornia ``ZCAWhitening(eps=0.1)`` fitted on the raw [0, 1] training images), else normalised
  with their constants. DATM's class of instance i is i // IPC (its class-major initialisation).
* ``ddif`` — DDiF (Shin et al., ICLR 2025) ``SynSet/DDiF.py`` ``save``: ``{"nf": [state_dict, …],
  "label": (N,) long}`` (+ ``syn_lr`` under TM), one SIREN per instance with layers
  ``net.<k>.linear`` (sine, ω₀ = ``w0_initial`` for k = 0, else ``w0``) and ``last_layer.linear``
  (linear), evaluated on ``linspace(−1, 1, r)`` row-major coordinates: exactly ddx's
  ``neural_field`` (:mod:`methods.parameterizations.siren`), so the fields are copied into it and
  decode at any evaluation resolution. ω is not in the file: ``w0_initial``/``w0`` keys are read when
  present, else DDiF's ``hyper_params.py`` defaults (30; 10 at 32 px, 40 at 128 px and above). The IPC
  budget is the one whose ⌊IPC·C·r²/b⌋ is the file's fields per class. The output space is
  normalised with DDiF's constants (MTT's), or ZCA with ``--space zca``.

``pt``, ``imagefolder`` and ``ddx`` are :mod:`methods.evaluation.external_sets`'s. :func:`load_sets`
detects the format (``auto``) or reads the one named.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from methods.datasets import RealData
from methods.evaluation.ddif_fields import field_state, fold_output, ipc_of, siren_shape, source_values
from methods.evaluation.external_sets import LoadedSet, load_set, pixels_payload, set_from_object
from methods.evaluation.options import LEARNED_LR_KEY
from methods.evaluation.set_spaces import (
    SetError,
    Stats,
    check_soft_labels,
    check_space,
    require_data_space,
    to_data_space,
)
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, synthetic_payload
from methods.parameterizations.options import NeuralFieldOptions, field_scalars
from methods.torch_files import NotATorchFile, load_torch

#: ``--format`` values; ``auto`` detects the format from the folder or file
FORMATS = ("auto", "pt", "dc", "mtt", "imagefolder", "ddif", "ddx")
#: what each format is, for messages and docs
DESCRIPTIONS = {
    "pt": "a tensor file {'images', 'labels'}",
    "dc": "a DatasetCondensation res_*.pt {'data': [[images, labels], …]}",
    "mtt": "an mtt-distillation/DATM images_best.pt + labels_best.pt (+ syn_lr_best.pt)",
    "imagefolder": "an image folder <class>/<image>",
    "ddif": "a DDiF synset file {'nf': [state_dict, …], 'label'}",
    "ddx": "a ddx synthetic set {'config', 'state'}",
}

CIFAR10_STATS: Stats = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_STATS: Stats = ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: the normalisation constants each reference's ``get_dataset`` uses, by ddx dataset name
#: (DatasetCondensation ``utils.py``; mtt-distillation and DATM ``utils`` — CIFAR-100 with CIFAR-10's
#: constants —, which DDiF's ``utils.py`` follows). A dataset not listed: ddx's own mean/std.
REFERENCE_STATS: dict[str, dict[str, Stats]] = {
    "dc": {"cifar10": CIFAR10_STATS, "cifar100": CIFAR100_STATS, "tiny_imagenet": IMAGENET_STATS},
    "mtt": {"cifar10": CIFAR10_STATS, "cifar100": CIFAR10_STATS, "tiny_imagenet": IMAGENET_STATS},
    "ddif": {"cifar10": CIFAR10_STATS, "cifar100": CIFAR10_STATS, "tiny_imagenet": IMAGENET_STATS},
}
#: datasets whose sets a reference whitens with ZCA by default (MTT's README commands and DATM's
#: CIFAR configs pass ``--zca``/``zca: True``)
ZCA_BY_DEFAULT: dict[str, tuple[str, ...]] = {"mtt": ("cifar10", "cifar100")}
#: DDiF ``hyper_params.py``: ω of the first sine layer, and of the others by resolution (≥ 128 px: 40)
DDIF_W0_FIRST = 30.0
DDIF_W0 = 10.0
DDIF_W0_LARGE = 40.0

#: the formats that hold several experiments (``--experiment`` picks one)
EXPERIMENT_FORMATS = ("dc",)
MTT_FILE = re.compile(r"images_(best|\d+)\.pt")
LR_FILES = ("syn_lr_{}.pt", "lr_{}.pt")  # MTT-lineage code, DATM


def _numpy_scalars() -> list[Any]:
    """numpy's scalar reconstruction and dtypes (what ``accs_all_exps`` pickles), as names old and new numpy write."""
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")] if hasattr(np, "dtypes") else []
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]


def read_torch(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with numpy scalars allowed (no code runs); a :class:`SetError` otherwise."""
    try:
        with torch.serialization.safe_globals(_numpy_scalars()):
            return load_torch(path)
    except NotATorchFile as err:  # what the file is instead (text, cut short, another format)
        raise SetError(f"{err}; give a .pt of images and labels, an image folder or a ddx set") from None
    except OSError as err:
        raise SetError(f"cannot read it ({err.strerror or type(err).__name__})") from None


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))[:8]}"
    if isinstance(obj, Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    return f"a {type(obj).__name__}"


def _images(x: Any, what: str) -> Tensor:
    """``x`` as ``(N, C, H, W)`` float images, or a :class:`SetError` naming ``what``."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise SetError(f"{what} must be (N, C, H, W) images, got {_describe(x)}")
    if not x.dtype.is_floating_point:
        raise SetError(f"{what} must be a float tensor, got {x.dtype}")
    if x.numel() == 0:
        raise SetError(f"{what} holds no images (shape {tuple(x.shape)})")
    return x.detach()


def _stats(fmt: str, data: RealData) -> tuple[Stats | None, tuple[str, ...]]:
    """The reference's normalisation for ``data`` and a note when ddx's own is assumed instead."""
    stats = REFERENCE_STATS.get(fmt, {}).get(data.name)
    if stats is None:
        return None, (f"normalised values read with ddx's own mean/std of {data.name!r} (the reference has none)",)
    return stats, ()


# --- DatasetCondensation ---------------------------------------------------------------------------
def read_dc(
    path: Path, data: RealData, space: str | None = None, experiment: int | None = None, name: str | None = None
) -> list[LoadedSet]:
    """A DatasetCondensation ``res_*.pt``: one set per experiment (``<name>#<n>``), or experiment ``experiment``."""
    obj = read_torch(path)
    if not isinstance(obj, dict) or "data" not in obj:
        raise SetError(f"not {DESCRIPTIONS['dc']}: {_describe(obj)}")
    entries = obj["data"]
    if not isinstance(entries, (list, tuple)) or not entries:
        raise SetError("'data' must be a non-empty list of [images, labels] pairs, one per experiment")
    if experiment is not None and not 0 <= experiment < len(entries):
        raise SetError(f"--experiment {experiment}: the file holds experiments 0…{len(entries) - 1}")
    used = space or "normalized"
    stats, notes = _stats("dc", data) if used == "normalized" else (None, ())
    out = []
    for i in range(len(entries)) if experiment is None else [experiment]:
        pair = entries[i]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise SetError(f"experiment {i}: expected [images, labels], got {_describe(pair)}")
        try:
            images = _images(pair[0], "images")
            normed = to_data_space(images, used, data, stats, f"experiment {i}")
            payload = pixels_payload(normed, _class_labels(pair[1]), data, {"source_space": used}, zca=used == "zca")
        except SetError as err:
            raise SetError(f"experiment {i}: {err}") from None
        label = name if name and experiment is not None else f"{name or path.stem}#{i}"
        out.append(LoadedSet(label, f"{path}#{i}", "dc", used, payload, notes=notes))
    return out


def _class_labels(y: Any) -> Tensor:
    if not isinstance(y, Tensor) or y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise SetError(f"labels must be (N,) class indices, got {_describe(y)}")
    return y.long()


# --- mtt-distillation / DATM -----------------------------------------------------------------------
def mtt_files(path: Path) -> tuple[Path, Path, Path | None] | None:
    """(images, labels, learned lr or None) of an mtt-distillation/DATM save, or None when ``path`` is not one.

    A folder holds ``images_best.pt`` (or DATM's ``Normal/images_best.pt``); a file is ``images_<it>.pt``
    whose ``labels_<it>.pt`` (and ``syn_lr_<it>.pt`` or ``lr_<it>.pt``) lie beside it.
    """
    if path.is_dir():
        base = next((d for d in (path, path / "Normal") if (d / "images_best.pt").is_file()), None)
        if base is None:
            return None
        images = base / "images_best.pt"
    elif MTT_FILE.fullmatch(path.name):
        images = path
    else:
        return None
    tag = MTT_FILE.fullmatch(images.name).group(1)  # type: ignore[union-attr]
    lr = next((images.parent / f.format(tag) for f in LR_FILES if (images.parent / f.format(tag)).is_file()), None)
    return images, images.parent / f"labels_{tag}.pt", lr


def read_mtt(path: Path, data: RealData, space: str | None = None, name: str | None = None) -> LoadedSet:
    """An mtt-distillation/DATM save (see the module docstring) as one set."""
    files = mtt_files(path)
    if files is None:
        raise SetError(f"not {DESCRIPTIONS['mtt']}: no images_best.pt (or Normal/images_best.pt) there")
    image_file, label_file, lr_file = files
    if not label_file.is_file():
        raise SetError(f"{image_file.name} without {label_file.name} beside it")
    images = _images(read_torch(image_file), image_file.name)
    labels = read_torch(label_file)
    n, k = images.shape[0], data.num_classes
    soft = None
    if isinstance(labels, Tensor) and labels.dim() == 2:
        soft = check_soft_labels(labels, n, k)
        if n % k:
            raise SetError(f"{n} images with learned soft labels are not class-major over {k} classes")
        hard = torch.arange(k).repeat_interleave(n // k)  # DATM initialises image_syn class by class
    else:
        hard = _class_labels(labels)
        if isinstance(labels, Tensor) and len(labels) != n:
            raise SetError(f"{n} images in {image_file.name} but {len(labels)} labels in {label_file.name}")
    extra: dict[str, Any] = {}
    notes: list[str] = []
    if lr_file is not None:
        extra[LEARNED_LR_KEY] = _learned_lr(read_torch(lr_file), lr_file.name)
    default = "zca" if data.name in ZCA_BY_DEFAULT["mtt"] else "normalized"
    used = space or default
    if space is None:
        notes.append(f"values read as {used} (the reference's default for {data.name!r}; --space to change it)")
    stats, more = _stats("mtt", data) if used == "normalized" else (None, ())
    normed = to_data_space(images, used, data, stats, image_file.name)
    payload = pixels_payload(normed, hard, data, {"source_space": used, **extra}, soft_labels=soft, zca=used == "zca")
    folder = image_file.parent.parent if image_file.parent.name == "Normal" else image_file.parent
    return LoadedSet(
        name or folder.name, str(path), "mtt", used, payload,
        labels="learned_soft" if soft is not None else "hard", notes=(*notes, *more),
    )  # fmt: skip


def _learned_lr(value: Any, what: str) -> float:
    lr = float(value) if isinstance(value, (int, float)) or (isinstance(value, Tensor) and value.numel() == 1) else None
    if lr is None or not math.isfinite(lr) or lr <= 0:
        raise SetError(f"{what} must hold one positive learning rate, got {_describe(value)}")
    return lr


# --- DDiF ------------------------------------------------------------------------------------------
def read_ddif(path: Path, data: RealData, space: str | None = None, name: str | None = None) -> LoadedSet:
    """A DDiF synset file (see the module docstring) as a ddx ``neural_field`` set."""
    obj = read_torch(path)
    if not isinstance(obj, dict) or "nf" not in obj or "label" not in obj:
        raise SetError(f"not {DESCRIPTIONS['ddif']}: {_describe(obj)}")
    fields, labels = obj["nf"], _class_labels(obj["label"])
    if not isinstance(fields, (list, tuple)) or not fields or not all(isinstance(f, dict) for f in fields):
        raise SetError("'nf' must be a non-empty list of state dicts, one per field")
    if len(fields) != len(labels):
        raise SetError(f"{len(fields)} fields but {len(labels)} labels")
    depth, width, dims = siren_shape(fields[0])
    if dims != 2:
        raise SetError(f"fields of {dims}-D coordinates; ddx evaluates image fields (2-D)")
    out_ch = int(fields[0]["last_layer.linear.weight"].shape[0])
    if out_ch != data.channels:
        raise SetError(f"fields output {out_ch} channels; dataset {data.name!r} has {data.channels}")
    k = data.num_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise SetError(f"labels must lie in 0…{k - 1}, got {int(labels.min())}…{int(labels.max())}")
    counts = torch.bincount(labels, minlength=k)
    if int(counts.min()) != int(counts.max()):
        raise SetError(f"fields per class differ ({int(counts.min())}…{int(counts.max())}); every class needs as many")
    per_class, res = int(counts[0]), data.resolution
    notes = []
    w0_first, w0 = obj.get("w0_initial"), obj.get("w0")
    if w0_first is None or w0 is None:
        w0_first = DDIF_W0_FIRST if w0_first is None else w0_first
        w0 = (DDIF_W0_LARGE if res >= 128 else DDIF_W0) if w0 is None else w0
        notes.append(f"ω not in the file: DDiF's defaults for {res} px (w0_initial {w0_first:g}, w0 {w0:g})")
    options = NeuralFieldOptions(nf_width=width, nf_depth=depth, nf_w0=float(w0), nf_w0_first=float(w0_first))
    ipc = ipc_of(per_class, field_scalars(SetShape(k, 1, out_ch, res), options), out_ch * res * res)
    shape = SetShape(k, ipc, out_ch, res, dims=2, dataset=data.name)
    param = build_parameterization(ParamConfig("neural_field", shape, options))
    order = torch.sort(labels, stable=True).indices
    state = field_state(fields, [int(i) for i in order], depth, width)
    used = space or "normalized"
    stats, more = _stats("ddif", data) if used == "normalized" else (None, ())
    fold_output(state, depth, used, data, stats)
    param.load_state_dict({**state, "labels": param.labels})
    with torch.no_grad():
        decoded = param.decode()
    if not torch.isfinite(decoded).all():
        raise SetError("the fields decode to NaN or infinite values")
    require_data_space(used, data)
    check_space(source_values(decoded, used, data, stats), used, path.name)
    extra: dict[str, Any] = {"source_space": used, "zca": True} if used == "zca" else {"source_space": used}
    if used != "zca":
        extra.update(mean=list(data.mean), std=list(data.std))
    if obj.get("syn_lr") is not None:
        extra[LEARNED_LR_KEY] = _learned_lr(obj["syn_lr"], "syn_lr")
    payload = synthetic_payload(param, {**extra, "class_names": list(data.class_names)})
    return LoadedSet(name or path.stem, str(path), "ddif", used, payload, notes=(*notes, *more))


# --- any format ------------------------------------------------------------------------------------
def detect(path: Path, obj: Any = None) -> str:
    """The format of ``path`` (a folder, or a file whose loaded contents are ``obj``)."""
    if path.is_dir():
        return "mtt" if mtt_files(path) is not None else "imagefolder"
    if MTT_FILE.fullmatch(path.name):
        return "mtt"
    if isinstance(obj, dict):
        if "config" in obj and "state" in obj:
            return "ddx"
        if "nf" in obj and "label" in obj:
            return "ddif"
        if "data" in obj:
            return "dc"
        if "images" in obj and "labels" in obj:
            return "pt"
    known = "; ".join(DESCRIPTIONS.values())
    raise SetError(f"unrecognised contents ({_describe(obj)}): give --format for one of: {known}")


def load_sets(
    path: str | Path,
    data: RealData,
    fmt: str = "auto",
    space: str | None = None,
    name: str | None = None,
    experiment: int | None = None,
) -> list[LoadedSet]:
    """Read ``path`` in format ``fmt`` (``auto``: detected) as one set, or one per experiment (``dc``;
    ``experiment`` picks one there and is ignored by the other formats, :data:`EXPERIMENT_FORMATS`)."""
    p = Path(path)
    if fmt not in FORMATS:
        raise SetError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if not p.exists():
        raise SetError("no such file or folder")
    named_mtt = fmt == "mtt" or (fmt == "auto" and MTT_FILE.fullmatch(p.name) is not None)
    obj = None if p.is_dir() or named_mtt else read_torch(p)
    kind = detect(p, obj) if fmt == "auto" else fmt
    if p.is_dir() and kind not in ("mtt", "imagefolder"):
        raise SetError(f"a folder is read as imagefolder or mtt, not as {DESCRIPTIONS[kind]}")
    if not p.is_dir() and kind == "imagefolder":
        raise SetError("an image folder is a folder of class sub-folders, not a file")
    if kind == "mtt":
        return [read_mtt(p, data, space, name)]
    if kind == "imagefolder":
        return [load_set(p, data, space, name)]
    if kind == "dc":
        return read_dc(p, data, space, experiment, name)
    if kind == "ddif":
        return [read_ddif(p, data, space, name)]
    expected = {"ddx": ("config", "state"), "pt": ("images", "labels")}[kind]
    if not isinstance(obj, dict) or not all(key in obj for key in expected):
        raise SetError(f"not {DESCRIPTIONS[kind]}: {_describe(obj)}")
    return [set_from_object(obj, p, data, space, name or p.stem)]


__all__ = [
    "DESCRIPTIONS",
    "EXPERIMENT_FORMATS",
    "FORMATS",
    "REFERENCE_STATS",
    "ZCA_BY_DEFAULT",
    "detect",
    "load_sets",
    "mtt_files",
    "read_dc",
    "read_ddif",
    "read_mtt",
    "read_torch",
]
