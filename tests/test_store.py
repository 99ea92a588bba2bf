"""The results store: atomic row files, consolidation without duplicates, schema types."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from orchestrator.storage.results import (
    CORE_COLUMNS,
    ROW_KEY,
    ResultStore,
    read_table_file,
    rows_to_table,
    write_bytes_atomic,
)


def _row(key: str, arch: str, seed: int, acc: float, t: int) -> dict:
    return {
        "sweep": "s",
        "trial_key": key,
        "trial_id": f"t_{key}",
        "status": "ok",
        "objective": "dm",
        "eval_arch": arch,
        "eval_resolution": 8,
        "seed": seed,
        "label_mode": "hard",
        "val_acc": acc,
        "test_acc": acc,
        "ipc": 1,
        "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=t),
        "beta": 0.1,
    }


def test_rows_to_table_uses_the_schema_types() -> None:
    table = rows_to_table([_row("a", "convnet_d3", 0, 0.5, 0)])
    for name, dtype in CORE_COLUMNS.items():
        assert table.schema.field(name).type == dtype
    assert table.schema.field("beta").type.id == pa_float64_id()


def pa_float64_id() -> int:
    import pyarrow as pa

    return pa.float64().id


def test_trial_rows_round_trip_and_deduplicate(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_rows("a", [_row("a", "convnet_d3", 0, 0.5, 0), _row("a", "convnet_d3", 0, 0.6, 1)])
    rows = store.read_trial_rows("a")
    assert len(rows) == 1 and rows[0]["val_acc"] == 0.6  # the later row wins
    assert not list((tmp_path / "exp" / "rows").glob(".*tmp"))  # no temp files left behind


def test_consolidate_keeps_one_row_per_key_newest_wins(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_rows("a", [_row("a", "convnet_d3", s, 0.5, s) for s in (0, 1)])
    store.write_trial_rows("b", [_row("b", "resnet18", 0, 0.7, 5)])
    # a stale copy of trial a's seed 0 (as if written twice across a restart) in another file
    store.write_trial_rows("a-old", [_row("a", "convnet_d3", 0, 0.1, -10)])
    df = store.consolidate()
    assert len(df) == 3 and not df.duplicated(subset=ROW_KEY).any()
    assert df.set_index(["trial_key", "seed"]).loc[("a", 0), "val_acc"] == 0.5
    on_disk = pd.read_parquet(store.results_path)
    assert len(on_disk) == 3
    assert pq.read_schema(store.results_path).field("created_at").type == CORE_COLUMNS["created_at"]


def test_consolidation_waits_for_another_process_consolidating_and_then_reads_every_row(tmp_path: Path) -> None:
    """Two ``ddx evaluate`` runs into one folder each consolidate when they end; one at a time, so
    the later one reads the row files the earlier one's evaluations wrote last."""
    import threading

    from orchestrator.storage.artifacts import LOCK_SUFFIX, LeaseLock

    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_rows("a", [_row("a", "convnet_d3", 0, 0.5, 0)])
    other = LeaseLock(store.results_path + LOCK_SUFFIX)  # another owner (each lock is one)
    assert other.try_acquire()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (store.consolidate(), done.set()))
    thread.start()
    assert not done.wait(1.5) and not Path(store.results_path).exists()  # it waits for the holder
    store.write_trial_rows("b", [_row("b", "resnet18", 0, 0.7, 5)])  # the holder's last row
    other.release()
    thread.join(timeout=30)
    assert done.is_set() and sorted(pd.read_parquet(store.results_path)["trial_key"]) == ["a", "b"]
    assert sorted(p.name for p in Path(store.root).iterdir()) == ["results.parquet", "rows"]  # no lock left


def test_row_file_times_and_rows_ignore_a_row_files_lock(tmp_path: Path) -> None:
    import os

    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_rows("a", [_row("a", "convnet_d3", 0, 0.5, 0)])
    row_file = Path(store.rows_path("a"))
    os.utime(row_file, (1_000_000, 1_000_000))
    lock = store.rows_lock("a")
    assert lock.try_acquire()
    try:
        assert Path(lock.location).parent == row_file.parent  # the lock lives beside the row file
        assert store.row_files_mtime() == 1_000_000  # a renewed lock is not a new row ("partial" reports)
        assert len(store.current_rows()) == 1
    finally:
        lock.release()


