"""Expert trajectories: the ``experts`` prerequisite of trajectory matching (MTT's ``buffer.py``).

An expert is a network trained on the real training split from a fresh initialisation with
plain SGD (:class:`~methods.tm.options.ExpertOptions`; MTT's defaults), its flat parameter
vector snapshotted at epoch 0 and after every epoch up to the last kept one. Each expert is
one piece of the prerequisite (``units() = num_experts``), produced by its own task into
**one file**:

``torch.save`` of a dict (load with ``weights_only=True``; ``mmap=True`` reads lazily)

* ``format``: ``"ddx-expert-v1"``
* ``snapshots``: ``float32`` tensor ``(K, P)`` — row k is θ after epoch ``epochs[k]``
  (row 0 = the initialisation), P = the network's parameter count, in
  ``named_parameters()`` order (:class:`~methods.functional.FunctionalNet`)
* ``epochs``: ``int64`` tensor ``(K,)`` = ``0 … K−1``
* ``meta``: arch (concrete, e.g. ``convnet_d3``), channels, num_classes, resolution,
  num_params, param_names, param_shapes, options, unit, seed, val_acc, train_images, seconds

Size: K · P · 4 bytes per expert (docs/tm.md lists it per dataset). :class:`ExpertBuffer`
(what :meth:`Experts.load` returns) streams: it holds at most one expert file open
(memory-mapped) and reads only the snapshots a trajectory asks for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.augment.ops import DSA
from methods.context import seed_from
from methods.datasets import RealData
from methods.datasets.options import DatasetOptions
from methods.evaluation.student import accuracy
from methods.functional import FunctionalNet
from methods.networks import build_network, resolve_arch
from methods.prerequisites import Prerequisite, dataset_identity
from methods.records import Description, Meta, RowFields
from methods.seeding import seeded
from methods.tm.options import ExpertOptions

EXPERT_FORMAT = "ddx-expert-v1"


def expert_seed(options: ExpertOptions, unit: int) -> int:
    """The seed of expert ``unit`` (initialisation, batch order, augmentation)."""
    return seed_from(options.seed, 0xE4, unit)


def train_expert(
    data: RealData, options: ExpertOptions, unit: int, device: torch.device | None = None
) -> tuple[Tensor, Meta]:
    """Train expert ``unit`` on ``data.train_x``; return its snapshots ``(K, P)`` (CPU, float32) and metadata.

    SGD(lr, momentum, weight_decay) on shuffled minibatches of ``batch_size`` with DSA
    (one op per batch, parameters per image: MTT's ``DiffAugment``), for
    ``options.epochs_trained`` epochs; the snapshot after each epoch is kept.
    """
    device = device or torch.device("cpu")
    start = time.perf_counter()
    arch = resolve_arch(options.arch, data.resolution)
    seed = expert_seed(options, unit)
    with seeded(seed, device):
        net = build_network(arch, data.channels, data.num_classes, data.resolution).to(device)
        fnet = FunctionalNet(net)
        aug = DSA(options.augment, same_on_batch=False)
        opt = torch.optim.SGD(
            net.parameters(), lr=options.lr, momentum=options.momentum, weight_decay=options.weight_decay
        )
        order = torch.Generator().manual_seed(seed)
        snapshots = [fnet.flatten().float().cpu()]
        x_all, y_all = data.train_x, data.train_y
        n = len(y_all)
        net.train()
        for _ in range(options.epochs_trained):
            perm = torch.randperm(n, generator=order)
            for i in range(0, n, options.batch_size):
                idx = perm[i : i + options.batch_size]
                x = aug(x_all[idx].to(device, non_blocking=True))
                loss = F.cross_entropy(net(x), y_all[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            snapshots.append(fnet.flatten().float().cpu())
        val_acc = accuracy(net, data.val_x, data.val_y, device) if len(data.val_y) else float("nan")
    meta = {
        "format": EXPERT_FORMAT,
        "arch": arch,
        "channels": data.channels,
        "num_classes": data.num_classes,
        "resolution": data.resolution,
        "num_params": fnet.num_params,
        "param_names": list(fnet.names),
        "param_shapes": [list(s) for s in fnet.shapes],
        "options": asdict(options),
        "unit": int(unit),
        "seed": int(seed),
        "val_acc": float(val_acc),
        "train_images": int(n),
        "seconds": time.perf_counter() - start,
    }
    return torch.stack(snapshots), meta


def save_expert(path: str | Path, snapshots: Tensor, meta: Mapping[str, Any]) -> None:
    """Write one expert file (the format in the module docstring)."""
    payload = {
        "format": EXPERT_FORMAT,
        "snapshots": snapshots.detach().to("cpu", torch.float32).contiguous(),
        "epochs": torch.arange(snapshots.shape[0], dtype=torch.int64),
        "meta": dict(meta),
    }
    torch.save(payload, Path(path))


def load_expert(path: str | Path, mmap: bool = True) -> Meta:
    """Open an expert file (``weights_only=True``; memory-mapped: snapshots are read when indexed)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=mmap)
    if payload.get("format") != EXPERT_FORMAT:
        raise ValueError(f"{path} is not a ddx expert file (format {payload.get('format')!r}, want {EXPERT_FORMAT!r})")
    return payload


