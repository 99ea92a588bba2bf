"""Conditional writes of one small object: create it only if absent, replace or delete it only if unchanged.

What :class:`~orchestrator.storage.leases.LeaseLock` is built on. Each object has a *version*
(an opaque string): a local file's content hash, an S3 object's ETag.
:func:`orchestrator.storage.leases.conditional_store` picks, for a location, how the three
operations are made atomic:

* a local path (or an NFS mount with locking): the file's ``flock``, taken around each
  read-compare-write (a holder that dies releases it); the file is created with ``O_CREAT``
  under the lock and written in place, and a reader takes the shared lock, so nobody sees half
  a write;
* ``s3://`` (and S3-compatible stores): S3's conditional requests through ``botocore`` (the
  ``s3`` extra: ``pip install 'ddx[s3]'``; :mod:`orchestrator.storage.s3_conditional`):
  ``PutObject`` with ``If-None-Match: *`` creates, ``If-Match: <ETag>`` replaces,
  ``DeleteObject`` with ``If-Match`` deletes. Whether the
  store honours them is probed once per bucket and process (a store that ignores the headers
  would let two writers win);
* anything else (``gs://``: pyarrow has no generation preconditions and ddx does not bundle a
  GCS client; S3 without ``botocore``; a store that ignored the probe's conditions): the
  fallback, :class:`ReadBack` — write, wait ``settle`` seconds, read back; when two writers
  race the store keeps the last write and only its writer finds its own bytes. That narrows the
  window to about ``settle`` but cannot close it, so its first use per store prints one line:
  ``warning <store>: leases are not atomic here (…)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from typing import Protocol

from orchestrator.storage.locations import delete, exists, local_path, read_bytes, write_bytes_atomic

try:  # POSIX; elsewhere local leases use the fallback
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Current:
    """An object's bytes and its version."""

    data: bytes
    version: str


class ConditionalStore(Protocol):
    """The three conditional operations on one kind of store (see the module docstring)."""

    #: False for the fallback: its operations narrow a race but cannot exclude it
    atomic: bool

    def read(self, location: str) -> Current | None:
        """The object and its version, or None when there is none."""

    def create(self, location: str, data: bytes) -> str | None:
        """Write ``data`` unless an object is there; its version, or None when one was."""

    def replace(self, location: str, data: bytes, version: str) -> str | None:
        """Overwrite the object if it is still at ``version``; the new version, or None."""

    def delete(self, location: str, version: str) -> bool:
        """Delete the object if it is still at ``version``; whether it was deleted."""


def digest(data: bytes) -> str:
    """A version of local bytes: their SHA-256."""
    return hashlib.sha256(data).hexdigest()


# --- a local file: flock around each read-compare-write --------------------------------------
class LocalFiles:
    """Conditional writes of local files under the file's own ``flock``.

    A file is opened, locked, and checked to be the one still at its path (a deleter unlinks it
    under the lock, so a process that opened it before waits, then finds another file or none
    and starts again). An empty file (a writer that died between creating and writing it)
    counts as absent.
    """

    atomic = True

    @staticmethod
    @contextlib.contextmanager
    def _locked(path: str, create: bool, shared: bool = False):
        """The locked file at ``path`` (an fd), or None when there is none (and not ``create``)."""
        assert fcntl is not None
        flags = (os.O_RDONLY if shared else os.O_RDWR) | (os.O_CREAT if create else 0)
        if create:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        while True:
            try:
                fd = os.open(path, flags, 0o644)
            except FileNotFoundError:
                yield None
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                opened = os.fstat(fd)
                try:
                    now = os.stat(path)
                    same = (now.st_ino, now.st_dev) == (opened.st_ino, opened.st_dev)
                except FileNotFoundError:
                    same = False
                if same:
                    yield fd
                    return
            finally:
                os.close(fd)  # also releases the lock

    @staticmethod
    def _contents(fd: int) -> bytes:
        chunks = []
        offset = 0
        while chunk := os.pread(fd, 1 << 16, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _overwrite(fd: int, data: bytes) -> str:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return digest(data)

    def read(self, location: str) -> Current | None:
        with self._locked(_path(location), create=False, shared=True) as fd:
            if fd is None:
                return None
            data = self._contents(fd)
            return Current(data, digest(data))

    def create(self, location: str, data: bytes) -> str | None:
        with self._locked(_path(location), create=True) as fd:
            if os.fstat(fd).st_size > 0:
                return None
            return self._overwrite(fd, data)

    def replace(self, location: str, data: bytes, version: str) -> str | None:
        with self._locked(_path(location), create=False) as fd:
            if fd is None or digest(self._contents(fd)) != version:
                return None
            return self._overwrite(fd, data)

    def delete(self, location: str, version: str) -> bool:
        path = _path(location)
        with self._locked(path, create=False) as fd:
            if fd is None or digest(self._contents(fd)) != version:
                return False
            os.unlink(path)  # under the lock: a process waiting for it then finds no file here
            return True


def _path(location: str) -> str:
    path = local_path(location)
    assert path is not None, location
    return str(path)


class StoreError(OSError):
    """A store's error other than a failed condition (no bucket, no permission, no answer)."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code, self.status = code, status

    @property
    def unsupported(self) -> bool:
        """The store refused the request's form (a condition it does not implement)."""
        return self.status in (400, 501) or self.code in {"NotImplemented", "InvalidArgument", "InvalidRequest"}


# --- the fallback: write, settle, read back -----------------------------------------------------
class ReadBack:
    """Best effort where no conditional write exists: write, wait ``settle`` seconds, read back.

    Racing writers each write; the store keeps the last, and only its writer finds its own bytes
    (the others back off). A writer whose write lands after another's read-back still wins too:
    the window is about ``settle``, not zero.
    """

    atomic = False

    def __init__(self, settle: float) -> None:
        self.settle = settle

    def read(self, location: str) -> Current | None:
        try:
            data = read_bytes(location)
        except FileNotFoundError:
            return None
        except OSError:
            if not exists(location):
                return None
            raise
        return Current(data, digest(data))

    def _write(self, location: str, data: bytes) -> str | None:
        write_bytes_atomic(location, data)
        time.sleep(self.settle)
        current = self.read(location)
        return current.version if current is not None and current.data == data else None

    def create(self, location: str, data: bytes) -> str | None:
        return None if self.read(location) is not None else self._write(location, data)

    def replace(self, location: str, data: bytes, version: str) -> str | None:
        current = self.read(location)
        return None if current is None or current.version != version else self._write(location, data)

    def delete(self, location: str, version: str) -> bool:
        current = self.read(location)
        if current is None or current.version != version:
            return False
        delete(location)
        return True


__all__ = ["ConditionalStore", "Current", "LocalFiles", "ReadBack", "StoreError", "digest"]
