"""Stopping a command: Ctrl-C and SIGTERM end it with one line and exit 130 / 143."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from orchestrator.cli.output import EXIT_INTERRUPTED, EXIT_TERMINATED, err_console

#: the signal that is stopping the running command: SIGINT (Ctrl-C), or SIGTERM (:func:`take_sigterm`)
_stopping_signal = signal.SIGINT


def stop_word_and_code() -> tuple[str, int]:
    """How a stopped command's last line starts, and its exit code: ``interrupted`` and 130 after
    Ctrl-C, ``terminated (SIGTERM)`` and 143 after SIGTERM."""
    if _stopping_signal == signal.SIGTERM:
        return "terminated (SIGTERM)", EXIT_TERMINATED
    return "interrupted", EXIT_INTERRUPTED


def _sigterm_as_ctrl_c(signum: int, frame: object) -> None:
    global _stopping_signal
    _stopping_signal = signal.SIGTERM
    os.kill(os.getpid(), signal.SIGINT)


def take_sigterm() -> None:
    """Stop on SIGTERM the way Ctrl-C stops: the handler sends this process SIGINT, so Tune ends its
    running trials (finished work is kept, the same command resumes) or, outside Tune, the command
    stops with one line. A job scheduler's preemption, ``timeout`` and ``kill`` send SIGTERM; Ray's
    own handler (installed by ``ray.init``) printed C++ stack lines and exited 1, so the command
    takes the signal again once Ray is up. Main thread only (no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)


@contextmanager
def ctrl_c_says(fix: str) -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM inside the block (or the decorated command): ``interrupted: FIX``
    (``terminated (SIGTERM): FIX``) on stderr and exit 130 (143), after the command's own
    ``finally`` (Ray's shutdown). Typer's own handling exits 130 without a word."""
    global _stopping_signal
    _stopping_signal = signal.SIGINT
    previous = signal.getsignal(signal.SIGTERM)
    take_sigterm()
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, SystemExit):
            if err.code != signal.SIGTERM:
                raise
            # SIGTERM while ray.init runs: Ray's own handler (set first thing in ray.init) exits with 15
            _stopping_signal = signal.SIGTERM
        word, code = stop_word_and_code()
        err_console.print(f"[red]{word}[/]: {fix}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=code) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


__all__ = ["ctrl_c_says", "stop_word_and_code", "take_sigterm"]
