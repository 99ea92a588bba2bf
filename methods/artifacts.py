"""Artifacts: anything produced once and reused (teachers, expert trajectories, statistics, warm-ups).

An artifact is named by the SHA-256 of a canonical JSON description of everything that
determines it (:func:`content_key`), so every trial of a sweep — and every later sweep on
the same storage — finds the same one. Methods only see the :class:`ArtifactCache`
protocol: ``get_or_create(kind, description, produce)`` returns a **local** path to a
complete, verified copy, calling ``produce(tmp_path)`` at most once across every process
that shares the cache.

:class:`LocalArtifactCache` keeps artifacts in one local directory (benchmarks, notebooks,
single-machine use). The orchestrator supplies a cache backed by the sweep's storage URI
(local path, ``s3://``, ``gs://``…) that fetches into a node-local directory, so nothing
crosses a node as a local path (``orchestrator/storage/artifacts.py``). This module imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from methods.atomic import atomic_path

Produce = Callable[[Path], None]


def content_key(description: Mapping[str, Any]) -> str:
    """SHA-256 (24 hex digits) of ``description`` as canonical JSON."""
    body = json.dumps(description, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:24]


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
    """Files under ``root/<kind>/<key><suffix>``, created at most once (file lock + atomic rename)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir() / "artifacts"

    def path(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> Path:
        return self.root / kind / f"{content_key(description)}{suffix}"

    def find(self, kind: str, description: Mapping[str, Any], suffix: str = ".pt") -> Path | None:
        target = self.path(kind, description, suffix)
        return target if target.exists() else None

    def get_or_create(self, kind: str, description: Mapping[str, Any], produce: Produce, suffix: str = ".pt") -> Path:
        from filelock import FileLock

        target = self.path(kind, description, suffix)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if target.exists():  # another process made it while we waited
                return target
            with atomic_path(target) as tmp:
                produce(tmp)
            (target.parent / f"{target.stem}.json").write_text(json.dumps(dict(description), indent=2, default=str))
        return target


__all__ = ["ArtifactCache", "LocalArtifactCache", "Produce", "content_key", "default_cache_dir"]
