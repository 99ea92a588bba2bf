"""The artifact store: produced once, kept in the sweep's storage, fetched onto each node that needs it.

Every artifact (teacher, expert trajectories, real-data statistics, neural-field warm-ups,
full-data reference results, …) lives at ``<storage>/cache/<kind>/<key><suffix>`` — a local
path or any storage URI (:mod:`orchestrator.storage.locations`) — next to a manifest
``<key><suffix>.manifest.json`` holding its description, SHA-256 and size. The manifest is
written after the data, so an artifact exists exactly when its manifest does.

A process that needs an artifact calls :meth:`ArtifactStore.fetch` (or the
:class:`methods.artifacts.ArtifactCache` protocol methods ``find`` / ``get_or_create``):
the file is copied into this node's cache (``$DDX_CACHE/artifacts``,
:func:`methods.artifacts.node_cache`) on first use — one download per node, under the node
cache's file lock, checked against the store's SHA-256 and kept with the same manifest — so a
remote task, a Train worker or another node only ever needs the storage URI, never a path on
another machine. With local storage the file is used in place (after the same check). A node
copy that no longer matches is removed and downloaded again; a stored artifact that does not
match its manifest is an error naming it, never used.

Production is guarded by a :class:`~orchestrator.storage.leases.LeaseLock`: a small lock
object next to the artifact, holding its owner and an expiry that the owner renews while it
works. Two trials (on any nodes) that need the same artifact produce it once; the other waits
for the manifest; if the owner dies, its lease expires and a waiter takes over. The lock is
taken with a conditional write where the store has one (a local file's ``flock``, S3's
``If-None-Match``), so of two processes taking it at once exactly one wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from methods.artifacts import (
    LOCK_SUFFIX,
    MANIFEST_SUFFIX,
    CacheError,
    LocalArtifactCache,
    Produce,
    content_key,
    file_manifest,
    file_sha256,
    node_cache,
)
from orchestrator.storage.leases import LeaseLock
from orchestrator.storage.locations import (
    download_file,
    exists,
    join,
    local_path,
    read_bytes,
    upload_file,
    write_bytes_atomic,
)


def cache_root(storage: str) -> str:
    """``<storage>/cache``: the artifact store of every sweep on that storage."""
    return join(storage, "cache")


@dataclass(frozen=True)
class ArtifactRef:
    """Where one artifact lives and what it must hash to: plain data, it crosses nodes."""

    kind: str
    key: str
    suffix: str
    location: str
    sha256: str
    size: int


class ArtifactError(RuntimeError):
    """An artifact is corrupt, missing, or could not be produced."""


class ArtifactStore:
    """Content-addressed artifacts under ``root`` (a path or URI), fetched into ``local_dir``.

    Implements :class:`methods.artifacts.ArtifactCache`, so methods cache statistics and
    warm-ups through it without knowing where the storage is. ``local_dir`` (default: this
    node's cache, ``$DDX_CACHE/artifacts``) is a :class:`~methods.artifacts.LocalArtifactCache`.
    """

    def __init__(self, root: str, local_dir: str | Path | None = None, lock_ttl: float = 120.0) -> None:
        self.root = root
        self.local = LocalArtifactCache(local_dir) if local_dir is not None else node_cache()
        self.local_dir = self.local.root
        self.lock_ttl = lock_ttl

    # --- names -----------------------------------------------------------------------------
    def location(self, kind: str, key: str, suffix: str = ".pt") -> str:
        return join(self.root, kind, f"{key}{suffix}")

    def manifest_location(self, kind: str, key: str, suffix: str = ".pt") -> str:
        return join(self.root, kind, f"{key}{suffix}{MANIFEST_SUFFIX}")

    def lock(self, kind: str, key: str, suffix: str = ".pt") -> LeaseLock:
        return LeaseLock(join(self.root, kind, f"{key}{suffix}{LOCK_SUFFIX}"), ttl=self.lock_ttl)

    # --- lookup ----------------------------------------------------------------------------
    def _manifest(self, kind: str, key: str, suffix: str) -> dict[str, Any] | None:
        manifest = self.manifest_location(kind, key, suffix)
        try:
            return json.loads(read_bytes(manifest))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        except OSError:
            if not exists(manifest):
                return None
            raise

    def ref(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> ArtifactRef | None:
        """The artifact's reference if it has been produced (its manifest exists), else None."""
        key = content_key(description)
        body = self._manifest(kind, key, suffix)
        if body is None:
            return None
        return ArtifactRef(kind, key, suffix, self.location(kind, key, suffix), body["sha256"], int(body["size"]))

    def fetch(self, ref: ArtifactRef) -> Path:
        """A verified local copy of ``ref`` (downloaded into the node-local cache on first use)."""
        in_place = local_path(ref.location)
        if in_place is not None:
            problem = self.local.file_problem(in_place, ref.sha256, ref.size)
            if problem is not None:
                raise ArtifactError(
                    f"artifact {ref.kind}/{ref.key} at {in_place} does not match its manifest ({problem}); "
                    "delete it and its manifest to have it produced again"
                )
            return in_place
        found = self.local.lookup(ref.kind, ref.key, ref.suffix, sha256=ref.sha256)
        if found is not None:
            return found
        body = self._manifest(ref.kind, ref.key, ref.suffix) or {}
        try:
            return self.local.ensure(
                ref.kind,
                ref.key,
                lambda tmp: download_file(ref.location, tmp),
                description=body.get("description") or {},
                suffix=ref.suffix,
                sha256=ref.sha256,
            )
        except CacheError as e:
            raise ArtifactError(
                f"artifact {ref.kind}/{ref.key} at {ref.location} does not match its manifest; "
                "delete it and its manifest to have it produced again"
            ) from e

    # --- the methods.artifacts.ArtifactCache protocol --------------------------------------
    def find(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> Path | None:
        ref = self.ref(kind, description, suffix)
        return self.fetch(ref) if ref is not None else None

    def get_or_create(self, kind: str, description: Mapping[str, Any], produce: Produce, suffix: str = ".pt") -> Path:
        return self.fetch(self.ensure(kind, description, produce, suffix))

    # --- production --------------------------------------------------------------------------
    def ensure(self, kind: str, description: Mapping[str, Any], produce: Produce, suffix: str = ".pt") -> ArtifactRef:
        """The artifact's reference, producing it here (under the lease lock) if nobody has."""
        ref = self.ref(kind, description, suffix)
        if ref is not None:
            return ref
        key = content_key(description)
        with self.producing(kind, key, suffix) as mine:
            if mine:
                tmp = self.local_dir / kind / f".{key}{suffix}.{uuid.uuid4().hex[:8]}.tmp"
                tmp.parent.mkdir(parents=True, exist_ok=True)
                try:
                    produce(tmp)
                    return self.publish(kind, description, tmp, suffix)
                finally:
                    tmp.unlink(missing_ok=True)
        ref = self.ref(kind, description, suffix)
        if ref is None:
            raise ArtifactError(f"artifact {kind}/{key} was reported produced but has no manifest")
        return ref

    @contextlib.contextmanager
    def producing(self, kind: str, key: str, suffix: str = ".pt") -> Iterator[bool]:
        """Hold the artifact's lock while producing it; yields False when another process made it."""
        lock = self.lock(kind, key, suffix)
        manifest = self.manifest_location(kind, key, suffix)
        mine = lock.wait_or_acquire(lambda: exists(manifest))
        try:
            yield mine
        finally:
            if mine:
                lock.release()

    def publish(self, kind: str, description: Mapping[str, Any], source: Path, suffix: str = ".pt") -> ArtifactRef:
        """Upload ``source`` as the artifact, then its manifest (which makes it exist); with remote
        storage, keep ``source`` as this node's verified copy too."""
        key = content_key(description)
        manifest = file_manifest(description, source)
        ref = ArtifactRef(kind, key, suffix, self.location(kind, key, suffix), manifest["sha256"], manifest["size"])
        upload_file(source, ref.location)
        write_bytes_atomic(self.manifest_location(kind, key, suffix), json.dumps(manifest, default=str).encode())
        if local_path(ref.location) is None:
            with contextlib.suppress(OSError, CacheError):  # the artifact is stored; a copy can be fetched later
                self.local.ensure(
                    kind,
                    key,
                    lambda tmp: _link_or_copy(source, tmp),
                    description=description,
                    suffix=suffix,
                    sha256=ref.sha256,
                )
        return ref


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def ref_to_dict(ref: ArtifactRef) -> dict[str, Any]:
    return asdict(ref)


def ref_from_dict(data: Mapping[str, Any]) -> ArtifactRef:
    return ArtifactRef(**dict(data))


__all__ = [
    "ArtifactError",
    "ArtifactRef",
    "ArtifactStore",
    "LeaseLock",
    "cache_root",
    "content_key",
    "file_sha256",
    "ref_from_dict",
    "ref_to_dict",
]
