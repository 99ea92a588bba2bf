"""Input that cannot hang or mislead: bounded YAML, key errors that name the key, storage URIs
judged offline, an endpoint that refuses connections reported at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.errors import SpecError, UserError
from orchestrator.spec.load import parse_spec
from orchestrator.spec.yaml_input import MAX_BYTES, MAX_VALUES, parse_yaml
from orchestrator.storage.uris import GCS_QUERY_KEYS, QUERY_KEYS, S3_QUERY_KEYS, uri_problem
from tests.helpers import REPO, cli, closed_port, tiny_digits_spec, write_spec


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Run each command once on a mistake, so the timings below are the input's, not the first imports'."""
    empty = tmp_path_factory.mktemp("warm") / "empty.yaml"
    empty.write_text("")
    assert cli("validate", str(empty)).exit_code == 2
    assert cli("evaluate", str(empty)).exit_code == 2  # no preset: refused once everything is imported


def _one_line(proc) -> str:
    """The single error line of a CLI run that exited 2 (no traceback)."""
    assert proc.exit_code == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- 1. YAML that expands without bound -------------------------------------------------------------
def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs" document: ``levels`` anchors, each a list of ``width`` aliases of the last
    (9 × 9: ~700 bytes, 9⁹ ≈ 387 million strings once expanded)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(["name: bomb", *lines]) + "\n"


