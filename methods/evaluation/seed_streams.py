"""One random stream per seed, so seeds trained together draw exactly what each draws alone.

A student trained alone (:func:`methods.evaluation.student.train_student`) makes every draw —
its initialisation, each epoch's permutation, its augmentation and mixing parameters — under
:func:`methods.seeding.seeded` ``(seed)``. :class:`SeedStreams` keeps, for each of K seeds, the
generator state that stream has reached and swaps it in around that seed's draws, so however
the K seeds' draws interleave, seed k's are the ones it makes alone, in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from methods.seeding import seeded


class SeedStreams:
    """The CPU generator state (and a CUDA device's) each seed's stream has reached.

    ``use(k)`` runs its body on seed k's stream: seed k's state is swapped in, advanced by the
    body's draws, kept, and the caller's state is put back, so the caller's stream is untouched.
    Only CPU and CUDA generators can be swapped so; another device type trains one seed at a time
    under ``seeded(seed, device)`` (:func:`methods.evaluation.student_chunks.chunk_size` gives 1).
    """

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"independent seed streams need a CPU or CUDA device, got {device}")
        self.device = device
        self.cuda = device.type == "cuda"
        self._cpu: list[Tensor] = []
        self._gpu: list[Tensor] = []
        for s in seeds:
            with seeded(int(s), device):  # the states seeded(s) starts its body from
                self._cpu.append(torch.random.default_generator.get_state())
                if self.cuda:
                    self._gpu.append(torch.cuda.get_rng_state(device))

    def __len__(self) -> int:
        return len(self._cpu)

    @contextlib.contextmanager
    def use(self, k: int) -> Iterator[None]:
        """Run the body on seed ``k``'s stream; its state advances, the caller's is untouched."""
        cpu = torch.random.default_generator
        saved = cpu.get_state()
        cpu.set_state(self._cpu[k])
        if self.cuda:
            saved_gpu = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self._gpu[k], self.device)
        try:
            yield
        finally:
            self._cpu[k] = cpu.get_state()
            cpu.set_state(saved)
            if self.cuda:
                self._gpu[k] = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(saved_gpu, self.device)


__all__ = ["SeedStreams"]
