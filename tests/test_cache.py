"""The artifact store: produced once under a lease lock, fetched onto a node and verified by hash."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from orchestrator.storage.artifacts import ArtifactError, ArtifactStore, LeaseLock
from orchestrator.storage.locations import join, read_bytes, write_bytes_atomic

DESCRIPTION = {"kind": "test", "value": 1}


def _produce_counting(counter: Path, payload: bytes):
    def produce(tmp: Path) -> None:
        with open(counter, "a") as fh:
            fh.write("x")
        time.sleep(0.3)  # long enough for a racing process to find the lock taken
        tmp.write_bytes(payload)

    return produce


def test_local_store_produces_once_and_uses_the_file_in_place(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "cache"), local_dir=tmp_path / "node")
    counter = tmp_path / "count"
    first = store.get_or_create("thing", DESCRIPTION, _produce_counting(counter, b"abc"))
    again = store.get_or_create("thing", DESCRIPTION, _produce_counting(counter, b"zzz"))
    assert first == again and first.read_bytes() == b"abc" and counter.read_text() == "x"
    assert first.parent == tmp_path / "cache" / "thing"  # in place: local storage needs no copy
    manifest = json.loads(Path(str(first) + ".manifest.json").read_text())
    assert manifest["description"] == DESCRIPTION and manifest["size"] == 3
    assert store.find("thing", {**DESCRIPTION, "value": 2}) is None


def _race(root: str, node: str, counter: str) -> None:
    store = ArtifactStore(root, local_dir=node)
    path = store.get_or_create("thing", DESCRIPTION, _produce_counting(Path(counter), b"payload"))
    assert path.read_bytes() == b"payload"


def test_two_processes_produce_an_artifact_once(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_race, args=(str(tmp_path / "cache"), str(tmp_path / f"node{i}"), str(counter)))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert counter.read_text() == "x"


def test_s3_store_fetches_into_the_node_cache_and_checks_the_hash(tmp_path: Path, s3_server) -> None:
    root = join(s3_server("artifacts"), "cache")
    producer = ArtifactStore(root, local_dir=tmp_path / "head")
    ref = producer.ensure("thing", DESCRIPTION, lambda tmp: tmp.write_bytes(b"teacher weights"))
    assert ref.location.startswith("s3://artifacts/cache/thing/") and ref.size == len(b"teacher weights")

    other_node = ArtifactStore(root, local_dir=tmp_path / "worker")  # sees only the URI
    path = other_node.fetch(ref)
    assert path.parent == tmp_path / "worker" / "thing" and path.read_bytes() == b"teacher weights"
    assert other_node.find("thing", DESCRIPTION) == path

    # a corrupt local copy is detected and replaced from the storage
    path.write_bytes(b"tampered weights")
    fresh = ArtifactStore(root, local_dir=tmp_path / "worker")
    assert fresh.fetch(ref).read_bytes() == b"teacher weights"
    # a corrupt stored object is an error, never silently used
    write_bytes_atomic(ref.location, b"corrupted in storage")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        ArtifactStore(root, local_dir=tmp_path / "third").fetch(ref)


def test_lease_lock_excludes_and_expires(tmp_path: Path, s3_server) -> None:
    for base in (str(tmp_path), s3_server("locks")):
        location = join(base, "x.lock")
        a = LeaseLock(location, ttl=2.0, settle=0.05)
        b = LeaseLock(location, ttl=2.0, settle=0.05)
        assert a.try_acquire() and not b.try_acquire()
        a._stop.set()  # a holder that dies stops renewing …
        time.sleep(2.5)
        assert b.try_acquire()  # … and its lease expires: the waiter takes over
        assert json.loads(read_bytes(location))["owner"] == b.owner
        b.release()
        assert a.try_acquire()  # released: free again
        a.release()


def test_wait_or_acquire_returns_when_another_process_finished(tmp_path: Path) -> None:
    location = join(str(tmp_path), "y.lock")
    holder = LeaseLock(location, ttl=30.0)
    assert holder.try_acquire()
    done = tmp_path / "done"
    waiter = LeaseLock(location, ttl=30.0, poll=0.1)

    import threading

    threading.Timer(0.5, done.touch).start()
    assert waiter.wait_or_acquire(done.exists, timeout=10) is False  # finished by the holder: nothing to do
    holder.release()


def test_a_lease_of_a_dead_process_on_this_host_is_free_at_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    location = join(str(tmp_path), "z.lock")
    code = (
        "import sys; from orchestrator.storage.artifacts import LeaseLock; "
        f"assert LeaseLock({location!r}, ttl=600).try_acquire(); sys.exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # takes a 10-minute lease, then exits
    assert LeaseLock(location, ttl=600).try_acquire()  # its pid is gone: no need to wait for the expiry


def _fetch_together(barrier, root: str, node: str, ref: dict, counter: str) -> None:
    from orchestrator.storage import artifacts

    download = artifacts.download_file

    def counted(location: str, path: Path) -> None:
        with open(counter, "a") as fh:
            fh.write("x")
        time.sleep(0.5)
        download(location, path)

    artifacts.download_file = counted
    store = ArtifactStore(root, local_dir=node)
    barrier.wait()
    assert store.fetch(artifacts.ref_from_dict(ref)).read_bytes() == b"expert trajectories"


def test_node_copies_are_node_cache_entries_downloaded_once_per_node(tmp_path: Path, s3_server) -> None:
    """The store's node-local copies are entries of the node cache: one download per node (its file
    lock), the store's manifest kept beside the copy, a damaged copy downloaded again."""
    from methods.artifacts import LocalArtifactCache
    from orchestrator.storage.artifacts import ref_to_dict

    root = join(s3_server("copies"), "cache")
    ref = ArtifactStore(root, local_dir=tmp_path / "head").ensure(
        "experts", DESCRIPTION, lambda t: t.write_bytes(b"expert trajectories")
    )
    counter = tmp_path / "downloads"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(
            target=_fetch_together, args=(barrier, root, str(tmp_path / "worker"), ref_to_dict(ref), str(counter))
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert counter.read_text() == "x"  # two processes of one node: one download
    copy = tmp_path / "worker" / "experts" / f"{ref.key}.pt"
    local = json.loads(Path(str(copy) + ".manifest.json").read_text())
    stored = json.loads(read_bytes(ArtifactStore(root).manifest_location("experts", ref.key)))
    assert {k: local[k] for k in ("description", "sha256", "size")} == {
        k: stored[k] for k in ("description", "sha256", "size")
    }
    assert LocalArtifactCache(tmp_path / "worker").find("experts", DESCRIPTION) == copy  # the same mechanism
    copy.write_bytes(b"expert traj")  # cut short on the node: downloaded again, not used
    assert ArtifactStore(root, local_dir=tmp_path / "worker").fetch(ref).read_bytes() == b"expert trajectories"
