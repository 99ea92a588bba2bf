"""User-facing errors: one line that says what is wrong, where, and how to fix it (exit 2)."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: characters that would break the one-line promise or the terminal (escaped in :meth:`UserError.line`)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: the longest line printed (a value quoted from a huge input is cut)
MAX_LINE = 2000


class UserError(Exception):
    """An error caused by input (spec, paths, flags); the CLI prints it as one line, exit code 2."""

    def __init__(self, message: str, where: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.where = where
        self.key = key
        super().__init__(self.line())

    def line(self) -> str:
        """``where: key: message`` on one line (control characters escaped, length bounded)."""
        parts = [p for p in (self.where, self.key) if p]
        text = ": ".join([*parts, self.message])
        text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
        return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


class SpecError(UserError):
    """A sweep file that does not validate."""


def from_ray(err: BaseException) -> bool:
    """Whether ``err`` is one of Ray's own errors (a task's wrapper, a dead actor or worker process, a
    failed Train run) rather than one the code it ran raised."""
    return type(err).__module__.split(".")[0] == "ray"


#: what a collective says when another rank is gone (gloo, NCCL): the effect of a failure, not its cause
_PEER_LOST = re.compile(
    r"(closed|reset) by peer|remote (worker|process|peer)|ncclRemoteError|communicator was aborted", re.IGNORECASE
)


def _blame(err: BaseException) -> int:
    """How much a Train worker's error says about what failed: 0 its code raised it; 1 its process
    died (only Ray's error is left); 2 a collective lost its peer (another rank failed first)."""
    if _PEER_LOST.search(str(err)):
        return 2
    return 1 if from_ray(err) else 0


def failed_cause(err: BaseException) -> tuple[BaseException, int | None]:
    """The error under Ray's wrappers, and the Ray Train rank it came from (None: not a Train worker's).

    A remote task's error carries the task's own as ``cause``; a Train run's ``WorkerGroupError``
    maps each failed worker's rank to its error (``worker_failures``): a rank whose code raised
    its error wins, then one whose process died (Ray's error), then one whose collective lost
    its peer (gloo's ``Connection closed by peer`` on rank 0 when rank 1 crashed), the lowest
    rank first; a ``ControllerError`` holds the controller's (``controller_failure``). Read by
    attribute: no Ray import."""
    rank = None
    for _ in range(8):  # wrappers nest a few deep at most
        cause = getattr(err, "cause", None)
        failures = getattr(err, "worker_failures", None)
        controller = getattr(err, "controller_failure", None)
        if isinstance(cause, BaseException) and cause is not err:
            err = cause
        elif isinstance(failures, dict) and failures:
            rank = min(failures, key=lambda r: (_blame(failures[r]), r))
            err = failures[rank]
        elif isinstance(controller, BaseException) and controller is not err:
            err = controller
        else:
            break
    return err, rank


#: the attribute an error raised in a Ray worker carries: where that worker's log is (``node:path``)
LOG_NOTE = "ddx_log"


def note_log(err: BaseException, where: str | None) -> BaseException:
    """Mark ``err`` (raised in a worker process) with where that process logs; it travels with the
    error through Ray (an exception's attributes are pickled with it). The first note stays."""
    if where and getattr(err, LOG_NOTE, None) is None:
        with contextlib.suppress(AttributeError, TypeError):  # an exception type that takes no attributes
            setattr(err, LOG_NOTE, where)
    return err


def noted_log(err: BaseException) -> str | None:
    """Where the worker whose error ``err`` wraps logged (:func:`note_log`), under Ray's wrappers; None: not noted."""
    cause, _ = failed_cause(err)
    where = getattr(cause, LOG_NOTE, None) or getattr(err, LOG_NOTE, None)
    return str(where) if where else None


def noting_log(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn``, whose errors carry where this process logs (:func:`note_log`): for a Ray task's body.
    The error's traceback is written to this process's stderr (Ray returns a task's error to its
    caller but writes nothing of it to the worker's log), so the log named holds it."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            from orchestrator.cluster.processes import log_location

            if getattr(err, LOG_NOTE, None) is None:  # noted once, by the innermost body
                print(f"ddx: {fn.__qualname__} failed:", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
                note_log(err, log_location())
            raise

    return call


def error_line(err: BaseException) -> str:
    """The last line of an error, under Ray's wrappers (:func:`failed_cause`): ``DivergedError: dm loss
    became nan at step 3 of 20``, not Ray's ``WorkerGroupError: …``."""
    err, _ = failed_cause(err)
    text = [line for line in str(err).strip().splitlines() if line.strip()]
    line = text[-1].strip() if text else ""
    return f"{type(err).__name__}: {line}"[:2000] if line else type(err).__name__
