"""Where ddx keeps bytes: a local path or a storage URI, read and written through pyarrow.fs.

A *location* is a string: a local path (``./ddx_results``, ``/data/ddx``), or a URI in any
form :func:`pyarrow.fs.FileSystem.from_uri` accepts — ``s3://bucket/prefix``,
``gs://bucket/prefix``, ``file:///abs/path``, with query parameters such as
``s3://bucket/prefix?endpoint_override=host:9000&scheme=http&region=eu-west-1`` for MinIO
and other S3-compatible stores (the ``AWS_ENDPOINT_URL`` environment variable works too).
Locations are joined with :func:`join`, which keeps the query string at the end, so every
derived location is itself a valid URI that any process on any node can open.

Writes are atomic: local files through a temporary name renamed into place; object stores
through single-object uploads, which readers see whole or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from methods.atomic import atomic_path
from orchestrator.errors import UserError
from orchestrator.storage import time_limit
from orchestrator.storage.uris import refused, uri_problem


def is_uri(location: str) -> bool:
    return "://" in location


def join(base: str, *parts: str) -> str:
    """``base``/``parts``…; for URIs the query string (``?endpoint_override=…``) stays at the end."""
    if is_uri(base):
        head, sep, query = base.partition("?")
        return "/".join([head.rstrip("/"), *parts]) + sep + query
    return str(Path(base).joinpath(*parts))


def add_suffix(location: str, suffix: str) -> str:
    """``location`` with ``suffix`` appended to its name; for URIs the query string stays at the end."""
    head, sep, query = location.partition("?") if is_uri(location) else (location, "", "")
    return head + suffix + sep + query


@lru_cache(maxsize=512)
def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it for a local path or a URI."""
    if is_uri(location):
        return _from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def local_path(location: str) -> Path | None:
    """The local path of a location on the local filesystem (a plain path or ``file://``), else None."""
    fs, path = filesystem(location)
    return Path(path) if isinstance(fs, pafs.LocalFileSystem) else None


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as fh:
        return fh.read()


def read_json(location: str, fix: str = "restore or delete it") -> Any:
    """A JSON file ddx wrote (a saved spec, a trial record, a set's card); one that is not JSON
    (truncated, edited by hand) is a :class:`UserError` naming it and ``fix``, not a traceback."""
    data = read_bytes(location)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"not readable JSON ({err}); {fix}", where=location) from None


def write_bytes_atomic(location: str, data: bytes) -> None:
    """Write ``data`` so that readers see either the old object or the whole new one."""
    fs, path = filesystem(location)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a failed write (a full disk) leaves nothing
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    else:
        with fs.open_output_stream(path) as out:
            out.write(data)


def upload_file(source: Path, location: str) -> None:
    """Copy a local file to ``location`` atomically (streamed, not read into memory at once)."""
    fs, path = filesystem(location)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)

    def copy(target: str) -> None:
        with open(source, "rb") as src, fs.open_output_stream(target) as out:
            while chunk := src.read(1 << 22):
                out.write(chunk)

    if isinstance(fs, pafs.LocalFileSystem):
        with atomic_path(path) as tmp:
            copy(str(tmp))
    else:
        copy(path)


def download_file(location: str, target: Path) -> None:
    """Copy ``location`` to the local file ``target`` (streamed)."""
    fs, path = filesystem(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(path) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 22):
            out.write(chunk)


def delete(location: str) -> None:
    fs, path = filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        fs.delete_file(path)


def delete_dir(location: str) -> None:
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def has_entries(location: str, ignore: frozenset[str] = frozenset()) -> bool:
    """Whether anything is at ``location``: a file, or a folder (a URI prefix) with at least one
    entry whose name is not in ``ignore``."""
    fs, path = filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type != pafs.FileType.Directory:
        return True
    return any(i.base_name not in ignore for i in fs.get_file_info(pafs.FileSelector(path)))


def delete_all_but(location: str, keep: frozenset[str]) -> None:
    """Delete everything in folder ``location`` except the entries named in ``keep``."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return
    for info in fs.get_file_info(pafs.FileSelector(path)):
        if info.base_name in keep:
            continue
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(info.path)
        else:
            fs.delete_file(info.path)


def list_files(location: str, suffix: str = "") -> list[str]:
    """The locations of the files directly under ``location`` whose names end with ``suffix``."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    names = sorted(
        info.base_name
        for info in fs.get_file_info(pafs.FileSelector(path))
        if info.is_file and info.base_name.endswith(suffix) and not info.base_name.startswith(".")
    )
    return [join(location, n) for n in names]


_URI_FIX = (
    "check the URI, the bucket, credentials and ?endpoint_override=HOST:PORT&scheme=http for S3-compatible stores"
)
_PATH_FIX = "check the folder's permissions and its disk's free space"


