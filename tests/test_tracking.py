"""The trackers a sweep asks for are checked before Ray starts, each failure one whole line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.spec.load import parse_spec
from orchestrator.sweep.tracking import check_trackers
from tests.helpers import cli, closed_port, tiny_digits_spec, write_spec

pytest.importorskip("mlflow")


def _spec(tmp_path: Path, uri: str):
    return parse_spec(tiny_digits_spec(tmp_path / "store", tracking={"mlflow": {"tracking_uri": uri}}))


def test_an_mlflow_file_store_says_mlflows_fix_whole(tmp_path: Path, monkeypatch) -> None:
    """ddx cut MLflow's error at 300 characters, before its fix (``MLFLOW_ALLOW_FILE_STORE=true``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = f"file://{tmp_path / 'mlruns'}"
    path = write_spec(
        tmp_path / "s.yaml", tiny_digits_spec(tmp_path / "store", tracking={"mlflow": {"tracking_uri": uri}})
    )
    res = cli("sweep", str(path))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    line = lines[0]
    assert line.startswith(f"error: tracking.mlflow: cannot use MLflow at {uri!r}: "), line
    assert len(line) > 300 and line.endswith("set `MLFLOW_ALLOW_FILE_STORE=true` to opt out of this exception."), line
    # MLflow's own fix works: the store is accepted
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_trackers(_spec(tmp_path, uri))


def test_an_mlflow_server_that_refuses_connections_is_one_line_at_once(tmp_path: Path) -> None:
    """MLflow's client retried a refused connection for about four minutes."""
    port = closed_port()
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        check_trackers(_spec(tmp_path, f"http://127.0.0.1:{port}"))
    assert time.monotonic() - start < 2.0
    assert err.value.line() == (
        f"tracking.mlflow: cannot use MLflow at 'http://127.0.0.1:{port}': nothing listens at 127.0.0.1:{port} "
        "(connection refused); start the tracking server or fix tracking.mlflow.tracking_uri"
    )


def test_a_silent_mlflow_server_is_one_line_after_the_uri_timeout(
    tmp_path: Path, silent_port: int, monkeypatch
) -> None:
    monkeypatch.setenv("DDX_URI_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(UserError, match=r"no answer within 1 s \(check the server; DDX_URI_TIMEOUT sets the wait\)"):
        check_trackers(_spec(tmp_path, f"http://127.0.0.1:{silent_port}"))
    assert time.monotonic() - start < 5.0
