"""Datasets on a cluster: a ``dataset.root`` that is a storage URI is staged once per node.

``dataset.root`` may be a local folder (it must then exist on every node that loads the data:
a laptop, or an NFS mount) or a URI (``s3://bucket/cifar10``, ``gs://…``, with the same
query parameters as storage URIs). A process that loads a URI root gets the tree from the
node's cache (:class:`methods.artifacts.LocalArtifactCache`, kind ``datasets``, described by
the URI): the first process of a node copies it into ``$DDX_CACHE/datasets/<key>/`` under the
entry's file lock (the others wait for it) and writes its manifest (every file's size); each
process checks the copy against that manifest once, the first time it stages the URI (the
check stats every file), and a copy with a file missing or cut short is copied again. The
dataset loaders (methods/, no storage code) only ever see a local folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.fs as pafs

from methods.artifacts import LocalArtifactCache, content_key, default_cache_dir
from methods.datasets.options import DatasetOptions
from orchestrator.storage.locations import filesystem, is_uri

#: the kind (folder of ``$DDX_CACHE``) of staged dataset trees
STAGING_KIND = "datasets"


def staging_description(root: str) -> dict[str, str]:
    """What determines a staged tree: its URI (a tree is staged once; a changed one needs a new URI)."""
    return {"root": root}


def staging_dir(root: str) -> Path:
    """Where this node keeps the tree of the URI ``root``."""
    return default_cache_dir() / STAGING_KIND / content_key(staging_description(root))


def _copy_tree(root: str, dest: Path) -> None:
    fs, base = filesystem(root)
    base = base.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    if not infos:
        raise FileNotFoundError(f"dataset.root {root!r} holds no files")
    for info in infos:
        if not info.is_file:
            continue
        out_path = dest / info.path[len(base) :].lstrip("/")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(out_path, "wb") as out:
            while chunk := src.read(1 << 22):
                out.write(chunk)


_caches: dict[Path, LocalArtifactCache] = {}  # one per cache folder and process: a tree is checked once per process


def stage(root: str) -> Path:
    """A verified local copy of the tree at the URI ``root`` (copied once per node, checked once per process)."""
    folder = default_cache_dir()
    cache = _caches.setdefault(folder, LocalArtifactCache(folder))
    return cache.get_or_create_tree(STAGING_KIND, staging_description(root), lambda tmp: _copy_tree(root, tmp))


def staged(dataset: DatasetOptions) -> DatasetOptions:
    """``dataset`` with a URI ``root`` replaced by this node's staged copy (what the loaders read)."""
    if not dataset.root or not is_uri(dataset.root):
        return dataset
    return dataclasses.replace(dataset, root=str(stage(dataset.root)))


__all__ = ["STAGING_KIND", "stage", "staged", "staging_description", "staging_dir"]
