"""Ask something that may never answer (a storage endpoint, an object store's credentials), with a time limit.

The clients ddx uses retry on their own schedules, for minutes (the S3 client waits ~100 s on a
silent endpoint; the GCS client retries a missing credential for 15 min), and cannot be
interrupted. A check made before any work runs the call on a daemon thread and gives up
waiting after a limit, so a store that does not answer is one line in seconds; the thread is
left to its client's own timeout and does not keep the process alive.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from orchestrator.errors import UserError

T = TypeVar("T")

#: seconds a storage location may take to answer when ``DDX_URI_TIMEOUT`` is not set
DEFAULT_URI_TIMEOUT_S = 15.0


def uri_timeout_s() -> float:
    """Seconds a storage location (``storage``, ``--out``, a URI ``dataset.root``) may take to
    answer a check made before any work: ``$DDX_URI_TIMEOUT``, read at each check (default 15; a
    small read or write answers in a second or two). A value that is not a positive number of
    seconds is one line (:class:`UserError`)."""
    text = os.environ.get("DDX_URI_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_URI_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UserError(
            f"expected a positive number of seconds, got {text!r}; set e.g. DDX_URI_TIMEOUT=30, or unset it "
            f"({DEFAULT_URI_TIMEOUT_S:g} s)",
            key="DDX_URI_TIMEOUT",
        )
    return value


class NoAnswer(TimeoutError):
    """The call had not returned when the time limit was up."""


def within(timeout: float, fn: Callable[[], T], name: str = "ddx-time-limit") -> T:
    """``fn()``'s result, or its exception, if it returns within ``timeout`` seconds; else :class:`NoAnswer`."""
    outcome: list[tuple[bool, object]] = []

    def call() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as err:  # handed to the caller's thread
            outcome.append((False, err))

    thread = threading.Thread(target=call, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise NoAnswer(f"no answer within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]
