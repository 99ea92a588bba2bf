"""Stopping a command: Ctrl-C and SIGTERM end it with one line and exit 130 / 143."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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


class SignalLog:
    """The numbers of the signals this process receives while it is open, whichever Python handler
    takes each: Python writes every such signal's number as one byte to its wakeup file
    (:func:`signal.set_wakeup_fd`, documented), before the handler runs. ``ray.init`` replaces
    ddx's SIGTERM handler with its own while it runs (which raises :class:`SystemExit`); the log
    still tells that SIGTERM stopped it, not how Ray's handler chose to exit. Main thread only
    (elsewhere it records nothing)."""

    def __init__(self) -> None:
        self._read: socket.socket | None = None
        self._write: socket.socket | None = None
        self._previous = -1
        self._seen: set[int] = set()

    def __enter__(self) -> SignalLog:
        if threading.current_thread() is threading.main_thread():
            self._read, self._write = socket.socketpair()
            for end in (self._read, self._write):
                end.setblocking(False)
            self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        return self

    def seen(self) -> set[int]:
        """The signals received so far."""
        if self._read is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                while chunk := self._read.recv(256):
                    self._seen.update(chunk)
        return set(self._seen)

    def __exit__(self, *exc: object) -> None:
        if self._write is None or self._read is None:
            return
        current = signal.set_wakeup_fd(self._previous)
        if current != self._write.fileno():  # another took the wakeup file meanwhile: leave it theirs
            signal.set_wakeup_fd(current)
        self._read.close()
        self._write.close()
        self._read = self._write = None


@contextmanager
def ctrl_c_says(fix: str) -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM inside the block (or the decorated command): ``interrupted: FIX``
    (``terminated (SIGTERM): FIX``) on stderr and exit 130 (143), after the command's own
    ``finally`` (Ray's shutdown). Typer's own handling exits 130 without a word. SIGTERM while
    ``ray.init`` runs reaches Ray's handler, which raises :class:`SystemExit`: a SystemExit with
    a SIGTERM in the :class:`SignalLog` is the same stop, whatever its code."""
    global _stopping_signal
    _stopping_signal = signal.SIGINT
    previous = signal.getsignal(signal.SIGTERM)
    take_sigterm()
    with SignalLog() as log:
        try:
            yield
        except (KeyboardInterrupt, SystemExit) as err:
            if signal.SIGTERM in log.seen():
                _stopping_signal = signal.SIGTERM
            elif isinstance(err, SystemExit):
                raise
            word, code = stop_word_and_code()
            err_console.print(f"[red]{word}[/]: {fix}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=code) from None
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


__all__ = ["SignalLog", "ctrl_c_says", "stop_word_and_code", "take_sigterm"]