def test_reference_rows_merge_newest_wins_per_settings_network_resolution_and_seed(tmp_path: Path) -> None:
    """``ddx evaluate`` runs into one folder each add the references of their own networks."""
    from orchestrator.evaluation.reference import REFERENCE_FILE, write_reference_rows

    def ref(arch: str, seed: int, acc: float, config: str = "c1") -> dict:
        return {"config_hash": config, "eval_arch_requested": arch, "eval_arch": arch, "eval_resolution": 8,
                "seed": seed, "status": "ok", "test_acc": acc}  # fmt: skip

    exp = tmp_path / "exp"
    write_reference_rows(str(exp), pd.DataFrame([ref("convnet_d1", 0, 0.5), ref("convnet_d1", 1, 0.6)]))
    write_reference_rows(str(exp), pd.DataFrame([ref("resnet18", 0, 0.7), ref("convnet_d1", 1, 0.65)]))
    write_reference_rows(str(exp), pd.DataFrame([ref("convnet_d1", 0, 0.1, config="other settings")]))
    got = pd.read_parquet(exp / REFERENCE_FILE)
    key = ["config_hash", "eval_arch_requested", "seed"]
    assert sorted(map(tuple, got[[*key, "test_acc"]].values.tolist())) == [
        ("c1", "convnet_d1", 0, 0.5),
        ("c1", "convnet_d1", 1, 0.65),  # the newer run of the same reference replaced the older
        ("c1", "resnet18", 0, 0.7),  # the second run's network was added, the first's kept
        ("other settings", "convnet_d1", 0, 0.1),
    ]
    assert sorted(p.name for p in exp.iterdir()) == [REFERENCE_FILE]  # no lock left


def test_the_locks_of_row_files_results_and_references_live_beside_them_on_s3(s3_server) -> None:
    """On an object store whose URI carries a query (``?endpoint_override=…``) the locks are objects
    beside the files they guard, not names glued after the query."""
    from orchestrator.evaluation.reference import REFERENCE_FILE, write_reference_rows
    from orchestrator.storage.locations import join, list_files

    exp = join(s3_server("ddx-locks"), "exp")
    store = ResultStore(exp)
    store.write_trial_rows("a", [_row("a", "convnet_d3", 0, 0.5, 0)])
    lock = store.rows_lock("a")
    assert lock.location == join(exp, "rows", "a.parquet.lock")
    assert lock.try_acquire()
    try:
        assert [h["owner"] for h in store.row_file_holders()] == [lock.owner]
        assert len(store.consolidate()) == 1
    finally:
        lock.release()
    assert store.row_file_holders() == []
    ref = {"config_hash": "c", "eval_arch_requested": "convnet_d1", "eval_resolution": 8, "seed": 0, "test_acc": 0.5}
    write_reference_rows(exp, pd.DataFrame([ref]))
    write_reference_rows(exp, pd.DataFrame([{**ref, "seed": 1}]))
    assert len(read_table_file(join(exp, REFERENCE_FILE))) == 2
    assert [n.rsplit("/", 1)[-1].split("?")[0] for n in list_files(exp)] == [REFERENCE_FILE, "results.parquet"]
    assert [n.rsplit("/", 1)[-1].split("?")[0] for n in list_files(join(exp, "rows"))] == ["a.parquet"]


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.bin"
    write_bytes_atomic(str(target), b"one")
    write_bytes_atomic(str(target), b"two-longer")
    assert target.read_bytes() == b"two-longer"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_consolidate_of_an_empty_experiment_writes_an_empty_table(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "exp"))
    df = store.consolidate()
    assert df.empty
    assert set(CORE_COLUMNS) <= set(pq.read_schema(store.results_path).names)


