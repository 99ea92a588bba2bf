"""A full disk: atomic local writes leave the old file or the whole new one and nothing half-written,
and a command that stops part-way on it says so in one line (exit 1)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
import typer

from methods.atomic import atomic_path
from orchestrator.cli import output as cli
from orchestrator.cluster.runtime import OneLineRecords
from orchestrator.errors import UserError
from orchestrator.storage.locations import check_room, upload_file, write_bytes_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_path_replaces_the_target_only_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "set.pt"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old" and tmp.parent == tmp_path and tmp.name.endswith(".tmp")
    assert target.read_bytes() == b"new" and _leftovers(tmp_path) == []


def test_a_write_that_fails_part_way_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "rows.parquet"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []
    with pytest.raises(OSError), atomic_path(tmp_path / "new.json") as tmp:  # no old file: none appears
        tmp.write_text("{")
        raise OSError(errno.EDQUOT, "quota")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]


def test_storage_writes_on_a_full_disk_leave_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "rows" / "a.parquet"
    write_bytes_atomic(str(target), b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(str(target), b"new")
    assert target.read_bytes() == b"old" and _leftovers(target.parent) == []

    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 100)
    real_replace = os.replace

    def no_room(src: str, dst: str) -> None:  # the copy is made, the rename fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", no_room)
    with pytest.raises(OSError):
        upload_file(source, str(tmp_path / "sets" / "b.bin"))
    monkeypatch.setattr(os, "replace", real_replace)
    assert _leftovers(tmp_path / "sets") == [] and not (tmp_path / "sets" / "b.bin").exists()


def test_check_room_names_the_free_space_of_a_nearly_full_disk(tmp_path: Path) -> None:
    check_room(str(tmp_path / "not" / "yet" / "made"), need=1)  # the nearest existing folder's disk
    with pytest.raises(UserError) as err:
        check_room(str(tmp_path / "exp"), need=1 << 62)
    line = err.value.line()
    assert line.startswith(f"storage: cannot write to '{tmp_path / 'exp'}': its disk has ") and "KiB free" in line
    assert line.endswith("(check the folder's permissions and its disk's free space)")
    check_room("s3://bucket/exp?endpoint_override=127.0.0.1:1&scheme=http", need=1 << 62)  # a store says itself


def test_ray_records_with_a_traceback_are_one_line() -> None:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as err:
        record = logging.LogRecord("ray.tune", logging.ERROR, "x.py", 1, "Trial task failed for %s", ("t1",), None)
        record.exc_info = (type(err), err, err.__traceback__)
    kept = logging.Filter()
    assert OneLineRecords().filter(record) and kept.filter(record)
    text = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert text == "ERROR Trial task failed for t1 (--verbose shows more)"
    multi = logging.LogRecord("ray", logging.ERROR, "x.py", 1, "Saving state failed: \nTraceback …\n  line", None, None)
    OneLineRecords().filter(multi)
    assert logging.Formatter("%(message)s").format(multi) == "Saving state failed (--verbose shows more)"
    plain = logging.LogRecord("ray", logging.ERROR, "x.py", 1, "a plain error %d", (3,), None)
    OneLineRecords().filter(plain)
    assert plain.getMessage() == "a plain error 3"


def test_a_command_stopped_part_way_names_the_unwritable_store_or_else_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as code:
        out = str(tmp_path / "out")
        cli.stopped(RuntimeError("boom"), "the evaluation", out, "--out", cli.EVALUATE_FINISHES, False)
    assert code.value.exit_code == cli.EXIT_FAILED == 1
    line = " ".join(capsys.readouterr().err.split())
    assert line == (
        "error: the evaluation stopped part-way: RuntimeError: boom (--verbose shows where); "
        "rerun the same command to finish (finished evaluations are kept)"
    )
    assert not (tmp_path / "out").exists()  # the probe left nothing

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(typer.Exit):
        cli.stopped(OSError("cut short"), "the sweep", str(blocked / "exp"), "storage", cli.SWEEP_RESUMES, False)
    line = " ".join(capsys.readouterr().err.split())
    assert line.startswith(f"error: the sweep stopped part-way: storage: cannot write to '{blocked / 'exp'}': ")
    assert line.endswith("; rerun the same command to resume (finished work is kept)") and "cut short" not in line


def test_a_failed_write_that_names_no_file_names_the_output_folder_or_nothing() -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() raises: no filename
    assert cli.os_error(full).line() == "No space left on device"  # not "None: …"
    assert cli.os_error(full, Path("/x/report")).line() == (
        "/x/report: --out: cannot write it (No space left on device); choose another"
    )
    named = OSError(errno.EACCES, os.strerror(errno.EACCES), "/x/report/report.md")
    assert cli.os_error(named, Path("/x/report")).line().startswith("/x/report/report.md: --out: cannot write it")
