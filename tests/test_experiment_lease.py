"""One sweep at a time per experiment: the lease a running sweep holds (orchestrator.sweep.resume)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cluster.processes import process_start
from orchestrator.errors import UserError
from orchestrator.spec.load import parse_spec
from orchestrator.storage.artifacts import LeaseLock
from orchestrator.sweep.resume import LEASE_FILE, check_resume, hold_experiment
from tests.helpers import cli, tiny_digits_spec, write_spec


def _spec(tmp_path: Path):
    return parse_spec(tiny_digits_spec(tmp_path / "store"))


def _held_by(exp: Path, **over) -> dict:
    """A lease as another sweep (by default: this test process, alive) would have written it."""
    lease = {
        "owner": f"{socket.gethostname()}:{os.getpid()}:another",
        "pid_start": process_start(os.getpid()),
        "since": time.time() - 60,
        "expires": time.time() + 60,
        **over,
    }
    exp.mkdir(parents=True, exist_ok=True)
    (exp / LEASE_FILE).write_text(json.dumps(lease))
    return lease


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stored(exp: Path) -> dict:
    return json.loads((exp / LEASE_FILE).read_text())


def test_a_second_sweep_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    exp = Path(spec.experiment_dir())
    first = hold_experiment(spec)
    try:
        assert _stored(exp)["owner"] == first.lock.owner and _stored(exp)["pid_start"] == process_start(os.getpid())
        busy = rf"^{exp}: another ddx sweep is running this experiment \(process {os.getpid()} on "
        with pytest.raises(UserError, match=busy):
            hold_experiment(spec)
    finally:
        first.release()
    assert not (exp / LEASE_FILE).exists()
    hold_experiment(spec).release()  # free now
    assert not (tmp_path / "store").exists()  # the folders the lease made held nothing else: removed


def test_releasing_keeps_what_the_sweep_wrote_and_folders_that_were_there(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    exp = Path(spec.experiment_dir())
    lease = hold_experiment(spec)
    (exp / "spec.json").write_text("{}")
    lease.release()
    assert sorted(p.name for p in exp.iterdir()) == ["spec.json"]
    (exp / "spec.json").unlink()  # an empty experiment folder that was there before: left alone
    hold_experiment(spec).release()
    assert exp.is_dir()


@pytest.mark.parametrize(
    "over",
    [
        {"expires": time.time() - 1},  # not renewed in time: killed, or its machine lost
        {"owner": f"{socket.gethostname()}:{_dead_pid()}:x"},  # this host, its process gone (SIGKILL)
        {"pid_start": -1},  # this host, its process id now a later process's
        {"expires": "soon"},  # not a lease ddx wrote
    ],
    ids=["expired", "dead process", "reused pid", "garbled"],
)
def test_a_dead_lease_is_taken_over(tmp_path: Path, over: dict) -> None:
    spec = _spec(tmp_path)
    _held_by(Path(spec.experiment_dir()), **over)
    taker = hold_experiment(spec)
    assert _stored(Path(spec.experiment_dir()))["owner"] == taker.lock.owner
    taker.release()


def test_a_lease_from_another_host_holds_until_it_expires(tmp_path: Path) -> None:
    location = str(tmp_path / LEASE_FILE)
    _held_by(tmp_path, owner=f"elsewhere:{_dead_pid()}:x", expires=time.time() + 1.0)  # its pid means nothing here
    waiter = LeaseLock(location, ttl=5)
    assert waiter.holder() is not None and not waiter.try_acquire()
    time.sleep(1.2)
    assert waiter.try_acquire()
    waiter.release()


def test_fresh_keeps_the_deleting_sweeps_lease_and_a_lone_lease_is_not_foreign(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    exp = Path(spec.experiment_dir())
    mine = hold_experiment(spec)
    try:
        assert check_resume(spec, fresh=False) is False  # only a lease there: a new experiment, not a stranger's folder
        (exp / "spec.json").write_text("{}")
        (exp / "rows").mkdir()
        (exp / "rows" / "a.parquet").write_bytes(b"x")
        check_resume(spec, fresh=True)
        assert sorted(p.name for p in exp.iterdir()) == [LEASE_FILE]
        assert _stored(exp)["owner"] == mine.lock.owner
    finally:
        mine.release()


def test_ddx_sweep_while_another_runs_is_one_line_exit_2_and_touches_nothing(tmp_path: Path) -> None:
    """Two sweeps of one experiment each did all the work; a --fresh one deleted the other's files."""
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
    exp = tmp_path / "store" / "tiny"
    held = _held_by(exp)  # this test process plays the running sweep
    (exp / "spec.json").write_text("{}")  # … which has written its spec (a --fresh would delete it)
    for args in ([], ["--fresh"]):
        res = cli("sweep", str(spec), *args)
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {exp}: another ddx sweep is running"), res.stderr
        assert sorted(p.name for p in exp.iterdir()) == [LEASE_FILE, "spec.json"]
        assert _stored(exp) == held
