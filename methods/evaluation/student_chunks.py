"""Which networks train as a vmapped batch of seeds, and how many seeds one batch holds.

:func:`batchable` says whether a network's forward pass is safe under :func:`torch.vmap` (built
only from :data:`BATCHABLE_MODULES`); :func:`chunk_size` caps the seeds of one batch by
``max_batch`` (default :data:`DEFAULT_MAX_BATCH` of the device type) and by
:func:`student_memory_bytes` against :data:`MEMORY_SHARE` of the free memory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from methods.evaluation.options import SEEDS_PER_BATCH, EvalSettings
from methods.networks import build_network

#: module classes (``module.qualname``) whose forward is batch-safe under :func:`torch.vmap`: no
#: randomness, no data-dependent Python control flow, in-place updates only of stacked state
BATCHABLE_MODULES = frozenset(
    {
        "methods.networks.base.Classifier",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.conv.Conv2d",
        "torch.nn.modules.linear.Linear",
        "torch.nn.modules.linear.Identity",
        "torch.nn.modules.normalization.GroupNorm",
        "torch.nn.modules.batchnorm.BatchNorm2d",
        "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.pooling.AvgPool2d",
        "torch.nn.modules.pooling.MaxPool2d",
        "torch.nn.modules.pooling.AdaptiveAvgPool2d",
        "torch.nn.modules.flatten.Flatten",
        "torchvision.models.resnet.ResNet",
        "torchvision.models.resnet.BasicBlock",
        "torchvision.models.resnet.Bottleneck",
    }
)
#: the largest K tried by default on each device type (:data:`~methods.evaluation.options.SEEDS_PER_BATCH`)
DEFAULT_MAX_BATCH = SEEDS_PER_BATCH
#: the share of the free memory (CUDA: free device memory; CPU: MemAvailable) one batch may plan to use
MEMORY_SHARE = 0.5


def _qualname(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


@lru_cache(maxsize=64)
def batchable(arch: str, channels: int = 3, resolution: int = 32, num_classes: int = 10) -> bool:
    """Whether ``arch`` at this input shape trains as a vmapped batch (else one student at a time).

    True when every module of the network is in :data:`BATCHABLE_MODULES` (no dropout, attention,
    stochastic depth or squeeze-excitation); the network is built on the meta device (no memory,
    no random draws).
    """
    try:
        with torch.device("meta"):
            net = build_network(arch, channels, num_classes, resolution)
    except Exception:  # a network that cannot be built here fails later in train_student, with its own message
        return False
    return all(_qualname(m) in BATCHABLE_MODULES for m in net.modules())


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    meminfo = Path("/proc/meminfo")
    if device.type == "cpu" and meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


@lru_cache(maxsize=64)
def student_memory_bytes(
    arch: str, channels: int, num_classes: int, resolution: int, batch_size: int, optimizer: str = "sgd"
) -> int:
    """An upper estimate of the memory one student's training step holds, in bytes (fp32).

    Weights, their gradient and the optimiser's state (1 tensor for SGD's momentum, 2 for
    Adam's moments), plus 1.5 × the bytes of every module output for a batch of ``batch_size``
    (counted by one forward pass on the meta device: what the backward pass keeps, and the
    gradients in flight) and the batch itself. Measured on CPU for ConvNet-D3 at IPC 50 (batch
    256): 730 MiB of peak memory per student in a vmapped batch of 4, 808 MiB one by one
    (evaluation included); this estimate: 830 MiB.
    """
    with torch.device("meta"):
        net = build_network(arch, channels, num_classes, resolution)
        outputs = 0

        def count(_m: nn.Module, _a: tuple[Tensor, ...], out: Tensor) -> None:
            nonlocal outputs
            if isinstance(out, Tensor):
                outputs += out.numel() * 4

        hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
        net(torch.empty(batch_size, channels, resolution, resolution))
        for h in hooks:
            h.remove()
    weights = sum(p.numel() for p in net.parameters()) * 4
    states = 2 if optimizer in ("adam", "adamw") else 1
    inputs = batch_size * channels * resolution * resolution * 4
    return weights * (2 + states) + (3 * outputs) // 2 + inputs


def chunk_size(
    arch: str,
    seeds: int,
    channels: int,
    num_classes: int,
    resolution: int,
    batch: int,
    settings: EvalSettings,
    device: torch.device,
    max_batch: int | None = None,
) -> int:
    """How many seeds train together: 1 for a network that does not batch or a device other than
    CPU/CUDA, else the smallest of ``seeds``, ``max_batch`` (default :data:`DEFAULT_MAX_BATCH` of
    the device type) and what :data:`MEMORY_SHARE` of the free memory holds by
    :func:`student_memory_bytes` for steps of ``batch`` images."""
    if seeds <= 1 or device.type not in ("cpu", "cuda") or not batchable(arch, channels, resolution, num_classes):
        return 1
    cap = max_batch if max_batch is not None else DEFAULT_MAX_BATCH.get(device.type, 1)
    k = max(1, min(seeds, cap))
    free = _available_bytes(device)
    if free is not None and k > 1:
        per_student = student_memory_bytes(arch, channels, num_classes, resolution, batch, settings.optimizer)
        k = max(1, min(k, int(free * MEMORY_SHARE) // max(1, per_student)))
    return k


__all__ = ["BATCHABLE_MODULES", "DEFAULT_MAX_BATCH", "MEMORY_SHARE", "batchable", "chunk_size", "student_memory_bytes"]
