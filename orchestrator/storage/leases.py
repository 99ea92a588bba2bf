"""Leases: a lock object on any storage, owned by one process at a time, expiring unless renewed.

A :class:`LeaseLock` guards the experiment (``running.json``), a trial key's work, an
artifact's production, a row file and the consolidation. The lock object holds its owner
(``host:pid:random``) and an expiry the owner renews every ``ttl / 3`` seconds; a holder that
dies stops renewing and its lease lapses after ``ttl`` — at once when it was a process of the
same host (its pid is gone, or belongs to a later process).

Every change of the object is conditional (:mod:`orchestrator.storage.conditional`): a free
lock is *created* only where none is, an expired or dead one is *replaced* only at the version
the taker read, and the holder renews and deletes only its own version. So when several
processes take the same lease at once — a free one, or one whose holder died — exactly one
wins, and a holder that was taken over (it failed to renew for ``ttl``) finds out at its next
renewal instead of overwriting the new holder. :func:`conditional_store` chooses the store's
mechanism once per store and process; where a store has none the fallback (read back after
``settle`` seconds) narrows the race without closing it, and says so in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from orchestrator.cluster.processes import process_start
from orchestrator.storage.conditional import ConditionalStore, Current, LocalFiles, ReadBack, fcntl
from orchestrator.storage.locations import filesystem, is_uri, local_path

#: the atomic store chosen for each store key (None: the fallback, already warned about)
_chosen: dict[str, ConditionalStore | None] = {}
_choosing = threading.Lock()


def _store_key(location: str) -> str:
    """What one choice holds for: this machine, or a URI's scheme, bucket and query (no credentials)."""
    if not is_uri(location):
        return "local storage"
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f"?{parts.query}" if parts.query else "")


def warn_not_atomic(where: str, why: str) -> None:
    """The one line a store without conditional writes gets (once per store and process)."""
    sys.stderr.write(
        f"warning {where}: leases are not atomic here ({why}); two processes that take the same lease "
        "within a second may both win\n"
    )
    sys.stderr.flush()


def conditional_store(location: str, settle: float = 0.5) -> ConditionalStore:
    """How conditional writes are made at ``location``: a local file's ``flock``, S3's conditional
    requests (probed once), else the read-back fallback that waits ``settle`` seconds. Chosen
    once per store and process; the fallback's choice prints :func:`warn_not_atomic`'s line."""
    key = _store_key(location)
    with _choosing:
        if key not in _chosen:
            store: ConditionalStore | None = None
            fs, _ = filesystem(location)
            if isinstance(fs, pafs.LocalFileSystem):
                store, why = (LocalFiles(), "") if fcntl is not None else (None, "this system has no flock")
            elif isinstance(fs, pafs.S3FileSystem):
                from orchestrator.storage import s3_conditional

                store, why = s3_conditional.probe(location)
            else:
                why = f"ddx has no conditional writes for {fs.type_name}"
            if store is None:
                warn_not_atomic(key, why)
            _chosen[key] = store
        chosen = _chosen[key]
    return chosen if chosen is not None else ReadBack(settle)


