"""``ddx up`` / ``ddx down``: a local Ray kept between commands, used by sweeps without --address."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cluster import local_ray
from orchestrator.errors import UserError
from tests.helpers import closed_port, ddx, tiny_digits_spec, write_spec

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``$DDX_CACHE`` of this test's own: where the record of ``ddx up`` lives."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DDX_CACHE", str(cache))
    return cache


def _record(cache: Path, pid: int, address: str) -> Path:
    path = cache / local_ray.STATE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = local_ray.LocalRay(address=address, pid=pid, cpus=2, auth_mode="token", log="-", started="now")
    path.write_text(json.dumps(kept.__dict__))
    return path


def _group_members(pgid: int) -> list[str]:
    """Names of the live (not zombie) processes of a process group."""
    out = subprocess.run(["ps", "-eo", "pgid=,stat=,comm="], capture_output=True, text=True, check=True).stdout
    return [f[2] for f in (line.split(None, 2) for line in out.splitlines()) if int(f[0]) == pgid and "Z" not in f[1]]


def test_a_record_whose_processes_are_gone_is_forgotten(own_cache: Path) -> None:
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    path = _record(own_cache, gone.pid, f"127.0.0.1:{closed_port()}")
    assert local_ray.running() is None and not path.exists()
    assert local_ray.prepare_client() is None


def test_a_live_record_that_does_not_answer_names_ddx_down_which_stops_its_group(own_cache: Path) -> None:
    group = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        path = _record(own_cache, group.pid, f"127.0.0.1:{closed_port()}")
        with pytest.raises(UserError) as err:
            local_ray.running()
        assert "ddx down" in str(err.value) and str(group.pid) in str(err.value) and "\n" not in str(err.value)
        stopped = local_ray.down()
        assert stopped is not None and stopped.pid == group.pid
        assert _group_members(group.pid) == [] and not path.exists()  # stopped, and forgotten
        assert local_ray.down() is None
    finally:
        group.kill()


def test_an_unreadable_record_is_one_line_naming_the_file(own_cache: Path) -> None:
    path = own_cache / local_ray.STATE_NAME
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UserError) as err:
        local_ray.running()
    assert str(path) in err.value.line() and "delete it" in err.value.line()


def test_ddx_up_keeps_a_ray_that_sweeps_use_with_the_embedded_results_until_ddx_down(own_cache: Path) -> None:
    tmp_path = own_cache.parent
    env = {"DDX_CACHE": str(own_cache)}
    spec = tiny_digits_spec(tmp_path / "embedded", search={"ipc": {"grid": [2]}})
    embedded = ddx("sweep", str(write_spec(tmp_path / "e.yaml", spec)), env=env)
    assert embedded.returncode == 0, embedded.stdout[-2000:] + embedded.stderr[-2000:]
    assert "embedded local Ray" in embedded.stdout

    ray_default = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # what a plain ray.init() joins
    before = ray_default.read_bytes() if ray_default.exists() else None
    up = ddx("up", "--cpus", "2", env=env, timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    kept = json.loads((tmp_path / "cache" / local_ray.STATE_NAME).read_text())
    try:
        assert kept["address"].startswith("127.0.0.1:") and kept["cpus"] == 2
        assert {"gcs_server", "raylet"} <= set(_group_members(kept["pid"]))
        sessions = local_ray.temp_dir()  # the test's DDX_CACHE names it
        assert sessions.is_dir()
        again = ddx("up", env=env)
        assert again.returncode == 0 and "already up" in again.stdout and kept["address"] in again.stdout

        spec["storage"] = str(tmp_path / "kept")
        on_kept = ddx("sweep", str(write_spec(tmp_path / "k.yaml", spec)), env=env)
        assert on_kept.returncode == 0, on_kept.stdout[-2000:] + on_kept.stderr[-2000:]
        assert "running on the local Ray of `ddx up`" in on_kept.stdout and kept["address"] in on_kept.stdout
        assert {"gcs_server", "raylet"} <= set(_group_members(kept["pid"]))  # the sweep left it running

        # the same science as on the embedded Ray: the same seeds, threads and environment
        key = ["trial_key", "eval_arch", "seed"]
        a = pd.read_parquet(tmp_path / "embedded" / "tiny" / "results.parquet").sort_values(key)
        b = pd.read_parquet(tmp_path / "kept" / "tiny" / "results.parquet").sort_values(key)
        assert len(a) == 4 and (b["status"] == "ok").all()
        assert a["test_acc"].tolist() == b["test_acc"].tolist()

        # ddx evaluate uses it too (it imports Ray early: the environment must be ready before)
        (synthetic,) = sorted((tmp_path / "kept" / "tiny" / "synthetic").glob("*.pt"))
        evaluated = ddx(
            "evaluate", str(synthetic), "--preset", "dd_standard", "--dataset", "digits", "--archs", "convnet_d1",
            "--seeds", "1", "--set", "evaluation.epochs=1", "--no-reference", "--out", str(tmp_path / "evaluated"),
            env=env,
        )  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stdout[-2000:] + evaluated.stderr[-2000:]
        assert "running on the local Ray of `ddx up`" in evaluated.stdout
        assert (pd.read_parquet(tmp_path / "evaluated" / "results.parquet")["status"] == "ok").all()

        # a fixed-size Ray: work no node holds fails at once (no autoscaler will add a node)
        spec["resources"] = {**spec["resources"], "cpus_per_worker": 3}
        too_big = ddx("sweep", str(write_spec(tmp_path / "big.yaml", spec)), env=env, timeout=120)
        assert too_big.returncode == 2 and "Traceback" not in too_big.stderr
        assert too_big.stderr.strip().count("\n") == 0 and "resources.cpus_per_worker" in too_big.stderr
    finally:
        down = ddx("down", env=env)
    assert down.returncode == 0 and f"stopped the local Ray at {kept['address']}" in down.stdout
    assert _group_members(kept["pid"]) == [] and not (tmp_path / "cache" / local_ray.STATE_NAME).exists()
    assert not sessions.exists()
    none = ddx("down", env=env)
    assert none.returncode == 0 and "no local Ray" in none.stdout
    assert (ray_default.read_bytes() if ray_default.exists() else None) == before  # plain ray.init() unaffected


def test_cpus_beyond_the_machine_are_a_warning_naming_both_numbers() -> None:
    assert local_ray.oversubscription(None, have=2) is None  # Ray's own count
    assert local_ray.oversubscription(2, have=2) is None
    assert local_ray.oversubscription(1, have=2) is None
    line = local_ray.oversubscription(1000, have=2)
    assert line is not None and "\n" not in line
    assert line.startswith("--cpus 1000 is more than this machine's 2 CPUs") and line.endswith("omit --cpus to offer 2")
    assert local_ray.machine_cpus() >= 1


def test_a_cache_that_is_a_file_or_under_one_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    a_file = tmp_path / "cache.txt"
    a_file.write_text("not a folder")
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store"))
    fix = "point DDX_CACHE at a folder this user can write, or unset it (~/.cache/ddx)"
    for cache, says in (
        (a_file, "is a file, not a folder"),
        (a_file / "sub", "cannot be made a folder (Not a directory)"),
    ):
        for args in (["down"], ["up"], ["sweep", str(spec)]):
            proc = ddx(*args, env={"DDX_CACHE": str(cache)}, timeout=120)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            assert proc.stderr.strip() == f"error: DDX_CACHE: {cache} {says}; {fix}", proc.stderr
    assert not (tmp_path / "store").exists()  # the sweep stopped before it wrote anything


def test_check_cache_dir_makes_a_missing_cache(own_cache: Path) -> None:
    assert not own_cache.exists()
    assert local_ray.check_cache_dir() == own_cache and own_cache.is_dir()


def test_ddx_up_starts_ray_with_public_flags_only() -> None:
    """Every flag of the ``ray start`` that ``ddx up`` runs is one ``ray start --help`` lists (a hidden
    flag, such as ``--no-monitor`` or ``--system-config``, may go in any Ray release)."""
    cmd = local_ray.start_command(2, False, [6379, 10001, 8265])
    proc = subprocess.run([*cmd[:4], "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = set(re.findall(r"(?m)^\s+(--[a-z][a-z0-9-]*)", proc.stdout))
    flags = [arg.split("=", 1)[0] for arg in cmd[4:] if arg.startswith("--")]
    assert "--head" in listed and flags and [f for f in flags if f not in listed] == []
