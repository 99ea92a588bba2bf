"""Layer statistics for CFM (UniDD Eq. 17–19): hooks, streaming real moments, EMU.

For a feature map X of shape n×d×h×w at the input of a teacher layer (Eq. 17):

    X̂ = reshape(X) ∈ R^{nhw×d},   X′ = spatial mean of X ∈ R^{n×d},
    Ψ = (1/nhw) (X̂ − X̄)ᵀ(X̂ − X̄)   (normalised FFC, d×d),
    Φ = (1/n) X′ᵀY                  (normalised FLC, d×c; Y one-hot)          (Eq. 18)

Real statistics are never formed from all features at once: :class:`LayerMoments` keeps
sums and counts (Σx̂, Σx̂x̂ᵀ, nhw, Σx′yᵀ, n) in float64, which add across batches and across
workers (one packed ``all_reduce``), and Ψ = Σx̂x̂ᵀ/nhw − x̄x̄ᵀ, Φ = Σx′yᵀ/n at the end.

Synthetic statistics use exponential moving updating (Eq. 19): after the b-th synthetic batch,
Ψ_s = (1/b)Ψ_s^b + (1 − 1/b)Ψ_s^{b−1}, i.e. the running mean of the per-batch statistics, where
earlier batches enter as detached constants (:class:`MovingStatistics`).

Statistics are taken at the input of every ``Conv2d`` of the teacher whose input no earlier
conv already receives (the reference code hooks ResNet's ``conv1``/``layerX.Y.conv1/2`` but not
the ``downsample`` convs, which read the same tensor as ``layerX.0.conv1``), or of a
configurable subset (:func:`select_convs`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.context import DistillContext

#: bump when the cached statistics' format or definition changes
STATS_VERSION = 1


#: probe resolution when :func:`select_convs` is not told the input resolution
PROBE_RESOLUTION = 64


class _ProbeDone(Exception):
    """Raised from a hook once every conv has been reached (the rest of the forward is not needed)."""


@torch.no_grad()
def distinct_input_convs(
    net: nn.Module, convs: list[tuple[str, nn.Conv2d]], resolution: int | None = None
) -> list[tuple[str, nn.Conv2d]]:
    """``convs`` without those whose input is the very tensor an earlier-run conv already receives.

    One probe forward pass (eval mode, zeros of ``resolution`` px; :data:`PROBE_RESOLUTION`
    when not given) records the tensor each conv is called with. A conv called with a tensor
    object another conv received before it — a ResNet's ``downsample`` conv reads the block's
    input, as ``layerX.0.conv1`` does — would add the same statistics twice and is dropped.
    Deduplicating by input identity, rather than by excluding modules named ``downsample``,
    covers any architecture that feeds one tensor to several convolutions (Inception-style
    branches, other libraries' names). Convs the probe never reaches are kept.
    """
    if len(convs) < 2:
        return convs
    index = {id(m): i for i, (_, m) in enumerate(convs)}
    inputs: list[Tensor] = []  # held so tensor ids are not reused during the probe
    duplicate: set[int] = set()
    reached: set[int] = set()

    def hook(m: nn.Module, args: tuple[Tensor, ...]) -> None:
        i = index[id(m)]
        if any(args[0] is t for t in inputs):
            duplicate.add(i)
        inputs.append(args[0])
        reached.add(i)
        if len(reached) == len(convs):
            raise _ProbeDone

    first = convs[0][1]
    param = next(net.parameters())
    r = resolution or PROBE_RESOLUTION
    probe = torch.zeros(1, int(first.in_channels), r, r, device=param.device, dtype=param.dtype)
    handles = [m.register_forward_pre_hook(hook) for _, m in convs]
    was = net.training
    net.eval()
    try:
        net(probe)
    except _ProbeDone:
        pass
    except Exception as err:
        raise ValueError(
            f"could not probe {type(net).__name__} at {r}px to find convolutions sharing an input "
            f"(pass the input resolution to select_convs): {err}"
        ) from err
    finally:
        for h in handles:
            h.remove()
        net.train(was)
    return [c for i, c in enumerate(convs) if i not in duplicate]


def select_convs(net: nn.Module, layers: str = "all", resolution: int | None = None) -> list[tuple[str, nn.Conv2d]]:
    """The ``Conv2d`` modules whose inputs are matched, in definition order.

    Convolutions that receive the same input tensor as one run before them (ResNet
    ``downsample`` convs) are left out: see :func:`distinct_input_convs`, which probes the
    network once at ``resolution`` px. ``layers`` is ``"all"``, or a comma-separated list of
    0-based indices into that list (negative ones count from the end) and/or module names,
    e.g. ``"0,1"``, ``"-1"``, ``"features.4"``.
    """
    convs = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(net).__name__} has no Conv2d layers to take statistics from")
    convs = distinct_input_convs(net, convs, resolution)
    if layers.strip().lower() == "all":
        return convs
    by_name = dict(convs)
    picked: list[tuple[str, nn.Conv2d]] = []
    for token in (t.strip() for t in layers.split(",") if t.strip()):
        if token in by_name:
            picked.append((token, by_name[token]))
            continue
        try:
            picked.append(convs[int(token)])
        except (ValueError, IndexError):
            raise ValueError(
                f"stat_layers entry {token!r} is neither a conv index in [-{len(convs)}, {len(convs) - 1}] "
                f"nor a conv name ({', '.join(by_name)})"
            ) from None
    names = [n for n, _ in picked]
    if len(set(names)) != len(names):
        raise ValueError(f"stat_layers names a layer twice: {layers!r}")
    return picked


@contextmanager
def conv_inputs(modules: list[nn.Module]) -> Iterator[list[Tensor | None]]:
    """Record the input of each module on every forward (differentiable; one slot per module)."""
    slots: list[Tensor | None] = [None] * len(modules)
    handles = []
    for i, m in enumerate(modules):

        def hook(_: nn.Module, args: tuple[Tensor, ...], i: int = i) -> None:
            slots[i] = args[0]

        handles.append(m.register_forward_pre_hook(hook))
    try:
        yield slots
    finally:
        for h in handles:
            h.remove()


def batch_statistics(x: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """Ψ and Φ of one batch (Eq. 17–18), float64 and differentiable in ``x``.

    ``x`` is ``(n, d, h, w)``, ``onehot`` is ``(n, c)``.
    """
    n, d = x.shape[0], x.shape[1]
    flat = x.double().permute(0, 2, 3, 1).reshape(-1, d)
    centred = flat - flat.mean(dim=0, keepdim=True)
    psi = centred.T @ centred / flat.shape[0]
    pooled = x.double().mean(dim=(2, 3))
    phi = pooled.T @ onehot.double() / n
    return psi, phi


def channel_mean_var(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (biased) variance over n·h·w — the diagonal statistics of Eq. 4."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    return flat.mean(dim=1), flat.var(dim=1, unbiased=False)


@dataclass
class LayerMoments:
    """Additive sums of one layer's features (float64): the streaming form of Eq. 18."""

    sum_x: Tensor  # (d,)   Σ over pixels of x̂
    sum_xx: Tensor  # (d, d) Σ over pixels of x̂ x̂ᵀ
    pixels: Tensor  # ()     n·h·w
    sum_xy: Tensor  # (d, c) Σ over images of x′ yᵀ
    images: Tensor  # ()     n

    @classmethod
    def zeros(cls, d: int, c: int, device: torch.device | None = None) -> LayerMoments:
        def z(*shape: int) -> Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        return cls(z(d), z(d, d), z(), z(d, c), z())

    @torch.no_grad()
    def add(self, x: Tensor, onehot: Tensor) -> None:
        """Accumulate a batch ``x`` ``(n, d, h, w)`` with labels ``onehot`` ``(n, c)``."""
        d = x.shape[1]
        flat = x.double().permute(0, 2, 3, 1).reshape(-1, d)
        self.sum_x += flat.sum(dim=0)
        self.sum_xx += flat.T @ flat
        self.pixels += flat.shape[0]
        self.sum_xy += x.double().mean(dim=(2, 3)).T @ onehot.double()
        self.images += x.shape[0]

    def parts(self) -> list[Tensor]:
        return [self.sum_x, self.sum_xx, self.pixels, self.sum_xy, self.images]

    def psi(self) -> Tensor:
        mean = self.sum_x / self.pixels
        return self.sum_xx / self.pixels - torch.outer(mean, mean)

    def phi(self) -> Tensor:
        return self.sum_xy / self.images

    def mean(self) -> Tensor:
        return self.sum_x / self.pixels


def pack(moments: list[LayerMoments]) -> Tensor:
    """All layers' sums as one flat float64 vector (one collective for the lot)."""
    return torch.cat([p.reshape(-1) for m in moments for p in m.parts()])


def unpack_into(flat: Tensor, moments: list[LayerMoments]) -> None:
    offset = 0
    for m in moments:
        for p in m.parts():
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n
    if offset != flat.numel():
        raise ValueError(f"packed statistics have {flat.numel()} values, expected {offset}")


@torch.no_grad()
def accumulate_moments(
    net: nn.Module,
    convs: list[nn.Module],
    batches: Iterable[tuple[Tensor, Tensor]],
    num_classes: int,
    device: torch.device,
    moments: list[LayerMoments] | None = None,
) -> list[LayerMoments]:
    """Stream ``batches`` of (images, labels) through ``net`` adding every conv input to sums.

    Each batch's features are folded into the sums inside the forward hook and dropped, so
    memory holds one batch's activations and the d×d sums, whatever the number of images.
    """
    if moments is None:
        moments = [LayerMoments.zeros(int(m.in_channels), num_classes, device) for m in convs]  # type: ignore[arg-type]
    onehot: list[Tensor] = []
    handles = []
    for m, acc in zip(convs, moments, strict=True):

        def hook(_: nn.Module, args: tuple[Tensor, ...], acc: LayerMoments = acc) -> None:
            acc.add(args[0], onehot[0])

        handles.append(m.register_forward_pre_hook(hook))
    try:
        for x, y in batches:
            onehot[:] = [F.one_hot(y.to(device), num_classes)]
            net(x.to(device, non_blocking=True))
    finally:
        for h in handles:
            h.remove()
    return moments


def real_statistics(
    net: nn.Module,
    convs: list[nn.Module],
    x: Tensor,
    y: Tensor,
    num_classes: int,
    ctx: DistillContext,
    batch_size: int = 256,
) -> list[LayerMoments]:
    """Moments of the whole real set, sharded over workers and summed with one ``all_reduce``.

    Chunk ``i`` of ``batch_size`` images is streamed by the rank that owns unit ``i``; the sums
    are all-reduced, so every rank ends with the statistics of every image.
    """
    chunks = range(0, len(y), batch_size)
    mine = ((x[s : s + batch_size], y[s : s + batch_size]) for i, s in enumerate(chunks) if ctx.owns(i))
    moments = accumulate_moments(net, convs, mine, num_classes, ctx.device)
    if ctx.distributed:
        unpack_into(ctx.all_reduce(pack(moments)), moments)
    return moments


def _hash_tensor(h: Any, t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)


def statistics_key(x: Tensor, y: Tensor, teacher: nn.Module, layer_names: list[str], extra: str = "") -> str:
    """Content hash of (real training set, teacher weights, layer set): the statistics' cache key."""
    h = hashlib.sha256(f"ddx-stats-v{STATS_VERSION}|{','.join(layer_names)}|{extra}".encode())
    _hash_tensor(h, x)
    _hash_tensor(h, y)
    for name, t in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        _hash_tensor(h, t)
    return h.hexdigest()[:24]


def cached_real_statistics(
    net: nn.Module,
    convs: list[tuple[str, nn.Conv2d]],
    x: Tensor,
    y: Tensor,
    num_classes: int,
    ctx: DistillContext,
    batch_size: int = 256,
) -> tuple[list[LayerMoments], bool]:
    """:func:`real_statistics` through the artifact cache ``ctx.cache`` (kind ``statistics``); (moments, hit).

    Rank 0 looks the artifact up and broadcasts the answer, so every rank takes the same path
    through the collectives; on a hit rank 0 reads the file and broadcasts it (the other ranks
    need not see the same filesystem). On a miss every rank computes its shard and rank 0
    stores the all-reduced result.
    """
    names = [n for n, _ in convs]
    modules = [m for _, m in convs]
    if ctx.cache is None:
        return real_statistics(net, modules, x, y, num_classes, ctx, batch_size), False
    # only rank 0 touches the cache (and pays for hashing the training set)
    description = {"kind": "real_statistics", "key": statistics_key(x, y, net, names)} if ctx.is_main else None
    path = ctx.cache.find("statistics", description) if description is not None else None
    hit = torch.tensor([1.0 if path is not None else 0.0], device=ctx.device)
    ctx.broadcast(hit)
    if bool(hit.item() > 0):
        moments = [LayerMoments.zeros(int(m.in_channels), num_classes, ctx.device) for m in modules]
        flat = pack(moments)
        if path is not None:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload["layers"] != names:
                raise ValueError(f"cached statistics {path} are for layers {payload['layers']}, not {names}")
            flat = payload["packed"].to(ctx.device)
        unpack_into(ctx.broadcast(flat), moments)
        return moments, True
    moments = real_statistics(net, modules, x, y, num_classes, ctx, batch_size)
    if description is not None:
        packed = {"layers": names, "packed": pack(moments).cpu(), "version": STATS_VERSION}
        ctx.cache.get_or_create("statistics", description, lambda tmp: torch.save(packed, tmp))
    return moments, False


class MovingStatistics:
    """Exponential moving updating of synthetic statistics (Eq. 19) as a running mean.

    Holds the sums of the (detached) per-batch statistics of the batches finished so far and
    their count k. :meth:`mix` returns Ψ_s = (1/b)Ψ_s^b + (1 − 1/b)Ψ_s^{b−1} with b = k + 1 for
    the batch being optimised (its own Ψ_s^b keeps its gradient); :meth:`update` folds
    finished batches in. The state is plain tensors, identical on every rank.
    """

    def __init__(self) -> None:
        self.sums: list[Tensor] = []
        self.count = 0

    def mix(self, current: list[Tensor]) -> list[Tensor]:
        if self.count == 0:
            return list(current)
        b = self.count + 1
        return [cur / b + (1.0 - 1.0 / b) * (s / self.count) for cur, s in zip(current, self.sums, strict=True)]

    def update(self, batch_sums: list[Tensor], batches: int) -> None:
        """Add the summed statistics of ``batches`` finished batches."""
        if batches <= 0:
            return
        batch_sums = [t.detach() for t in batch_sums]
        self.sums = batch_sums if not self.sums else [s + t for s, t in zip(self.sums, batch_sums, strict=True)]
        self.count += batches

    def means(self) -> list[Tensor]:
        return [s / self.count for s in self.sums]

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"emu.{i}": s.detach().cpu() for i, s in enumerate(self.sums)}
        out["emu.count"] = torch.tensor(self.count)
        return out

    def load_state_dict(self, state: dict[str, Tensor], device: torch.device | None = None) -> None:
        self.count = int(state.get("emu.count", torch.tensor(0)))
        n = sum(1 for k in state if k.startswith("emu.") and k != "emu.count")
        self.sums = [state[f"emu.{i}"].to(device or "cpu") for i in range(n)]


__all__ = [
    "LayerMoments",
    "MovingStatistics",
    "accumulate_moments",
    "batch_statistics",
    "cached_real_statistics",
    "channel_mean_var",
    "conv_inputs",
    "distinct_input_convs",
    "real_statistics",
    "select_convs",
    "statistics_key",
]