def _owner() -> str:
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str, pid_start: int | None = None) -> bool:
    """True when ``owner`` is a process of this host that no longer exists (its lease is stale):
    its pid is gone, or (``pid_start``, when it was recorded) now belongs to a later process."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: only the lease's expiry can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    now = process_start(int(pid))
    return pid_start is not None and now is not None and now != pid_start


def _parse(current: Current | None) -> dict[str, Any] | None:
    if current is None:
        return None
    try:
        lease = json.loads(current.data)
    except ValueError:  # not JSON (nor UTF-8), or empty: nobody's lease
        return None
    return lease if isinstance(lease, dict) else None


class LeaseLock:
    """A lock object at ``location`` owned by one process at a time, with an expiring lease
    (see the module docstring). ``settle``: the fallback's wait before it reads back (stores
    without conditional writes only); ``poll``: how often :meth:`wait_or_acquire` tries.
    Clocks of the nodes are assumed to agree to well within ``ttl``.
    """

    def __init__(self, location: str, ttl: float = 120.0, settle: float | None = None, poll: float = 1.0) -> None:
        self.location = location
        self.ttl = ttl
        # a local rename is visible at once; object stores get time for a racing writer's PUT to land
        self.settle = settle if settle is not None else (0.02 if local_path(location) is not None else 0.5)
        self.poll = poll
        self.owner = _owner()
        self._pid_start = process_start(os.getpid())
        self._since: float | None = None  # when this process took the lock (set by try_acquire)
        self._version: str | None = None  # the version of the lock object this process wrote last
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writing = threading.Lock()  # a renewal and the release never overlap
        #: set when another process took the lease over (this one had not renewed it within ``ttl``)
        self.lost = threading.Event()

    @property
    def store(self) -> ConditionalStore:
        return conditional_store(self.location, self.settle)

    def _body(self) -> bytes:
        body = {
            "owner": self.owner,  # host:pid:random
            "pid_start": self._pid_start,
            "since": self._since,
            "expires": time.time() + self.ttl,
        }
        return json.dumps(body).encode()

    def _live_other(self, lease: dict[str, Any] | None) -> bool:
        """Whether ``lease`` is a live lease of another owner: expired leases, dead local owners
        and objects ddx did not write do not count."""
        if lease is None or lease.get("owner") == self.owner:
            return False
        try:
            if float(lease.get("expires", 0)) <= time.time():
                return False
            pid_start = lease.get("pid_start")
            return not _owner_is_dead(str(lease.get("owner", "")), int(pid_start) if pid_start is not None else None)
        except (TypeError, ValueError):  # not a lease ddx wrote
            return False

    def _mine(self, store: ConditionalStore) -> str | None:
        """The version of the lock object if this process wrote it (a write whose answer was lost
        landed after all), else None. Only this process writes its owner name."""
        current = store.read(self.location)
        lease = _parse(current)
        mine = current is not None and lease is not None and lease.get("owner") == self.owner
        return current.version if mine and current is not None else None

    def holder(self) -> dict[str, Any] | None:
        """The live lease of another owner (``owner``, ``since``, ``expires``), or None: expired
        leases, dead local owners and unreadable lock objects do not count."""
        lease = _parse(self.store.read(self.location))
        return lease if self._live_other(lease) else None

    def held_by_other(self) -> bool:
        """A live lease of another owner is there (expired leases and dead local owners do not count)."""
        return self.holder() is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free, expired or its local holder is dead; True when this
        process now holds it. Of several processes trying at once, one wins."""
        store = self.store
        current = store.read(self.location)
        if current is not None and self._live_other(_parse(current)):
            return False
        self._since = time.time()
        body = self._body()
        if current is None:
            version = store.create(self.location, body)
        else:  # expired, dead, garbled or our own: replaced only if nobody changed it since we read it
            version = store.replace(self.location, body, current.version)
        if version is None:
            version = self._mine(store)
            if version is None:
                return False
        self._version = version
        self.lost.clear()
        self._start_renewing()
        return True

    def _renew(self) -> bool:
        """Extend the lease; False when another process holds it now."""
        store = self.store
        with self._writing:
            if self._stop.is_set() or self._version is None:
                return True
            version = store.replace(self.location, self._body(), self._version)
            if version is None:  # a renewal whose answer was lost landed: continue from it
                mine = self._mine(store)
                version = store.replace(self.location, self._body(), mine) if mine is not None else None
            if version is None:
                self._version = None
                return False
            self._version = version
            return True

    def _start_renewing(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def renew() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    if self._renew():
                        continue
                except OSError:  # the store did not answer: try again at the next round
                    continue
                self.lost.set()
                sys.stderr.write(
                    f"warning {self.location}: this process's lease was taken over by another process "
                    f"(not renewed within {self.ttl:.0f} s)\n"
                )
                return

        self._thread = threading.Thread(target=renew, name="ddx-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        # a store gone: the lease lapses ``ttl`` after its last renewal
        with self._writing, contextlib.suppress(OSError):
            store = self.store
            version, self._version = self._version, None
            if version is not None and store.delete(self.location, version):
                return
            mine = self._mine(store)  # a write whose answer was lost, or a lock never taken here
            if mine is not None:
                store.delete(self.location, mine)

    def __enter__(self) -> LeaseLock:
        """``with LeaseLock(location):`` waits until this process holds the lock, releases it at exit."""
        self.wait_or_acquire(lambda: False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def wait_or_acquire(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``done()`` (returns False) or until this process holds the lock (True)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if done():
                return False
            if self.try_acquire():
                if done():  # finished by another owner between our check and our lease
                    self.release()
                    return False
                return True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for the lock {self.location}")
            time.sleep(self.poll)


__all__ = ["LeaseLock", "conditional_store", "warn_not_atomic"]
