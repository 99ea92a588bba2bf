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
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: name of the compute thread
THREAD_NAME = "ddx-compute"

_lock = threading.Lock()
_work: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] | None = None


def _serve(work: queue.SimpleQueue) -> None:
    """The compute thread: run each queued call in turn, its result or error into its future."""
    while True:
        future, fn, args, kwargs = work.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            result = fn(*args, **kwargs)
        except BaseException as err:  # the caller gets it, whatever it is
            future.set_exception(err)
        else:
            future.set_result(result)
        del future, fn, args, kwargs  # hold nothing of a finished call while waiting for the next


def _queue() -> queue.SimpleQueue:
    """This process's compute thread's queue (the thread starts on first use and lives as long as the process).

    The thread is a daemon: a process that is ending (a Ray worker told to exit when its
    raylet stops, or when its task is cancelled) does not wait for the call it runs. A
    ``ThreadPoolExecutor``'s thread is not, and Python joins it at exit: a worker stopped
    mid-evaluation by Ctrl-C of ``ddx sweep`` finished its Ray shutdown and then lived on as
    an orphaned ``ray::IDLE`` process, holding its memory, until that evaluation ended.
    """
    global _work
    with _lock:
        if _work is None:
            _work = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(_work,), name=THREAD_NAME, daemon=True).start()
        return _work


def submit(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Queue ``fn(*args, **kwargs)`` on the compute thread (it runs there at once when the thread is idle)."""
    future: Future[T] = Future()
    _queue().put((future, fn, args, kwargs))
    return future


def on_compute_thread(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` made to run on the compute thread; the caller blocks for its result or exception.

    A call made on the compute thread itself runs directly (no deadlock on nested use).
    """

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        if threading.current_thread().name == THREAD_NAME:
            return fn(*args, **kwargs)
        return submit(fn, *args, **kwargs).result()

    return call
