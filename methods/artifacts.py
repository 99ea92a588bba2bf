"""Artifacts: anything produced once and reused (teachers, expert trajectories, statistics, warm-ups,
decoded images, whitening fits, staged dataset trees).

An artifact is named by the SHA-256 of a canonical JSON description of everything that
determines it (:func:`content_key`), so every trial of a sweep — and every later sweep on
the same storage — finds the same one. Methods only see the :class:`ArtifactCache`
protocol: ``get_or_create(kind, description, produce)`` returns a **local** path to a
complete, verified copy, calling ``produce(tmp_path)`` at most once across every process
that shares the cache.

:class:`LocalArtifactCache` is the one mechanism behind every cache on a node's disk
(docs/architecture.md, "Caches"): an entry ``<root>/<kind>/<key><suffix>`` — a file, or a
folder for a tree — is produced under a file lock ``<entry>.lock`` (``filelock``: one
producer per node, released when its process dies), written to a temporary name and renamed
into place (:mod:`methods.atomic`), and then described by a manifest
``<entry>.manifest.json`` (description, SHA-256 or, for a tree, each file's size; bytes;
created). An entry exists exactly when its manifest does and the data matches it: every read
checks that — a file's size and SHA-256, a tree's every file and size — once per cache object
while the file (for a tree: its manifest) keeps its inode, size and times, and a corrupt or
partial entry is removed and produced again, never used.

The orchestrator supplies a cache backed by the sweep's storage URI (local path, ``s3://``,
``gs://``…) that keeps its node-local copies in :func:`node_cache` with this same mechanism,
so nothing crosses a node as a local path (``orchestrator/storage/artifacts.py``). This
module imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from methods.atomic import atomic_path, atomic_tree

Produce = Callable[[Path], None]

MANIFEST_SUFFIX = ".manifest.json"
LOCK_SUFFIX = ".lock"
_ABSENT = "absent"  # what _check says when nothing of an entry is there

log = logging.getLogger("ddx.cache")


def content_key(description: Mapping[str, Any]) -> str:
    """SHA-256 (24 hex digits) of ``description`` as canonical JSON."""
    body = json.dumps(description, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_manifest(description: Mapping[str, Any], path: Path, sha256: str | None = None) -> dict[str, Any]:
    """The manifest of a file entry: its description, SHA-256, size in bytes, when and where it was made."""
    return {
        "description": dict(description),
        "sha256": sha256 if sha256 is not None else file_sha256(path),
        "size": path.stat().st_size,
        "created_at": time.time(),
        "producer": socket.gethostname(),
    }


def tree_manifest(description: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The manifest of a tree entry: its description, every file's size (relative POSIX path →
    bytes; large trees are not hashed), their total, when and where it was made."""
    files: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            files[path.relative_to(root).as_posix()] = path.stat().st_size
    return {
        "description": dict(description),
        "files": files,
        "size": sum(files.values()),
        "created_at": time.time(),
        "producer": socket.gethostname(),
    }


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when a file is rewritten (inode, size, modification and change times), or None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CacheError(RuntimeError):
    """What was produced for a cache entry is not what was expected (no file, another SHA-256)."""


