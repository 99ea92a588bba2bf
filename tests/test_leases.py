"""Leases are atomic: of several processes that take one lease at the same moment, exactly one wins.

The conditional writes beneath (:mod:`orchestrator.storage.conditional`) on a local folder and
on S3; a holder taken over finds out and deletes nothing of the new holder's; a store without
conditional writes falls back with one warning line.

The race: four real processes contend for one lease, round after round, each round starting at the same
timestamp in every process. In even rounds the winner releases the lease before the next
round (the next round *creates* it); in odd rounds the winner stops renewing and its short
lease expires before the next round (the next round *takes over* an expired lease, which is
a conditional overwrite of the version every contender read). Each process writes what it did
each round into its own file; every round must have exactly one winner. On a local folder
(``flock``) and on moto's S3 server (conditional requests; ``tests/moto_serial.py`` makes moto
decide them atomically, as S3 does).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.storage import leases
from orchestrator.storage.conditional import LocalFiles
from orchestrator.storage.leases import LeaseLock, conditional_store
from orchestrator.storage.locations import join, read_bytes
from orchestrator.storage.s3_conditional import S3Objects

PROCESSES = 4
ROUNDS = 50
#: a process tries only within this fraction of the round after its start: a lease taken then
#: (``ttl = period / 2`` in odd rounds) is live for every attempt of its round and has lapsed
#: before the next round begins
WINDOW = 0.2


def _contend(location: str, out: str, index: int, period: float, ready, go, start) -> None:
    """One contender: in each round, one attempt at ``start + round × period``; writes
    ``round outcome`` lines (won, lost, or late when this process missed the round's window)."""
    long_lease = LeaseLock(location, ttl=60.0)
    long_lease.store  # noqa: B018  choose the store (S3: the probe) before the first round
    ready.wait()
    go.wait()
    t0 = start.value
    lines = []
    for r in range(ROUNDS):
        begin = t0 + r * period
        time.sleep(max(0.0, begin - time.time()))
        if time.time() > begin + WINDOW * period:  # this process was not scheduled in time: sit the round out
            lines.append(f"{r} late {time.time() - begin:.3f}")
            continue
        expiring = r % 2 == 1
        lock = LeaseLock(location, ttl=0.5 * period) if expiring else long_lease
        tried = time.time()
        won = lock.try_acquire()
        lines.append(f"{r} {'won' if won else 'lost'} {tried - begin:.3f} {time.time() - begin:.3f}")
        if not won:
            continue
        if expiring:  # the holder stops renewing (as a dead one would): the lease lapses before the next round
            lock._stop.set()
            continue
        time.sleep(max(0.0, begin + 0.6 * period - time.time()))
        lock.release()
    Path(out, f"{index}.txt").write_text("\n".join(lines) + "\n")


def _race(location: str, out: Path, period: float) -> dict[int, Counter]:
    """Run the contenders; what each round saw (outcome → number of processes)."""
    ctx = mp.get_context("spawn")
    ready, go = ctx.Barrier(PROCESSES + 1), ctx.Barrier(PROCESSES + 1)
    start = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(target=_contend, args=(location, str(out), i, period, ready, go, start)) for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        ready.wait(timeout=120)
        start.value = time.time() + 0.5
        go.wait(timeout=30)
        for p in procs:
            p.join(timeout=ROUNDS * period + 60)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    rounds: dict[int, Counter] = {r: Counter() for r in range(ROUNDS)}
    for i in range(PROCESSES):
        for line in (out / f"{i}.txt").read_text().splitlines():
            r, outcome, *_ = line.split()
            rounds[int(r)][outcome] += 1
    return rounds


def _check(rounds: dict[int, Counter]) -> None:
    bad = {r: dict(c) for r, c in rounds.items() if c["won"] != 1}
    assert not bad, f"rounds without exactly one winner: {bad}"
    contended = sum(c["won"] + c["lost"] >= 2 for c in rounds.values())
    assert contended >= 0.8 * ROUNDS, rounds  # a real race: most rounds had several takers at once


def test_one_winner_per_round_on_a_local_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _check(_race(str(tmp_path / "store" / "x.lock"), out, period=0.3))


@pytest.mark.slow
def test_one_winner_per_round_on_s3(tmp_path: Path, s3_server) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _check(_race(join(s3_server("race"), "exp", "running.json"), out, period=0.5))


# --- the pieces ------------------------------------------------------------------------------------
@pytest.fixture
def stores(tmp_path: Path, s3_server) -> dict[str, str]:
    """A lock location on a local folder and one on S3."""
    return {"local": str(tmp_path / "locks" / "a.lock"), "s3": join(s3_server("conditional"), "locks", "a.lock")}


def test_each_store_gets_its_atomic_mechanism(stores: dict[str, str]) -> None:
    assert isinstance(conditional_store(stores["local"]), LocalFiles)
    s3 = conditional_store(stores["s3"])
    assert isinstance(s3, S3Objects) and s3.conditional_delete  # moto honours If-Match on DeleteObject too


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_create_replace_and_delete_happen_only_at_the_version_read(stores: dict[str, str], kind: str) -> None:
    location = stores[kind]
    store = conditional_store(location)
    assert store.read(location) is None
    v1 = store.create(location, b"one")
    assert v1 is not None and store.create(location, b"two") is None  # there already
    assert store.read(location).data == b"one"
    assert store.replace(location, b"three", "not-the-version") is None
    v2 = store.replace(location, b"three", v1)
    assert v2 is not None and v2 != v1 and store.replace(location, b"four", v1) is None  # v1 is gone
    assert store.read(location).data == b"three" and store.read(location).version == v2
    assert not store.delete(location, v1) and store.read(location) is not None
    assert store.delete(location, v2) and store.read(location) is None
    assert store.replace(location, b"five", v2) is None and not store.delete(location, v2)  # nothing there


def test_an_empty_local_lock_file_is_free(tmp_path: Path) -> None:
    """A process that died between creating the file and writing it left an empty file."""
    location = tmp_path / "b.lock"
    location.write_bytes(b"")
    lock = LeaseLock(str(location), ttl=30)
    assert lock.try_acquire() and json.loads(location.read_text())["owner"] == lock.owner
    lock.release()
    assert not location.exists()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_holder_taken_over_finds_out_at_its_renewal_and_deletes_nothing(stores: dict[str, str], kind: str) -> None:
    location = stores[kind]
    paused = LeaseLock(location, ttl=1.0)
    assert paused.try_acquire()
    paused._stop.set()  # paused (not dead: its process lives) for longer than its lease
    time.sleep(1.2)
    taker = LeaseLock(location, ttl=30.0)
    assert taker.try_acquire()
    paused._stop.clear()
    assert paused._renew() is False  # its renewal is conditional on its own version: refused
    paused.release()
    assert json.loads(read_bytes(location))["owner"] == taker.owner  # the taker's lease stays
    assert taker._renew() is True
    taker.release()
    assert conditional_store(location).read(location) is None


def test_a_write_whose_answer_was_lost_still_counts(tmp_path: Path, monkeypatch) -> None:
    """A create that landed but was reported failed (a retried request finds its own object)."""
    location = str(tmp_path / "c.lock")
    create = LocalFiles.create
    monkeypatch.setattr(LocalFiles, "create", lambda self, loc, data: create(self, loc, data) and None)
    lock = LeaseLock(location, ttl=30)
    assert lock.try_acquire() and json.loads(read_bytes(location))["owner"] == lock.owner
    assert not LeaseLock(location, ttl=30).try_acquire()
    lock.release()


def test_a_store_without_conditional_writes_warns_once_and_still_locks(monkeypatch, capsys) -> None:
    monkeypatch.setattr(leases, "_chosen", {})
    location = "mock:///locks/d.lock"
    a, b = LeaseLock(location, ttl=30, settle=0.01), LeaseLock(location, ttl=30, settle=0.01)
    assert a.try_acquire() and not b.try_acquire()
    a.release()
    assert b.try_acquire()
    b.release()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "warning mock://: leases are not atomic here (ddx has no conditional writes for mock); two processes that "
        "take the same lease within a second may both win"
    ]


def test_s3_without_botocore_falls_back_with_one_line(s3_server, monkeypatch, capsys) -> None:
    monkeypatch.setattr(leases, "_chosen", {})
    monkeypatch.setitem(sys.modules, "botocore", None)  # not installed: importing it fails
    location = join(s3_server("nobotocore"), "e.lock")
    lock = LeaseLock(location, ttl=30, settle=0.05)
    assert lock.try_acquire()
    lock.release()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning s3://nobotocore?endpoint_override=") and line.endswith(
        ": leases are not atomic here (botocore is not installed (pip install 'ddx[s3]')); two processes that "
        "take the same lease within a second may both win"
    )