def test_an_alias_bomb_is_one_line_in_well_under_a_second(tmp_path: Path) -> None:
    """It spun ``ddx validate`` for minutes (every check walked the expanded values)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 800
    start = time.monotonic()
    line = _one_line(cli("validate", str(path)))
    assert time.monotonic() - start < 1.0
    assert line == (
        f"error: {path}: the document holds more than {MAX_VALUES:,} values once its YAML aliases (*name) are "
        f"expanded (an alias bomb?); a YAML document may hold at most {MAX_VALUES:,} (write fewer values, or "
        "expand fewer aliases)"
    )


def one_line_bomb(levels: int = 9, width: int = 9) -> str:
    """:func:`billion_laughs` as one flow-style value (what ``--set KEY=VALUE`` takes)."""
    items = [f"&a0 [{', '.join(['lol'] * width)}]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def test_every_yaml_reader_is_bounded(tmp_path: Path) -> None:
    """``ddx evaluate --config`` and ``--set`` read YAML through the same module."""
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    bounded = f"the document holds more than {MAX_VALUES:,} values once its YAML aliases (*name) are expanded"
    for args, where in (
        (("--config", str(path)), f"error: {path}: "),
        (("--set", f"evaluation.archs={one_line_bomb()}"), "error: --set evaluation.archs: "),
    ):
        start = time.monotonic()
        line = _one_line(cli("evaluate", str(tmp_path / "set.pt"), *args))
        assert time.monotonic() - start < 1.0
        assert line.startswith(where + bounded), line


def test_a_recursive_alias_and_an_oversized_file_are_one_line(tmp_path: Path) -> None:
    """A node holding an alias of itself is an endless structure; a file over the size limit is not
    read at all."""
    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\nmethod: &m {objective: dm, again: *m}\n")
    assert _one_line(cli("validate", str(path))) == (
        f"error: {path}: a YAML alias at line 2 refers to a node that contains it (a recursive structure, which "
        "no setting can hold); write the values out"
    )
    big = tmp_path / "big.yaml"
    big.write_text("name: big\n# " + "x" * MAX_BYTES + "\n")
    line = _one_line(cli("validate", str(big)))
    assert line == (
        f"error: {big}: the file is 1.0 MiB; a sweep or evaluation file may be at most 1 MiB (is it the right file?)"
    )


def test_a_large_legitimate_file_still_loads(tmp_path: Path) -> None:
    """A third of a megabyte of notes, a 2,000-value search space and an alias used twice: it is read."""
    text = (REPO / "sweeps" / "quickstart.yaml").read_text().replace("name: quickstart", "name: large")
    text = text.replace("  lr_images: 10.0\n", "").replace(
        "  augment: color_crop_cutout_scale_rotate\n  progress_every",
        "  augment: &aug color_crop_cutout_scale_rotate\n  progress_every",
    )
    text = text.replace("  augment: color_crop_cutout_scale_rotate\n", "  augment: *aug\n")  # the evaluation's
    values = ", ".join(f"{0.5 + i / 1000:.4f}" for i in range(2_000))
    text = text.replace(
        "search:\n  objective: {grid: [random, dm]}\nalgorithm: grid\n",
        f"search:\n  objective: {{choice: [random, dm]}}\n  lr_images: {{choice: [{values}]}}\nalgorithm: optuna\n",
    )
    text = "# a long note.\n" * 25_000 + text
    assert 350_000 < len(text) < MAX_BYTES
    path = tmp_path / "large.yaml"
    path.write_text(text)
    proc = cli("validate", str(path))
    assert proc.exit_code == 0, proc.stderr
    data = parse_yaml(text)
    assert len(data["search"]["lr_images"]["choice"]) == 2_000
    assert data["evaluation"]["augment"] == data["method"]["augment"] == "color_crop_cutout_scale_rotate"


# --- 2. a mapping's key that is not a known name, or not a string ----------------------------------------
def test_an_unknown_network_as_a_key_says_so_with_did_you_mean(tmp_path: Path) -> None:
    """``arch_epochs: {resnet19: 40}`` said ``keys must be strings (got str 'resnet19')``."""
    data = tiny_digits_spec(tmp_path / "store")
    data["evaluation"]["arch_epochs"] = {"resnet19": 40}
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="s.yaml")
    assert err.value.line().startswith(
        "s.yaml: evaluation.arch_epochs.resnet19: unknown network 'resnet19' (did you mean 'resnet18'?); known: "
    )
    path = write_spec(tmp_path / "s.yaml", data)
    line = _one_line(cli("validate", str(path)))
    assert line.startswith(f"error: {path}: evaluation.arch_epochs.resnet19: unknown network 'resnet19' (did you ")


@pytest.mark.parametrize(
    ("block", "key", "value", "where", "message"),
    [
        # a key that is not a string names the mapping, not a list index (``arch_epochs[1]``)
        ("evaluation", "arch_epochs", {1: 40}, "evaluation.arch_epochs", "got int 1 as a key"),
        ("resources", "trial_resources", {1: 0.01}, "resources.trial_resources", "got int 1 as a key"),
        ("resources", "trial_resources", {None: 1}, "resources.trial_resources", "got null as a key"),
        # Ray's own resources are case-sensitive: ``cpu`` would be a custom resource no node declares
        ("resources", "trial_resources", {"cpu": 0.01}, "resources.trial_resources", "'cpu' is not Ray's 'CPU'"),
        ("resources", "trial_resources", {"CPU": -1, "x": 1}, "resources.trial_resources", "CPU: must be a finite"),
        ("resources", "trial_resources", {"": 1}, "resources.trial_resources", "a resource needs a name"),
    ],
)
def test_key_errors_name_the_mapping_and_the_key(block, key, value, where, message, tmp_path: Path) -> None:
    data = tiny_digits_spec(tmp_path / "store")
    data.setdefault(block, {})[key] = value
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="s.yaml")
    line = err.value.line()
    assert line.startswith(f"s.yaml: {where}: "), line
    assert message in line, line
    if "as a key" in message:
        assert line == f"s.yaml: {where}: every key here must be a name (a string); {message}"


# --- 3. storage URIs judged offline ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s4://bucket/x", "unknown storage scheme 's4' (did you mean 's3'?); pyarrow reads file, s3, gs, gcs, hdfs"),
        ("S3://bucket/x", "unknown storage scheme 'S3' (did you mean 's3'?)"),
        ("htp://host/x", "unknown storage scheme 'htp'; pyarrow reads file, s3, gs, gcs, hdfs, viewfs, abfs, abfss "
         "(or a local path), and no http(s) URL: an S3-compatible server is s3://BUCKET/PREFIX?endpoint_override="),
        ("s3://b/x?endpoint_overide=h:9000", "unknown query key 'endpoint_overide' for s3:// (did you mean "
         "'endpoint_override'?); pyarrow reads region, scheme, endpoint_override, allow_delayed_open, "),
        ("gs://b/x?endpoint=h:1", "unknown query key 'endpoint' for gs:// (did you mean 'endpoint_override'?)"),
        ("s3://b/x?scheme=htp", "query key scheme='htp': expected http or https"),
        ("s3://b/x?allow_bucket_creation=yes", "query key allow_bucket_creation='yes': expected true or false"),
        ("s3:///x", "no bucket: write s3://BUCKET/PREFIX"),
    ],
)  # fmt: skip
def test_bad_storage_uris_fail_ddx_validate_offline(uri: str, message: str, tmp_path: Path) -> None:
    """They passed ``ddx validate`` and failed only at ``ddx sweep``; the bucket hosts do not exist,
    so nothing here can have asked the network."""
    data = tiny_digits_spec(uri)
    path = write_spec(tmp_path / "s.yaml", data)
    line = _one_line(cli("validate", str(path)))
    assert line.startswith(f"error: {path}: storage: {message}"), line
    data = tiny_digits_spec(tmp_path / "store", dataset={"name": "imagefolder", "resolution": 8, "root": uri})
    line = _one_line(cli("validate", str(write_spec(tmp_path / "r.yaml", data))))
    assert line.startswith(f"error: {tmp_path / 'r.yaml'}: dataset.root: {message}"), line


def test_ddx_evaluate_judges_its_locations_offline(tmp_path: Path) -> None:
    for flag, uri, message in (
        ("--out", "s4://b/x", "unknown storage scheme 's4' (did you mean 's3'?)"),
        ("--storage", "s3://b/x?endpoint_overide=h:1", "unknown query key 'endpoint_overide' for s3:// (did you "),
        ("--root", "gss://b/cifar", "unknown storage scheme 'gss' (did you mean 'gs'?)"),
    ):
        args = ("--preset", "toy_quick", "--dataset", "cifar10" if flag == "--root" else "digits", flag, uri)
        line = _one_line(cli("evaluate", str(tmp_path / "set.pt"), *args))
        assert line.startswith(f"error: {flag}: {message}"), line


def test_good_uris_pass_and_the_known_query_keys_are_pyarrows() -> None:
    """Every key listed is one the installed pyarrow reads (asked offline: an endpoint and a region are
    given, so no request is made), and a key not listed is refused by pyarrow too."""
    import pyarrow.fs as pafs

    for uri in (
        "s3://b/x?region=eu-west-1&endpoint_override=127.0.0.1:9000&scheme=http&allow_bucket_creation=true",
        "gs://b/x?endpoint_override=127.0.0.1:4443&scheme=http&location=EU&retry_limit_seconds=5",
        "file:///tmp/x",
        "abfss://container@account.dfs.core.windows.net/x?sv=2024&sig=abc",
        "/local/path",
        "./relative",
    ):
        assert uri_problem(uri) is None, uri
    fixed = {"region": "r", "endpoint_override": "127.0.0.1:1", "scheme": "http"}
    for scheme, keys in (("s3", S3_QUERY_KEYS), ("gs", GCS_QUERY_KEYS)):
        for key in keys:
            value = {"retry_limit_seconds": "1", "location": "EU"}.get(key, fixed.get(key, "true"))
            query = {**{k: v for k, v in fixed.items() if k in keys}, key: value}
            uri = f"{scheme}://b/x?" + "&".join(f"{k}={v}" for k, v in query.items())
            if key in ("tls_ca_file_path", "tls_ca_dir_path", "smart_defaults"):
                uri = uri.replace(f"{key}=true", f"{key}=standard")
            pafs.FileSystem.from_uri(uri)  # raises on a key pyarrow does not read
            assert uri_problem(uri) is None, uri
        with pytest.raises(Exception, match="Unexpected query parameter"):
            pafs.FileSystem.from_uri(f"{scheme}://b/x?endpoint_override=127.0.0.1:1&region=r&no_such_key=1")
    for scheme in QUERY_KEYS:  # every scheme listed is one pyarrow recognises
        try:
            pafs.FileSystem.from_uri(f"{scheme}://container@account.dfs.core.windows.net/x?endpoint_override=h:1")
        except Exception as err:  # hdfs needs a JVM, s3 a region …: anything but "unrecognised"
            assert "Unrecognized filesystem type" not in str(err), scheme


def test_a_refused_endpoint_is_one_line_at_once() -> None:
    """The S3 client retried a refused connection for ~14 s before it said so."""
    from orchestrator.storage.locations import check_reachable, check_storage

    port = closed_port()
    uri = f"s3://bucket/prefix?endpoint_override=127.0.0.1:{port}&scheme=http"
    why = f"nothing listens at 127.0.0.1:{port} (connection refused); start the server or fix the endpoint"
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        check_storage(uri)
    assert err.value.line() == f"storage: cannot write to {uri!r}: {why}"
    with pytest.raises(UserError) as err:
        check_reachable(uri)
    assert err.value.line() == f"{uri}: cannot reach it: {why}"
    assert time.monotonic() - start < 2.0


def test_a_refused_endpoint_of_aws_endpoint_url_is_one_line_at_once(monkeypatch) -> None:
    """pyarrow reads ``$AWS_ENDPOINT_URL`` when the URI names no endpoint: so does the probe."""
    from orchestrator.storage.locations import check_storage

    port = closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    start = time.monotonic()
    with pytest.raises(UserError, match=f"nothing listens at 127.0.0.1:{port} \\(connection refused\\)"):
        check_storage("s3://bucket/prefix?region=us-east-1")
    assert time.monotonic() - start < 2.0
