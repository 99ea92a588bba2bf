"""Datasets on a cluster: a ``dataset.root`` that is a storage URI is staged once per node.

``dataset.root`` may be a local folder (it must then exist on every node that loads the data:
a laptop, or an NFS mount) or a URI (``s3://bucket/cifar10``, ``gs://…``, with the same
query parameters as storage URIs). A process that loads a URI root copies the tree once into
the node-local cache ``$DDX_CACHE/datasets/<hash of the URI>/`` under a file lock (other
processes on the node wait for it), marks it complete, and reads it from there; later tasks
on that node reuse the copy. The dataset loaders (methods/, no storage code) only ever see a
local folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pyarrow.fs as pafs
from filelock import FileLock

from methods.artifacts import default_cache_dir
from methods.datasets.options import DatasetOptions
from orchestrator.storage.locations import filesystem, is_uri

COMPLETE_MARKER = ".ddx-staged"


def staging_dir(root: str) -> Path:
    return default_cache_dir() / "datasets" / hashlib.sha256(root.encode()).hexdigest()[:20]


def stage(root: str) -> Path:
    """A local copy of the tree at the URI ``root`` (copied once per node)."""
    target = staging_dir(root)
    marker = target / COMPLETE_MARKER
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if marker.exists():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        fs, base = filesystem(root)
        base = base.rstrip("/")
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        if not infos:
            raise FileNotFoundError(f"dataset.root {root!r} holds no files")
        for info in infos:
            if not info.is_file:
                continue
            dest = partial / info.path[len(base) :].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(info.path) as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        (target / COMPLETE_MARKER).write_text(root)
    return target


def staged(dataset: DatasetOptions) -> DatasetOptions:
    """``dataset`` with a URI ``root`` replaced by this node's staged copy (what the loaders read)."""
    if not dataset.root or not is_uri(dataset.root):
        return dataset
    return dataclasses.replace(dataset, root=str(stage(dataset.root)))


__all__ = ["stage", "staged", "staging_dir"]
