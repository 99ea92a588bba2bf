"""Storage locations: local paths and URIs (with query parameters) read and written alike."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import cli

from orchestrator.errors import UserError
from orchestrator.storage.locations import (
    add_suffix,
    check_storage,
    exists,
    filesystem,
    join,
    list_files,
    local_path,
    read_bytes,
    write_bytes_atomic,
)


def test_join_keeps_the_query_string_at_the_end() -> None:
    uri = "s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join(uri, "sweep", "rows") == "s3://bucket/prefix/sweep/rows?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join("s3://bucket/prefix/", "a") == "s3://bucket/prefix/a"
    assert join("/tmp/x", "a", "b") == "/tmp/x/a/b"


def test_add_suffix_names_a_sibling_file_and_keeps_the_query_string_at_the_end() -> None:
    uri = "s3://bucket/sweep/synthetic/k.pt?endpoint_override=127.0.0.1:9000&scheme=http"
    assert add_suffix(uri, ".card.json") == (
        "s3://bucket/sweep/synthetic/k.pt.card.json?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    assert add_suffix("s3://bucket/k.pt", ".card.json") == "s3://bucket/k.pt.card.json"
    assert add_suffix("/tmp/x/k.pt", ".card.json") == "/tmp/x/k.pt.card.json"


def test_local_paths_and_file_uris_are_local(tmp_path: Path) -> None:
    assert local_path(str(tmp_path)) == tmp_path
    assert local_path(f"file://{tmp_path}") == tmp_path
    target = join(str(tmp_path), "a", "b.bin")
    write_bytes_atomic(target, b"abc")
    assert read_bytes(target) == b"abc" and exists(target)
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "a").iterdir())  # no temp file left


def test_s3_uri_with_endpoint_query_round_trips(s3_server) -> None:
    root = join(s3_server("storage-test"), "ddx")
    target = join(root, "sweep", "rows", "k.parquet")
    write_bytes_atomic(target, b"rows")
    assert read_bytes(target) == b"rows" and exists(target)
    assert local_path(target) is None
    fs, path = filesystem(target)
    assert type(fs).__name__ == "S3FileSystem" and path == "storage-test/ddx/sweep/rows/k.parquet"
    assert list_files(join(root, "sweep", "rows"), ".parquet") == [target]


def test_aws_endpoint_url_environment_is_honoured(s3_server, monkeypatch) -> None:
    s3_server("env-endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_server.endpoint}")
    target = "s3://env-endpoint/x/y.txt"
    write_bytes_atomic(target, b"hello")
    assert read_bytes(target) == b"hello"


def test_unusable_storage_is_one_line_user_error(s3_server) -> None:
    s3_server("exists-bucket")
    endpoint = s3_server.endpoint
    for bad in (
        f"s3://no-such-bucket/p?endpoint_override={endpoint}&scheme=http",  # missing bucket
        "s3://b/p?endpoint_override=127.0.0.1:9&scheme=http",  # nothing listens there
        "s3://b/p?no_such_option=1",  # a query pyarrow rejects
    ):
        with pytest.raises(UserError) as err:
            check_storage(bad)
        line = err.value.line()
        assert "\n" not in line and line.startswith("storage: cannot write to"), line
    check_storage(f"s3://exists-bucket/p?endpoint_override={endpoint}&scheme=http")  # a good one passes


@pytest.fixture
def silent_s3(silent_port: int) -> str:
    """An ``s3://`` URI whose endpoint accepts connections and never answers."""
    return f"s3://b/p?endpoint_override=127.0.0.1:{silent_port}&scheme=http"


def test_a_store_that_does_not_answer_is_one_line_after_the_probe_timeout(silent_s3: str) -> None:
    """Such an endpoint held ``ddx sweep`` for ~100 s (the S3 client's own timeout; a GCS URI
    without credentials, 15 min) before its one line."""
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        check_storage(silent_s3, timeout=1.0)
    assert time.monotonic() - start < 10
    line = err.value.line()
    assert "\n" not in line and line.startswith(f"storage: cannot write to {silent_s3!r}: no answer within 1 s"), line


def test_report_and_leaderboard_of_a_store_that_does_not_answer_are_one_line(
    silent_s3: str, monkeypatch, tmp_path
) -> None:
    """They read the experiment straight away: without the check, each waited for the client."""
    monkeypatch.setenv("DDX_URI_TIMEOUT", "1")
    experiment = silent_s3.replace("/p?", "/p/sweep?")
    for args in (("report", experiment, "--out", str(tmp_path / "r")), ("leaderboard", experiment)):
        start = time.monotonic()
        res = cli(*args)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert (
            lines[0]
            == f"error: {experiment}: cannot reach it: no answer within 1 s (check the URI, the bucket, credentials "
            "and ?endpoint_override=HOST:PORT&scheme=http for S3-compatible stores)"
        ), lines[0]
        assert time.monotonic() - start < 10
    assert not (tmp_path / "r").exists()


def test_the_local_storage_check_leaves_nothing_behind(tmp_path: Path) -> None:
    """``ddx sweep`` probes the storage before Ray starts; a run that stops there (a wrong
    address, say) must not leave the folders the probe made."""
    check_storage(str(tmp_path / "new" / "deeper"))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    check_storage(str(tmp_path / "kept" / "store"))
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and list((tmp_path / "kept").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError):
        check_storage(str(tmp_path / "file" / "store"))  # a file in the way
    assert (tmp_path / "file").read_text() == ""


def test_experiment_dir_of_a_uri_with_a_query_is_a_valid_uri() -> None:
    from orchestrator.spec.load import parse_spec

    uri = "s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http"
    spec = parse_spec({"name": "s", "storage": uri, "method": {"objective": "dm", "ipc": 1}})
    assert spec.experiment_dir() == "s3://bucket/prefix/s?endpoint_override=127.0.0.1:9000&scheme=http"
    assert spec.experiment_dir() == join(uri, "s")
    fs, path = filesystem(join(spec.experiment_dir(), "results.parquet"))
    assert type(fs).__name__ == "S3FileSystem" and path == "bucket/prefix/s/results.parquet"


def test_a_uri_timeout_that_is_not_a_positive_number_is_one_line(monkeypatch, tmp_path) -> None:
    from orchestrator.storage.time_limit import uri_timeout_s

    monkeypatch.delenv("DDX_URI_TIMEOUT", raising=False)
    assert uri_timeout_s() == 15.0
    monkeypatch.setenv("DDX_URI_TIMEOUT", " 2.5 ")
    assert uri_timeout_s() == 2.5
    for bad in ("abc", "0", "-1", "inf", "nan"):
        monkeypatch.setenv("DDX_URI_TIMEOUT", bad)
        with pytest.raises(UserError) as err:
            check_storage(str(tmp_path / "store"))
        assert err.value.line() == (
            f"DDX_URI_TIMEOUT: expected a positive number of seconds, got {bad!r}; set e.g. DDX_URI_TIMEOUT=30, "
            "or unset it (15 s)"
        )
    assert not (tmp_path / "store").exists()
