"""Provenance columns: code version, package versions, timestamps."""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from orchestrator import __version__


@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe`` of the checkout ddx runs from (``+dirty`` when modified), else the version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def _package_version(name: str) -> str:
    """An installed package's version from its metadata (no import: the sweep driver stays torch-free)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    return {
        "code_version": code_version(),
        "ddx_version": __version__,
        "torch_version": _package_version("torch"),
        "ray_version": _package_version("ray"),
    }


def node_columns() -> dict[str, str | None]:
    """Where this process runs (row provenance): the Ray node id (None outside Ray) and the hostname."""
    import ray

    node_id = None
    if ray.is_initialized():  # outside Ray, asking would start one (or join another user's, found in /tmp/ray)
        try:
            node_id = ray.get_runtime_context().get_node_id()
        except Exception:  # not inside a Ray worker
            node_id = None
    return {"node_id": node_id, "hostname": socket.gethostname()}


def now() -> datetime:
    return datetime.now(timezone.utc)
