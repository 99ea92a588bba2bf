"""The execution context handed to every method: who am I, where, and how to talk to peers.

A :class:`DistillContext` hides whether a method runs in one process or in a
``torch.distributed`` group (gloo on CPU, nccl on GPU). Methods shard their work with
:meth:`DistillContext.owns` and combine results with :meth:`all_reduce`; with one worker every
collective is the identity, so the same code runs on a laptop and on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from methods.artifacts import ArtifactCache
from methods.records import Progress

ProgressFn = Callable[[Progress], None]


def _no_progress(_: Progress) -> None:
    return None


@dataclass
class DistillContext:
    """Rank, world size, device, seed and a progress callback for one worker."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: ProgressFn = _no_progress
    cache: ArtifactCache | None = None  # where reusable artifacts (statistics, warm-ups) live; None: no caching

    @classmethod
    def from_environment(
        cls, seed: int = 0, progress: ProgressFn | None = None, cache: ArtifactCache | None = None
    ) -> DistillContext:
        """Build a context from an initialised ``torch.distributed`` group, or a single process."""
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        else:
            rank, world = 0, 1
        if torch.cuda.is_available():
            local = torch.cuda.current_device()
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        return cls(rank, world, device, seed, progress or _no_progress, cache)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, unit: int) -> bool:
        """Round-robin ownership of work unit ``unit`` (a class, a batch, …) by this rank."""
        return unit % self.world_size == self.rank

    def owned(self, units: int) -> list[int]:
        """The units in ``range(units)`` this rank owns."""
        return [u for u in range(units) if self.owns(u)]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` over all workers in place (``op``: ``sum`` or ``max``) and return it
        (identity on one worker)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return tensor

    def same_keys(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``tensors`` with every key any worker has: a key this worker lacks (state it never
        created, e.g. the optimiser state of a rank that owns no row) is a zero tensor shaped like
        the others'. Every worker then makes the same collective calls over the same keys."""
        if not self.distributed:
            return tensors
        mine = {k: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in tensors.items()}
        everyone: list[dict[str, tuple[tuple[int, ...], str]]] = [{} for _ in range(self.world_size)]
        dist.all_gather_object(everyone, mine)
        out = dict(tensors)
        for seen in everyone:
            for k, (shape, dtype) in seen.items():
                if k not in out:
                    out[k] = torch.zeros(shape, dtype=getattr(torch, dtype), device=self.device)
        return dict(sorted(out.items()))

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        if self.distributed:
            dist.broadcast(tensor, src=src)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def generator(self, *keys: int) -> torch.Generator:
        """A CPU generator seeded by (context seed, *keys): identical on every worker.

        Seeding by the work unit (iteration, class, …) rather than by rank is what makes a
        method's result independent of how many workers share the work.
        """
        g = torch.Generator()
        g.manual_seed(seed_from(self.seed, *keys))
        return g


def seed_from(*keys: int) -> int:
    """Mix integers into one 63-bit seed with NumPy's ``SeedSequence`` (order-sensitive)."""
    words = [w for k in keys for w in (int(k) & 0xFFFFFFFF, (int(k) >> 32) & 0xFFFFFFFF)]
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))