class ArtifactCache(Protocol):
    """What methods need from an artifact store."""

    def find(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> Path | None:
        """A local path to the artifact if it exists (fetched if it lives elsewhere), else None."""
        ...

    def get_or_create(self, kind: str, description: Mapping[str, Any], produce: Produce, suffix: str = ".pt") -> Path:
        """A local path to the artifact ``(kind, description)``, produced under a lock if missing."""
        ...


def default_cache_dir() -> Path:
    """``$DDX_CACHE`` (default ``~/.cache/ddx``): this machine's cache directory."""
    return Path(os.environ.get("DDX_CACHE", Path.home() / ".cache" / "ddx"))


class LocalArtifactCache:
    """Verified entries under ``root/<kind>/<key><suffix>``, each produced at most once per node.

    ``find`` / ``get_or_create`` (the :class:`ArtifactCache` protocol) and ``find_tree`` /
    ``get_or_create_tree`` name an entry by its description; ``lookup`` / ``ensure`` by its key
    (the orchestrator's store, whose references carry the key and the expected SHA-256).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir() / "artifacts"
        self._hashed: dict[str, tuple[tuple[int, int, int, int], str]] = {}  # file → (stat stamp, sha256)
        self._trees: dict[str, tuple[int, int, int, int]] = {}  # tree → its manifest's stat stamp when checked

    # --- names -----------------------------------------------------------------------------
    def entry(self, kind: str, key: str, suffix: str = "") -> Path:
        return self.root / kind / f"{key}{suffix}"

    def path(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> Path:
        return self.entry(kind, content_key(description), suffix)

    @staticmethod
    def manifest_path(entry: Path) -> Path:
        return entry.with_name(entry.name + MANIFEST_SUFFIX)

    @staticmethod
    def lock(entry: Path) -> FileLock:
        """The entry's producer lock (``<entry>.lock``): one holder per node, freed when its process dies."""
        return FileLock(str(entry) + LOCK_SUFFIX)

    # --- by description ----------------------------------------------------------------------
    def find(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> Path | None:
        return self.lookup(kind, content_key(description), suffix)

    def get_or_create(self, kind: str, description: Mapping[str, Any], produce: Produce, suffix: str = ".pt") -> Path:
        return self.ensure(kind, content_key(description), produce, description=description, suffix=suffix)

    def find_tree(self, kind: str, description: Mapping[str, Any]) -> Path | None:
        return self.lookup(kind, content_key(description), tree=True)

    def get_or_create_tree(self, kind: str, description: Mapping[str, Any], produce: Produce) -> Path:
        """A verified folder; ``produce(tmp_dir)`` fills an empty folder when it is missing."""
        return self.ensure(kind, content_key(description), produce, description=description, tree=True)

    # --- by key ------------------------------------------------------------------------------
    def lookup(
        self, kind: str, key: str, suffix: str = "", *, tree: bool = False, sha256: str | None = None
    ) -> Path | None:
        """The verified entry, or None; a corrupt or partial one is removed (under its lock).
        ``sha256``: the content expected (an entry holding other bytes is stale)."""
        entry = self.entry(kind, key, suffix)
        problem = self._check(entry, tree, sha256)
        if problem is None:
            return entry
        if problem == _ABSENT:
            return None
        with self.lock(entry):
            problem = self._check(entry, tree, sha256)
            if problem is None:
                return entry
            self._discard(entry, problem)
        return None

    def ensure(
        self,
        kind: str,
        key: str,
        produce: Produce,
        *,
        description: Mapping[str, Any],
        suffix: str = "",
        tree: bool = False,
        sha256: str | None = None,
    ) -> Path:
        """The verified entry, produced here under its lock when no process of this node has."""
        entry = self.entry(kind, key, suffix)
        if self._check(entry, tree, sha256) is None:
            return entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        with self.lock(entry):
            problem = self._check(entry, tree, sha256)  # another process may have made it while we waited
            if problem is None:
                return entry
            self._discard(entry, problem)
            if tree:
                with atomic_tree(entry) as tmp:
                    produce(tmp)
                    manifest = tree_manifest(description, tmp)
            else:
                with atomic_path(entry) as tmp:
                    produce(tmp)
                    if not tmp.is_file():
                        raise CacheError(f"producing the cache entry {entry} wrote no file")
                    manifest = file_manifest(description, tmp)
                    if sha256 is not None and manifest["sha256"] != sha256:
                        raise CacheError(f"{entry}: the bytes produced do not have the expected SHA-256 {sha256}")
                self._remember(entry, manifest["sha256"])
            with atomic_path(self.manifest_path(entry)) as tmp:  # written last: it makes the entry exist
                tmp.write_text(json.dumps(manifest, default=str))
        return entry

    def read_manifest(self, entry: Path) -> dict[str, Any] | None:
        """The entry's manifest, or None when it is missing or not a manifest."""
        try:
            body = json.loads(self.manifest_path(entry).read_text())
        except (OSError, ValueError):
            return None
        return body if isinstance(body, dict) and isinstance(body.get("description"), dict) else None

    # --- verification ------------------------------------------------------------------------
    def file_problem(self, path: Path, sha256: Any, size: Any) -> str | None:
        """Why the file at ``path`` is not ``size`` bytes hashing to ``sha256`` (None: it is)."""
        try:
            st = path.stat()
        except OSError:
            return "its file is missing"
        if not stat.S_ISREG(st.st_mode):
            return "it is not a file"
        if st.st_size != size:
            return f"its file has {st.st_size} bytes, not {size}"
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._hashed.get(str(path)) == (stamp, sha256):
            return None
        try:
            actual = file_sha256(path)
        except OSError as e:
            return f"its file cannot be read ({e})"
        if actual != sha256:
            return "its bytes do not hash to the manifest's SHA-256"
        self._hashed[str(path)] = (stamp, sha256)
        return None

    def tree_problem(self, root: Path, files: Any) -> str | None:
        """Why the folder ``root`` does not hold ``files`` (relative path → size) (None: it does)."""
        if not isinstance(files, dict):
            return "its manifest lists no files"
        if not root.is_dir():
            return "its folder is missing"
        for rel, size in files.items():
            try:
                actual = (root / rel).stat().st_size
            except OSError:
                return f"{rel} is missing"
            if actual != size:
                return f"{rel} has {actual} bytes, not {size}"
        return None

    def _check(self, entry: Path, tree: bool, sha256: str | None) -> str | None:
        """None when the entry is complete and matches its manifest, else why not (``_ABSENT``: nothing there)."""
        stamp = _stamp(self.manifest_path(entry)) if tree else None
        if stamp is not None and self._trees.get(str(entry)) == stamp:
            return None  # checked by this cache object, and its manifest has not changed since
        manifest = self.read_manifest(entry)
        if manifest is None:
            there = entry.exists() or entry.is_symlink() or self.manifest_path(entry).exists()
            return "it has no (readable) manifest: partial" if there else _ABSENT
        if sha256 is not None and manifest.get("sha256") != sha256:
            return "it holds other content than expected"
        if not tree:
            return self.file_problem(entry, manifest.get("sha256"), manifest.get("size"))
        problem = self.tree_problem(entry, manifest.get("files"))
        if problem is None and stamp is not None:
            self._trees[str(entry)] = stamp
        return problem

    def _remember(self, entry: Path, sha256: str) -> None:
        stamp = _stamp(entry)
        if stamp is not None:
            self._hashed[str(entry)] = (stamp, sha256)

    def _discard(self, entry: Path, problem: str) -> None:
        """Remove what there is of an entry (manifest first), holding its lock."""
        if problem != _ABSENT:
            log.warning("ddx cache: %s is not usable (%s); removed, it is produced again when needed", entry, problem)
        self._hashed.pop(str(entry), None)
        self._trees.pop(str(entry), None)
        self.manifest_path(entry).unlink(missing_ok=True)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def node_cache() -> LocalArtifactCache:
    """This node's artifact cache, ``$DDX_CACHE/artifacts``: where the orchestrator's store keeps its
    verified node-local copies, and what a method caches in when it was given no cache (benchmarks,
    notebooks, a distillation run outside the orchestrator)."""
    return LocalArtifactCache(default_cache_dir() / "artifacts")


__all__ = [
    "LOCK_SUFFIX",
    "MANIFEST_SUFFIX",
    "ArtifactCache",
    "CacheError",
    "LocalArtifactCache",
    "Produce",
    "content_key",
    "default_cache_dir",
    "file_manifest",
    "file_sha256",
    "node_cache",
    "tree_manifest",
]
