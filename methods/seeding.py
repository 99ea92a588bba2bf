"""Seeded, forked random state: the one way methods draw reproducible randomness.

Every seeded draw (a network's initialisation, a Siamese augmentation, a student's run) runs
under :func:`seeded`: the random state it touches is forked, seeded, and restored on exit, so
the draw depends only on its seed and leaves the caller's random stream as it was.

It seeds exactly the generators it forks: the CPU one and, for a CUDA ``device``, that device's.
``torch.manual_seed`` (what each draw called before) also seeds every CUDA device, which on a
GPU reseeds devices the fork does not restore, and on a CUDA build of torch without a GPU
queues that seeding with a stack trace on every call (measured: no difference in DM's speed
on this machine; the draws are the same to the bit on CPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the body with the CPU generator (and a CUDA ``device``'s) forked and seeded by ``seed``."""
    kind = "cpu" if device is None else device.type
    with torch.random.fork_rng(devices=[device] if kind == "cuda" else []):
        if kind in ("cpu", "cuda"):
            torch.random.default_generator.manual_seed(seed)
            if kind == "cuda":
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
        else:  # another accelerator (untested here): the CPU forked, every generator seeded, as before
            torch.manual_seed(seed)
        yield
