"""One thread per worker process for all tensor work of ddx's Ray tasks.

A pooled Ray worker runs many ddx tasks in turn: distillations, evaluations, prerequisite
pieces. PyTorch's CPU kernels parallelise with OpenMP, whose thread team belongs to the
thread that starts a parallel region. When one task computed on the worker's main thread
(an evaluation) and the next on a helper thread (the streaming distillation, whose body must
run beside the generator that yields its progress), the process held two teams, and the
second computed ~1.5x slower (measured on 2 CPUs: 50 DM steps 4.4 s → 6.9 s). Running every
task body on the same long-lived thread keeps one team, whatever kind of task came before.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: name prefix of the compute thread
THREAD_NAME = "ddx-compute"

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def compute_executor() -> ThreadPoolExecutor:
    """This process's compute thread (created on first use; one worker thread, kept for the process's life)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        return _executor


def submit(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Queue ``fn(*args, **kwargs)`` on the compute thread (it runs there at once when the thread is idle)."""
    return compute_executor().submit(fn, *args, **kwargs)


def on_compute_thread(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` made to run on the compute thread; the caller blocks for its result or exception.

    A call made on the compute thread itself runs directly (no deadlock on nested use).
    """

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        if threading.current_thread().name.startswith(THREAD_NAME):
            return fn(*args, **kwargs)
        return submit(fn, *args, **kwargs).result()

    return call
