"""One node-local cache for everything produced once: locked (produced once per node), atomic,
verified against its manifest (a corrupt or partial entry is produced again, never used).

Every cache of a node goes through :class:`methods.artifacts.LocalArtifactCache`: methods'
artifacts, the store's node copies, decoded images, ZCA fits and staged dataset trees.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from methods.artifacts import MANIFEST_SUFFIX, LocalArtifactCache, content_key, file_sha256, node_cache

# the processes these tests spawn import this module: torch, numpy and pyarrow are imported where used

DESCRIPTION = {"kind": "test", "value": 1}
SPAWN = mp.get_context("spawn")


def _count(counter: Path) -> None:
    with open(counter, "a") as fh:
        fh.write("x")


def _produce_file(counter: Path, payload: bytes, pause: float = 0.0):
    def produce(tmp: Path) -> None:
        _count(counter)
        time.sleep(pause)  # long enough for a racing process to find the entry being produced
        tmp.write_bytes(payload)

    return produce


def _produce_tree(counter: Path, files: dict[str, bytes], pause: float = 0.0):
    def produce(tmp: Path) -> None:
        _count(counter)
        time.sleep(pause)
        for rel, body in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(body)

    return produce


TREE = {"train/a/0.jpg": b"first image", "train/b/1.jpg": b"second", "test/a/2.jpg": b"third image!"}


def _run_together(target, args_of: list[tuple[Any, ...]]) -> None:
    """Start one spawned process per ``args`` and let them all call ``target`` at the same moment."""
    barrier = SPAWN.Barrier(len(args_of))
    procs = [SPAWN.Process(target=target, args=(barrier, *args)) for args in args_of]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    # each child asserted what it got back; the callers assert how often it was produced


def _race_file(barrier, root: str, counter: str) -> None:
    cache = LocalArtifactCache(root)
    barrier.wait()
    path = cache.get_or_create("thing", DESCRIPTION, _produce_file(Path(counter), b"payload", pause=0.5))
    assert path.read_bytes() == b"payload"


def _race_tree(barrier, root: str, counter: str) -> None:
    cache = LocalArtifactCache(root)
    barrier.wait()
    path = cache.get_or_create_tree("tree", DESCRIPTION, _produce_tree(Path(counter), TREE, pause=0.5))
    assert {rel: (path / rel).read_bytes() for rel in TREE} == TREE


def test_two_processes_produce_a_file_entry_once_and_its_manifest_describes_it(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    _run_together(_race_file, [(str(tmp_path / "cache"), str(counter))] * 2)
    assert counter.read_text() == "x"
    entry = tmp_path / "cache" / "thing" / f"{content_key(DESCRIPTION)}.pt"
    manifest = json.loads(Path(str(entry) + MANIFEST_SUFFIX).read_text())
    assert manifest["description"] == DESCRIPTION
    assert manifest["sha256"] == file_sha256(entry) and manifest["size"] == len(b"payload")
    assert abs(manifest["created_at"] - time.time()) < 600
    assert not list((tmp_path / "cache" / "thing").glob("*.tmp"))  # nothing half-written left behind


def test_two_processes_produce_a_tree_entry_once_and_its_manifest_lists_every_file(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    _run_together(_race_tree, [(str(tmp_path / "cache"), str(counter))] * 2)
    assert counter.read_text() == "x"
    entry = tmp_path / "cache" / "tree" / content_key(DESCRIPTION)
    manifest = json.loads(Path(str(entry) + MANIFEST_SUFFIX).read_text())
    assert manifest["files"] == {rel: len(body) for rel, body in TREE.items()}
    assert manifest["size"] == sum(len(b) for b in TREE.values()) and manifest["description"] == DESCRIPTION


def _flip_a_byte(path: Path) -> None:
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0xFF
    path.write_bytes(bytes(body))


@pytest.mark.parametrize(
    "damage",
    [
        _flip_a_byte,
        lambda p: p.write_bytes(p.read_bytes()[:3]),  # truncated
        lambda p: p.unlink(),  # the data is gone
        lambda p: Path(str(p) + MANIFEST_SUFFIX).unlink(),  # partial: data without a manifest
        lambda p: Path(str(p) + MANIFEST_SUFFIX).write_text("{not json"),
    ],
    ids=["flipped", "truncated", "missing", "no-manifest", "bad-manifest"],
)
def test_a_damaged_file_entry_is_removed_and_produced_again(tmp_path: Path, damage) -> None:
    counter = tmp_path / "count"
    made = LocalArtifactCache(tmp_path).get_or_create("thing", DESCRIPTION, _produce_file(counter, b"the weights"))
    damage(made)
    fresh = LocalArtifactCache(tmp_path)  # as another process would: nothing verified yet
    assert fresh.find("thing", DESCRIPTION) is None  # never handed out…
    assert not made.exists() and not Path(str(made) + MANIFEST_SUFFIX).exists()  # …and removed
    again = fresh.get_or_create("thing", DESCRIPTION, _produce_file(counter, b"the weights"))
    assert again == made and again.read_bytes() == b"the weights" and counter.read_text() == "xx"
    assert LocalArtifactCache(tmp_path).find("thing", DESCRIPTION) == made


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: (t / "train/b/1.jpg").unlink(),
        lambda t: (t / "test/a/2.jpg").write_bytes(b"thi"),  # cut short
        lambda t: Path(str(t) + MANIFEST_SUFFIX).unlink(),  # a copy that never finished
    ],
    ids=["missing-file", "truncated-file", "no-manifest"],
)
def test_a_damaged_tree_is_produced_again(tmp_path: Path, damage) -> None:
    counter = tmp_path / "count"
    cache = LocalArtifactCache(tmp_path)
    tree = cache.get_or_create_tree("tree", DESCRIPTION, _produce_tree(counter, TREE))
    assert cache.get_or_create_tree("tree", DESCRIPTION, _produce_tree(counter, TREE)) == tree
    assert counter.read_text() == "x"  # intact: reused
    damage(tree)
    fresh = LocalArtifactCache(tmp_path)  # as another process would: nothing checked yet
    assert fresh.find_tree("tree", DESCRIPTION) is None and not tree.exists()
    again = fresh.get_or_create_tree("tree", DESCRIPTION, _produce_tree(counter, TREE))
    assert again == tree and counter.read_text() == "xx"
    assert {rel: (tree / rel).read_bytes() for rel in TREE} == TREE


def test_a_failed_production_leaves_nothing_and_the_next_call_produces(tmp_path: Path) -> None:
    cache = LocalArtifactCache(tmp_path)

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.get_or_create("thing", DESCRIPTION, broken)
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_create_tree("tree", DESCRIPTION, lambda tmp: broken(tmp / "f"))
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == [] and cache.find("thing", DESCRIPTION) is None
    path = cache.get_or_create("thing", DESCRIPTION, lambda tmp: tmp.write_bytes(b"whole"))
    assert path.read_bytes() == b"whole"


# --- the caches built on it ----------------------------------------------------------------------


def _image_tree(root: Path, per_class: int) -> list[tuple[str, int]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    samples = []
    for label in range(2):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            path = folder / f"{i}.png"
            Image.fromarray((rng.random((9, 9, 3)) * 255).astype(np.uint8)).save(path)
            samples.append((str(path), label))
    return samples


def _race_decode(barrier, samples: list[tuple[str, int]], cache_dir: str, counter: str) -> None:
    import numpy as np

    from methods.datasets import folders

    decode = folders._decode

    def counted(path: str, resolution: int | None, channels: int) -> np.ndarray:
        _count(Path(counter))
        time.sleep(0.1)
        return decode(path, resolution, channels)

    folders._decode = counted
    barrier.wait()
    x, y = folders.decode_samples(samples, 8, 3, Path(cache_dir))
    assert x.shape == (len(samples), 3, 8, 8) and y.tolist() == [label for _, label in samples]
    np.save(Path(counter).with_name(f"x-{id(x)}-{time.monotonic_ns()}.npy"), x.numpy())


def test_two_processes_decoding_the_same_folder_decode_it_once(tmp_path: Path) -> None:
    import numpy as np

    samples = _image_tree(tmp_path / "data", per_class=4)
    counter = tmp_path / "out" / "decoded"
    counter.parent.mkdir()
    _run_together(_race_decode, [(samples, str(tmp_path / "cache"), str(counter))] * 2)
    assert counter.read_text() == "x" * len(samples)  # every image decoded once, not once per process
    first, second = (np.load(p) for p in sorted(counter.parent.glob("x-*.npy")))
    assert np.array_equal(first, second)  # the waiter read what the other decoded
    [cached] = (tmp_path / "cache" / "decoded").glob("*.npz")
    assert json.loads(Path(str(cached) + MANIFEST_SUFFIX).read_text())["sha256"] == file_sha256(cached)


def test_a_corrupt_decoded_file_is_decoded_again_not_loaded(tmp_path: Path) -> None:
    import numpy as np
    import torch

    from methods.datasets.folders import decode_samples

    samples = _image_tree(tmp_path / "data", per_class=2)
    x, _ = decode_samples(samples, None, 3, tmp_path / "cache")
    [cached] = (tmp_path / "cache" / "decoded").glob("*.npz")
    _flip_a_byte(cached)
    again, _ = decode_samples(samples, None, 3, tmp_path / "cache")
    assert torch.equal(again, x)
    with np.load(cached) as z:  # the file was written anew
        assert np.array_equal(z["x"], x.numpy())


def test_a_corrupt_zca_fit_is_fitted_again(tmp_path: Path) -> None:
    import torch

    from methods.datasets.zca import fit_zca

    x = torch.randn(40, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    first, cached = fit_zca(x, 0.1, tmp_path)
    assert not cached and fit_zca(x, 0.1, tmp_path)[1]  # cached…
    [path] = (tmp_path / "zca").glob("*.pt")
    path.write_bytes(path.read_bytes()[:100])  # …then cut short
    refit, cached = fit_zca(x, 0.1, tmp_path)
    assert not cached and torch.equal(refit.transform_matrix, first.transform_matrix)
    assert fit_zca(x, 0.1, tmp_path)[1]


def test_a_corrupt_neural_field_warmup_is_fitted_again(tmp_path: Path, monkeypatch) -> None:
    import torch

    from methods.parameterizations.neural_field import WARMUP_KIND
    from tests.test_neural_field import make_field

    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    assert node_cache().root == tmp_path / "artifacts"  # no cache given: this node's cache
    first = make_field(width=4, res=8, warmup_iterations=3)
    images = torch.randn(first.num_instances, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    first.init_from_real(images)
    [path] = (tmp_path / "artifacts" / WARMUP_KIND).glob("*.pt")
    assert Path(str(path) + MANIFEST_SUFFIX).exists()
    loaded = make_field(width=4, res=8, warmup_iterations=3)
    loaded.init_from_real(images)
    assert loaded.warmup_cached is True
    _flip_a_byte(path)
    refitted = make_field(width=4, res=8, warmup_iterations=3)
    refitted.init_from_real(images)
    assert refitted.warmup_cached is False
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, refitted.state_dict()[k]), k


def _race_stage(barrier, root: str, cache: str, counter: str) -> None:
    import os

    os.environ["DDX_CACHE"] = cache
    from orchestrator.storage import staging

    copy = staging._copy_tree

    def counted(uri: str, dest: Path) -> None:
        _count(Path(counter))
        time.sleep(0.5)
        copy(uri, dest)

    staging._copy_tree = counted
    barrier.wait()
    tree = staging.stage(root)
    assert {rel: (tree / rel).read_bytes() for rel in TREE} == TREE


def _source_tree(base: Path) -> str:
    for rel, body in TREE.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(body)
    return f"file://{base}"


def test_two_processes_stage_a_uri_root_once(tmp_path: Path) -> None:
    root = _source_tree(tmp_path / "remote")
    counter = tmp_path / "count"
    _run_together(_race_stage, [(root, str(tmp_path / "cache"), str(counter))] * 2)
    assert counter.read_text() == "x"


def test_staging_a_uri_root_restores_a_missing_file(tmp_path: Path, monkeypatch) -> None:
    from orchestrator.storage.staging import stage, staging_dir

    monkeypatch.setenv("DDX_CACHE", str(tmp_path / "cache"))
    root = _source_tree(tmp_path / "remote")
    tree = stage(root)
    assert tree == staging_dir(root) and tree.parent == tmp_path / "cache" / "datasets"
    assert json.loads(Path(str(tree) + MANIFEST_SUFFIX).read_text())["description"] == {"root": root}
    (tree / "train/a/0.jpg").unlink()
    code = f"from orchestrator.storage.staging import stage; print(stage({root!r}))"  # the next task's process
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tree) and (tree / "train/a/0.jpg").read_bytes() == TREE["train/a/0.jpg"]


def test_staging_from_s3_copies_the_tree_and_the_dataset_loads_from_it(tmp_path: Path, s3_server, monkeypatch) -> None:
    from methods.datasets import DatasetOptions, load_dataset
    from orchestrator.storage.locations import join, upload_file
    from orchestrator.storage.staging import staged

    monkeypatch.setenv("DDX_CACHE", str(tmp_path / "cache"))
    local = tmp_path / "images"
    for split, n in (("train", 3), ("test", 2)):
        _image_tree(local / split, per_class=n)
    root = join(s3_server("data"), "tiny")
    for path in sorted(p for p in local.rglob("*.png")):
        upload_file(path, join(root, *path.relative_to(local).parts))
    opts = staged(DatasetOptions(name="imagefolder", root=root, val_per_class=1, cache_dir=str(tmp_path / "cache")))
    assert Path(opts.root).parent == tmp_path / "cache" / "datasets"
    data = load_dataset(opts)
    assert data.train_x.shape == (4, 3, 9, 9) and data.test_x.shape == (4, 3, 9, 9)
    assert staged(DatasetOptions(name="imagefolder", root=root)).root == opts.root  # once per node