def test_resuming_under_a_changed_spec_is_one_line_before_ray_starts(tmp_path: Path) -> None:
    """Rows made under other settings must not mix into one table: a changed spec without --fresh
    stops in a second (the saved spec is read before Ray starts), and nothing is touched."""
    from orchestrator.spec.load import parse_spec
    from orchestrator.spec.plan import SPEC_FILE
    from tests.helpers import ddx, tiny_digits_spec, write_spec

    old = parse_spec(tiny_digits_spec(tmp_path / "store"))
    saved = Path(old.experiment_dir()) / SPEC_FILE
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"config_hash": old.config_hash()}))
    changed = tiny_digits_spec(tmp_path / "store", evaluation={"epochs": 4})
    path = write_spec(tmp_path / "s.yaml", changed)
    out = ddx("sweep", str(path), timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    new_hash = parse_spec(changed).config_hash()
    assert out.stderr.strip() == (
        f"error: name: the sweep in {old.experiment_dir()} was started from a different spec (hash "
        f"{old.config_hash()} ≠ {new_hash}); run with --fresh to start over or rename the sweep"
    )
    assert "running on" not in out.stdout
    assert json.loads(saved.read_text()) == {"config_hash": old.config_hash()}  # untouched


def test_a_folder_ddx_did_not_make_is_neither_deleted_by_fresh_nor_written_into(tmp_path: Path, s3_server) -> None:
    """``<storage>/<name>`` holding other files (``storage: ~``, ``name: thesis``): ``--fresh``
    deleted it whole. Now one line before Ray starts, with or without ``--fresh``, on a disk or in
    an object store; an empty folder, or one with a saved spec, is still ddx's."""
    from orchestrator.errors import UserError
    from orchestrator.spec.load import parse_spec
    from orchestrator.spec.plan import SPEC_FILE
    from orchestrator.storage.locations import join
    from orchestrator.sweep.resume import check_owned
    from tests.helpers import ddx, tiny_digits_spec, write_spec

    spec = parse_spec(tiny_digits_spec(tmp_path / "home"))
    precious = Path(spec.experiment_dir()) / "chapter1.tex"
    precious.parent.mkdir(parents=True)
    precious.write_text("keep me")
    path = write_spec(tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "home"))
    for flags in (["--fresh"], []):
        out = ddx("sweep", str(path), *flags, timeout=60)
        assert out.returncode == 2 and "running on" not in out.stdout, out.stdout + out.stderr
        assert out.stderr.strip() == (
            f"error: name: {spec.experiment_dir()} holds files but no {SPEC_FILE}, so it is not a ddx experiment: "
            "ddx neither writes into it nor deletes it (--fresh); choose another sweep name or storage, or move "
            "those files"
        )
        assert [p.name for p in precious.parent.iterdir()] == ["chapter1.tex"] and precious.read_text() == "keep me"
    precious.unlink()
    check_owned(spec)  # empty: ddx's
    (precious.parent / SPEC_FILE).write_text("{}")
    (precious.parent / "rows").mkdir()
    check_owned(spec)  # a saved spec: ddx's
    bucket = s3_server("owned")
    remote = parse_spec(tiny_digits_spec(bucket))  # a URI storage
    check_owned(remote)  # nothing there yet
    write_bytes_atomic(join(remote.experiment_dir(), "notes.txt"), b"x")
    with pytest.raises(UserError, match=r"holds files but no spec\.json"):
        check_owned(remote)
    write_bytes_atomic(join(remote.experiment_dir(), SPEC_FILE), b"{}")
    check_owned(remote)


def test_a_damaged_json_file_of_an_experiment_is_one_line_naming_it(tmp_path: Path) -> None:
    """A truncated saved spec (read when a sweep resumes) or trial record: a UserError naming the file."""
    from orchestrator.errors import UserError
    from orchestrator.spec.load import parse_spec
    from orchestrator.spec.plan import SPEC_FILE
    from orchestrator.sweep.resume import check_resume
    from tests.helpers import tiny_digits_spec

    spec = parse_spec(tiny_digits_spec(tmp_path / "store"))
    saved = Path(spec.experiment_dir()) / SPEC_FILE
    saved.parent.mkdir(parents=True)
    saved.write_text('{"config_hash": "ab')  # cut short
    with pytest.raises(UserError) as err:
        check_resume(spec, fresh=False)
    assert err.value.where == str(saved) and "not readable JSON" in err.value.message
    assert "--fresh" in err.value.message
    assert check_resume(spec, fresh=True) is False and not saved.exists()  # --fresh starts over

    store = ResultStore(str(tmp_path / "exp"))
    record = Path(store.trial_record_path("k1"))
    record.parent.mkdir(parents=True)
    record.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError) as err:
        store.trial_records()
    assert err.value.where == str(record) and "restore or delete it" in err.value.line()