def _fix(location: str) -> str:
    """What to check when ``location`` cannot be written or read."""
    return _URI_FIX if is_uri(location) else _PATH_FIX


def _ask_store(
    ask: Callable[[], None], location: str, timeout: float | None, failed: Callable[[str], UserError]
) -> None:
    """``ask()`` of the store of ``location`` within ``timeout`` seconds (default
    :func:`~orchestrator.storage.time_limit.uri_timeout_s`); silence or a store's error (pyarrow: OSError /
    ArrowInvalid, a ValueError) is ``failed(why)``, ``why`` ending with what to check.

    First, without asking the store: a URI pyarrow cannot open (scheme, query keys:
    :func:`~orchestrator.storage.uris.uri_problem`) and an endpoint that refuses connections
    (:func:`~orchestrator.storage.uris.refused`; the S3 client would retry it for ~14 s) are
    ``failed(why)`` at once."""
    limit = time_limit.uri_timeout_s() if timeout is None else timeout
    problem = uri_problem(location) or refused(location, timeout=min(2.0, limit))
    if problem is not None:
        raise failed(problem)
    try:
        time_limit.within(limit, ask, name="ddx-storage-probe")
    except time_limit.NoAnswer:
        raise failed(f"no answer within {limit:g} s ({_fix(location)})") from None
    except (OSError, ValueError) as err:
        raise failed(f"{' '.join(str(err).split())[:300]} ({_fix(location)})") from None


def check_storage(location: str, key: str = "storage", timeout: float | None = None) -> None:
    """Fail with one line (exit 2) unless ``location`` can be written: a bad URI, no such bucket,
    an unreachable or silent endpoint or missing permissions are reported before any work starts.

    It writes, reads back and deletes a probe object, within ``timeout`` seconds (default
    :func:`~orchestrator.storage.time_limit.uri_timeout_s`); on a local disk the folders it had to make
    for it are removed again, so a check that passes (or a run that stops right after it)
    leaves nothing behind."""
    probe = join(location, f".ddx-probe-{uuid.uuid4().hex[:8]}")
    made = missing_local_folders(location)

    def write_read_delete() -> None:
        write_bytes_atomic(probe, b"ok")
        if read_bytes(probe) != b"ok":
            raise OSError("read back different bytes")
        delete(probe)

    try:
        _ask_store(
            write_read_delete, location, timeout, lambda why: UserError(f"cannot write to {location!r}: {why}", key=key)
        )
    finally:
        remove_empty_folders(made)


#: a local storage with less free space than this counts as full (a sweep writes MBs: sets, rows, Tune's state)
LOW_SPACE_BYTES = 16 << 20


def check_room(location: str, key: str = "storage", need: int = LOW_SPACE_BYTES) -> None:
    """One line (:class:`UserError`) when the disk of a local ``location`` has less than ``need``
    bytes free: a write that failed for want of space freed what it had written (atomic writes
    leave nothing), so a small probe may pass on a disk that is still too full. A URI passes
    (its store says when it is full)."""
    path = local_path(location)
    if path is None:
        return
    missing = missing_local_folders(location)  # deepest first: the last one's parent exists
    free = shutil.disk_usage(missing[-1].parent if missing else path).free
    if free < need:
        raise UserError(f"cannot write to {location!r}: its disk has {free >> 10} KiB free ({_PATH_FIX})", key=key)


def check_reachable(location: str, timeout: float | None = None) -> None:
    """One line (:class:`UserError`) unless the store behind a URI ``location`` answers within
    ``timeout`` seconds: asked before a command reads from it, so a silent endpoint or a
    credential the client keeps retrying is not a hang of minutes. A local path passes (its
    errors are its readers')."""
    if not is_uri(location):
        return

    def ask() -> None:
        fs, path = filesystem(location)
        fs.get_file_info(path)

    _ask_store(ask, location, timeout, lambda why: UserError(f"cannot reach it: {why}", where=location))


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first, as :func:`missing_local_folders` gives them) until one
    is not empty: the folders a step made for itself go, what another writer filled stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def missing_local_folders(location: str) -> list[Path]:
    """The folders of a local ``location`` that do not exist yet, deepest first ([] for a URI)."""
    try:
        path = local_path(location)
    except (OSError, ValueError):
        return []
    missing = []
    while path is not None and not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


__all__ = [
    "add_suffix",
    "check_reachable",
    "check_room",
    "check_storage",
    "delete",
    "delete_dir",
    "download_file",
    "exists",
    "filesystem",
    "has_entries",
    "is_uri",
    "join",
    "list_files",
    "local_path",
    "missing_local_folders",
    "read_bytes",
    "read_json",
    "remove_empty_folders",
    "upload_file",
    "write_bytes_atomic",
]