class ExpertBuffer:
    """The experts of one sweep, streamed: at most one expert file is open at a time.

    ``pair(e, a, b)`` returns expert ``e``'s snapshots at epochs ``a`` and ``b`` on ``device``;
    asking for another expert closes the current one first. ``loads`` counts file opens and
    ``held`` names the expert currently open (what tests check).
    """

    def __init__(self, paths: list[Path], device: torch.device | None = None, mmap: bool = True) -> None:
        if not paths:
            raise ValueError("an expert buffer needs at least one expert file")
        self.paths = [Path(p) for p in paths]
        self.device = device or torch.device("cpu")
        self.mmap = mmap
        self.loads = 0
        self.max_held = 0
        self._held: tuple[int, Meta] | None = None
        first = self._open(0)
        self.meta: Meta = dict(first["meta"])
        self.last_epoch = int(first["snapshots"].shape[0]) - 1

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_experts(self) -> int:
        return len(self.paths)

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])

    @property
    def num_params(self) -> int:
        return int(self.meta["num_params"])

    @property
    def held(self) -> list[int]:
        return [] if self._held is None else [self._held[0]]

    def _open(self, expert: int) -> Meta:
        if self._held is not None and self._held[0] == expert:
            return self._held[1]
        self._held = None  # drop the current expert before opening the next: never two at once
        payload = load_expert(self.paths[expert], mmap=self.mmap)
        self.loads += 1
        self._held = (expert, payload)
        self.max_held = max(self.max_held, len(self.held))
        return payload

    def pair(self, expert: int, first: int, second: int) -> tuple[Tensor, Tensor]:
        """Expert ``expert``'s flat parameters after epochs ``first`` and ``second`` (copies on the device)."""
        if not 0 <= expert < len(self.paths):
            raise IndexError(f"expert {expert} out of range (buffer holds {len(self.paths)})")
        snaps = self._open(expert)["snapshots"]
        last = int(snaps.shape[0]) - 1
        if not (0 <= first <= last and 0 <= second <= last):
            raise IndexError(f"expert {expert} keeps epochs 0…{last}; asked for {first} and {second}")
        return (snaps[first].to(self.device, copy=True), snaps[second].to(self.device, copy=True))


class Experts(Prerequisite):
    """Expert trajectories as a prerequisite: ``num_experts`` independent pieces, one file each."""

    def units(self) -> int:
        return int(self.options.num_experts)

    def describe(self, dataset: DatasetOptions, unit: int) -> Description:
        """Content identity of expert ``unit``. ``num_experts`` is not part of it (a sweep asking
        for more experts reuses the ones already made); ``train_epochs``/``keep_epochs`` enter as
        the epochs actually trained."""
        o = self.options
        return {
            "format": EXPERT_FORMAT,
            "dataset": dataset_identity(dataset),
            "arch": o.arch,
            "epochs": o.epochs_trained,
            "lr": float(o.lr),
            "momentum": float(o.momentum),
            "weight_decay": float(o.weight_decay),
            "batch_size": int(o.batch_size),
            "augment": o.augment,
            "seed": int(o.seed),
            "unit": int(unit),
        }

    def produce(self, data: RealData, unit: int, out: Path, device: torch.device) -> None:
        snapshots, meta = train_expert(data, self.options, unit, device)
        save_expert(out, snapshots, meta)

    def load(self, paths: list[Path], device: torch.device) -> ExpertBuffer:
        return ExpertBuffer(list(paths), device)

    def row_fields(self, paths: list[Path]) -> RowFields:
        accs = [float(load_expert(p)["meta"].get("val_acc", float("nan"))) for p in paths]
        return {
            "expert_arch": self.options.arch,
            "num_experts": len(paths),
            "expert_epochs_kept": self.options.epochs_trained,
            "expert_val_acc": sum(accs) / max(1, len(accs)),
        }


__all__ = ["EXPERT_FORMAT", "ExpertBuffer", "Experts", "expert_seed", "load_expert", "save_expert", "train_expert"]
