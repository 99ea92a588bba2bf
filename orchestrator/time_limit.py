"""Ask something that may never answer (a storage endpoint, an object store's credentials), with a time limit.

The clients ddx uses retry on their own schedules, for minutes (the S3 client waits ~100 s on a
silent endpoint; the GCS client retries a missing credential for 15 min), and cannot be
interrupted. A check made before any work runs the call on a daemon thread and gives up
waiting after a limit, so a store that does not answer is one line in seconds; the thread is
left to its client's own timeout and does not keep the process alive.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: seconds a storage location (``storage``, ``--out``, a URI ``dataset.root``) may take to answer
#: a check made before any work (``DDX_URI_TIMEOUT``): a small read or write answers in a second or two
URI_TIMEOUT_S = float(os.environ.get("DDX_URI_TIMEOUT", "15"))


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
