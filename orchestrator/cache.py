"""Content-addressed artifact cache (teachers, full-data references, warm-ups, statistics).

An artifact is named by the SHA-256 of a canonical JSON description of everything that
determines it, so every trial of a sweep — and every later sweep on the same storage —
reuses it. Creation holds a file lock (concurrent trials wait instead of duplicating the
work) and writes through a temporary file renamed into place, so a reader never sees half
an artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from orchestrator.spec import SweepSpec


def content_key(description: dict[str, Any]) -> str:
    """SHA-256 (24 hex digits) of ``description`` as canonical JSON."""
    body = json.dumps(description, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:24]


def cache_root(spec: SweepSpec) -> Path:
    """``<storage>/cache`` for local storage (shared by every sweep there); ``$DDX_CACHE`` for URIs."""
    if "://" in spec.storage:
        return Path(os.environ.get("DDX_CACHE", Path.home() / ".cache" / "ddx"))
    return Path(spec.storage) / "cache"


class ArtifactCache:
    """Files under ``root/<kind>/<key><suffix>``, created at most once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, description: dict[str, Any], suffix: str = ".pt") -> Path:
        return self.root / kind / f"{content_key(description)}{suffix}"

    def get_or_create(
        self,
        kind: str,
        description: dict[str, Any],
        produce: Callable[[Path], None],
        suffix: str = ".pt",
    ) -> Path:
        """Return the artifact's path, calling ``produce(tmp_path)`` under a lock if it is missing."""
        target = self.path(kind, description, suffix)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if target.exists():  # another process made it while we waited
                return target
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                produce(tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            (target.parent / f"{target.stem}.json").write_text(json.dumps(description, indent=2, default=str))
        return target
