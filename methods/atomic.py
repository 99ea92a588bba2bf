"""Atomic local files: a reader sees the old file or the whole new one, and a failed write leaves nothing.

Every local file ddx writes for others to read (synthetic sets, row files, cached datasets and
whitening, the record of ``ddx up``) is written to a temporary name beside its target and
renamed over it in one step. When the write fails part-way — a full disk, a quota, an
interrupted process — the temporary file is removed, so no half-written ``.tmp`` is left
behind in the user's storage and the old target, if any, is untouched. A folder (a staged
dataset tree) is written the same way with :func:`atomic_tree`. Pure Python.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A fresh temporary path beside ``target`` to write the new contents to.

    When the block ends normally the file there replaces ``target`` (``os.replace``: one rename
    on the same file system); when it raises, the file is removed and the error goes on.
    The name is unique (``.<name>.<8 hex>.tmp``), so concurrent writers never share one.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_tree(target: str | Path) -> Iterator[Path]:
    """A fresh, empty temporary folder beside ``target`` to fill with the new tree.

    When the block ends normally the folder is renamed to ``target`` (an existing ``target`` is
    removed first, so a reader may see no tree in between, never a partial one: callers that
    share the tree hold a lock and mark it complete afterwards, as :mod:`methods.artifacts`
    does); when it raises, the temporary folder is removed and the error goes on.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["atomic_path", "atomic_tree"]
