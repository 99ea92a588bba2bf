"""Sweep-file validation: valid files parse; each malformed one gives one line, exit 2, no writes."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import fields
from pathlib import Path

import pytest

from methods.datasets.options import DatasetOptions
from methods.evaluation.options import EvalSettings
from methods.evaluation.real_training_options import RealTrainSettings
from methods.teacher.options import SQUEEZE_PRESETS
from orchestrator.errors import SpecError
from orchestrator.spec.load import load_spec, parse_spec
from orchestrator.spec.model import PREREQUISITE_BLOCKS, SweepSpec
from orchestrator.spec.plan import describe_plan
from tests.helpers import REPO, class_folders, cli, ddx, fresh_output, tiny_digits_spec, write_spec

TeacherBlock = PREREQUISITE_BLOCKS["teacher"]

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def test_quickstart_parses_with_expected_values() -> None:
    spec = load_spec(REPO / "sweeps" / "quickstart.yaml")
    assert spec.name == "quickstart"
    assert spec.dataset.name == "digits"
    assert spec.method["ipc"] == 10
    assert spec.search["objective"].grid == ["random", "dm"]
    assert spec.evaluation.arch_epochs == {"resnet18": 40}
    assert spec.evaluation.archs == ["convnet_d3", "resnet18"]
    assert spec.evaluation.seeds >= 2
    assert spec.resources.trial_resources is None  # the cluster's driver token (runtime.trial_token)


def _with_data(path: Path, tmp_path: Path) -> Path:
    """A copy of a shipped sweep next to a ``../data/cifar10`` folder (its relative root)."""
    class_folders(tmp_path / "data" / "cifar10")
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    copy_path = tmp_path / "sweeps" / path.name
    copy_path.write_text(path.read_text())
    return copy_path


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_file_validates(path: Path, tmp_path: Path) -> None:
    spec = load_spec(_with_data(path, tmp_path))
    if spec.dataset.root:
        assert spec.dataset.root == str((tmp_path / "data" / "cifar10").resolve())
    proc = cli("validate", str(_with_data(path, tmp_path)))
    assert proc.exit_code == 0, proc.stderr
    assert "distinct trial keys" in proc.stdout and "evaluations in all" in proc.stdout


def test_the_blocks_are_the_option_dataclasses() -> None:
    """One source of truth: every field of the methods' dataclasses is a key of its block, same default."""
    spec = parse_spec(tiny_digits_spec(Path("/tmp/never")))
    orchestration = {"archs", "arch_epochs", "resolutions", "seeds", "label_mode", "reference", "ars"}
    ev = spec.evaluation.model_dump(exclude=orchestration)
    assert set(ev) == {f.name for f in fields(EvalSettings)} - {"label_mode"}
    EvalSettings(**ev)
    assert spec.evaluation.protocol().settings("hard") == EvalSettings(**ev)  # what the students train with
    assert DatasetOptions(**spec.dataset.model_dump()).name == "digits"
    with_ref = parse_spec(tiny_digits_spec(Path("/tmp/never"), evaluation={"reference": True}))
    ref = with_ref.evaluation.reference.model_dump(exclude={"seeds"})
    assert RealTrainSettings(**ref) == RealTrainSettings()
    for name, block in PREREQUISITE_BLOCKS.items():
        assert set(block.model_fields) == {f.name for f in fields(block.__options__)}, name


def test_teacher_block_keeps_its_interface() -> None:
    spec = parse_spec(tiny_digits_spec(Path("/tmp/never"), teacher={"preset": "cifar10", "epochs": 3}))
    assert isinstance(spec.teacher, TeacherBlock)
    assert spec.teacher.settings() == SQUEEZE_PRESETS["cifar10"].__class__(
        **{**SQUEEZE_PRESETS["cifar10"].__dict__, "epochs": 3}
    )
    assert parse_spec(tiny_digits_spec(Path("/tmp/never"))).teacher is None
    assert TeacherBlock().settings() == RealTrainSettings()


def test_spec_round_trips_as_json_and_pickle() -> None:
    """Trials receive the spec as JSON (and Ray may pickle it): both give the same spec and hash."""
    spec = parse_spec(tiny_digits_spec(Path("/tmp/never"), teacher={"arch": "convnet_d2"}))
    again = SweepSpec.model_validate_json(spec.model_dump_json())
    assert again == spec and again.config_hash() == spec.config_hash()
    assert pickle.loads(pickle.dumps(spec)) == spec


BASE = tiny_digits_spec(Path("/tmp/never"))


def _mutated(mutate) -> dict:
    data = copy.deepcopy(BASE)
    mutate(data)
    return data


CASES = {
    "unknown top-level key": (lambda d: d.update(algoritm="grid"), "algoritm", "did you mean 'algorithm'"),
    "unknown nested key": (lambda d: d["evaluation"].update(epoch=3), "evaluation.epoch", "did you mean 'epochs'"),
    "unknown hyper-parameter": (lambda d: d["method"].update(iteratons=3), "method.iteratons", "did you mean"),
    "wrong type": (lambda d: d["method"].update(iterations="many"), "method.iterations", "expected an integer"),
    "string number": (lambda d: d["method"].update(iterations="3"), "method.iterations", "got str '3'"),
    "wrong type (block)": (lambda d: d["evaluation"].update(seeds="two"), "evaluation.seeds", "integer"),
    "float for int": (lambda d: d["evaluation"].update(epochs=3.0), "evaluation.epochs", "got float 3.0"),
    "bool for int": (lambda d: d["method"].update(batch_real=True), "method.batch_real", "got bool True"),
    "out of range": (
        lambda d: d["resources"].update(distill_workers=0),
        "resources.distill_workers",
        "must be ≥ 1 (got 0)",
    ),
    "bad domain": (
        lambda d: d["search"].update(lr_images={"loguniform": [0, 1]}),
        "search.lr_images.loguniform",
        "low must be > 0",
    ),
    "two domain kinds": (lambda d: d["search"].update(ipc={"grid": [1], "choice": [2]}), "search.ipc", "exactly one"),
    "repeated grid value": (lambda d: d["search"].update(ipc={"grid": [1, 1]}), "search.ipc.grid", "twice"),
    "unknown objective": (lambda d: d["method"].update(objective="dn"), "method.objective", "known: "),
    "unknown network": (lambda d: d["evaluation"].update(archs=["resnet19"]), "evaluation.archs[0]", "did you mean"),
    "missing root": (lambda d: d["dataset"].update(name="cifar10"), "dataset.root", "needs a root"),
    "root does not exist": (
        lambda d: d["dataset"].update(name="imagefolder", root="/no/such/dir"),
        "dataset.root",
        "does not exist",
    ),
    "negative ipc": (lambda d: d["search"].update(ipc={"grid": [0, 1]}), "search.ipc.grid[0]", "must be ≥ 1"),
    "bad name": (lambda d: d.update(name="has space"), "name", "pattern"),
    # the mistakes ddx issue 11 found getting through (each failed later, inside a worker)
    "schedule: stepp": (
        lambda d: d["evaluation"].update(schedule="stepp"),
        "evaluation.schedule",
        "did you mean 'step'",
    ),
    "optimizer typo in method": (
        lambda d: d["method"].update(optimizer="adamw_typo"),
        "method.optimizer",
        "must be 'sgd' or 'adam'",
    ),
    "optimizer typo in evaluation": (
        lambda d: d["evaluation"].update(optimizer="adamw_typo"),
        "evaluation.optimizer",
        "did you mean 'adamw'",
    ),
    "metric name": (lambda d: d["metric"].update(name="accuracy"), "metric.name", "'val_acc' or 'test_acc'"),
    "vgg11 at 8 px": (
        lambda d: d["evaluation"].update(archs=["convnet_d3", "vgg11"]),
        "evaluation.archs[1]",
        "vgg11 needs inputs of at least 32 px, got 8 px",
    ),
    "ipc list in method": (
        lambda d: (d["search"].pop("ipc"), d["method"].update(ipc=[1, 10])),
        "method.ipc",
        "search.ipc: {grid: [1, 10]}",
    ),
    "augmentation typo (method)": (
        lambda d: d["method"].update(augment="color_crop_cutuot"),
        "method.augment",
        "unknown augmentation 'cutuot'",
    ),
    "augmentation typo (evaluation)": (
        lambda d: d["evaluation"].update(soft_augment="crop_flop"),
        "evaluation.soft_augment",
        "did you mean 'flip'",
    ),
    # more of the same class
    "label mode": (lambda d: d["evaluation"].update(label_mode=["hard", "sfot"]), "evaluation.label_mode[1]", "soft"),
    "distill_arch too deep for the data": (
        lambda d: d["method"].update(distill_arch="convnet_d4"),
        "method.distill_arch",
        "convnet_d4 needs inputs of at least 16 px, got 8 px",
    ),
    "teacher arch too deep for the data": (
        lambda d: (
            d["method"].update(objective="cfm"),
            d["method"].pop("batch_real"),
            d.update(teacher={"arch": "vgg11"}),
        ),
        "teacher.arch",
        "vgg11 needs inputs of at least 32 px",
    ),
    "teacher preset": (lambda d: d.update(teacher={"preset": "cifar11"}), "teacher.preset", "did you mean 'cifar10'"),
    "uniform on an integer": (
        lambda d: (d["method"].pop("batch_real"), d["search"].update(batch_real={"uniform": [8, 16]})),
        "search.batch_real.uniform[0]",
        "use randint",
    ),
    "every loss term off": (
        lambda d: (
            d["method"].update(objective="cfm", use_filter=False, use_signal=False, use_ce=False),
            d["method"].pop("batch_real"),
        ),
        "method.use_ce",
        "every loss term is switched off",
    ),
    "filter vocabulary": (
        lambda d: (d["method"].update(objective="filter_matching", filter="highpass"), d["method"].pop("batch_real")),
        "method.filter",
        "did you mean 'high_pass'",
    ),
    "beta schedule vocabulary": (
        lambda d: (
            d["method"].update(objective="cfm"),
            d["method"].pop("batch_real"),
            d["search"].update(beta_schedule={"grid": ["cosine", "cosin"]}),
        ),
        "search.beta_schedule.grid[1]",
        "did you mean 'cosine'",
    ),
    "resize mode": (lambda d: d["method"].update(resize_mode="bilinar"), "method.resize_mode", "'bilinear'"),
    "nan": (lambda d: d["method"].update(lr_images=float("nan")), "method.lr_images", "finite"),
    "domain in method": (lambda d: d["method"].update(iterations={"grid": [1, 2]}), "method.iterations", "search:"),
    "non-string key": (
        lambda d: d["method"].update({3: 4}),
        "method",
        "every key here must be a name (a string); got int 3",
    ),
    "duplicate arch": (lambda d: d["evaluation"].update(archs=["resnet18", "resnet18"]), "evaluation.archs", "twice"),
    "blank storage": (lambda d: d.update(storage=" "), "storage", "empty; give a folder or a URI"),
    # digits' smallest class (174 images) keeps 110 after the 30 % test and 10 % validation carves
    "ipc above the data": (
        lambda d: (d["search"].pop("ipc"), d["method"].update(ipc=111)),
        "method.ipc",
        "ipc 111 is more than the 110 training images per class that digits keeps",
    ),
    "resolution beyond the cap": (
        lambda d: d["evaluation"].update(resolutions=[8, 100000]),
        "evaluation.resolutions[1]",
        "must be ≤ 2048 (got 100000)",
    ),
    "dataset resolution beyond the cap": (
        lambda d: d["dataset"].update(resolution=4096),
        "dataset.resolution",
        "must be ≤ 2048 (got 4096)",
    ),
    "swept ipc above a limit": (
        lambda d: (d["dataset"].update(train_per_class=20), d["search"].update(ipc={"grid": [1, 18, 19]})),
        "search.ipc.grid[2]",
        "ipc 19 is more than the 18 training images per class that digits keeps",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_specs_name_the_key(case: str) -> None:
    mutate, key, fragment = CASES[case]
    with pytest.raises(SpecError) as info:
        parse_spec(_mutated(mutate), where="bad.yaml")
    line = info.value.line()
    assert "\n" not in line
    assert line.startswith(f"bad.yaml: {key}: "), line
    assert fragment in line, line


def _one_error_line(proc) -> str:
    assert proc.exit_code == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


BAD_FILES = {
    "binary junk": (bytes(range(256)) * 3, "not UTF-8 text (byte 0x80 at offset 128)"),
    "non-UTF-8 latin-1": ("name: café\n".encode("latin-1"), "not UTF-8 text"),
    "NUL byte": (b"name: x\x00\n", "character U+0000 is not allowed"),
    # printable files whose YAML escapes make characters no setting may hold (before: internal errors)
    "escaped NUL in a path": (b'name: x\nstorage: "\\0"\n', "storage: the value holds the character U+0000"),
    "escaped surrogate": (b'name: x\nstorage: "\\ud800"\n', "storage: the value holds the character U+D800"),
    "escaped ESC in a list": (b'name: x\nsearch: {ipc: {grid: ["\\e"]}}\n', "search.ipc.grid[0]: the value holds"),
    "escaped control in a key": (b'name: x\n"ip\\x07c": 1\n', "the key holds the character U+0007"),
    "empty": (b"", "the file is empty"),
    "only a comment": (b"# nothing\n", "the file is empty"),
    "a list": (b"- name: x\n", "not a list"),
    "a scalar": (b"42\n", "not int 42"),
    "two documents": (b"name: a\n---\nname: b\n", "expected a single document"),
    "unclosed bracket": (b"name: [unclosed\n", "invalid YAML at line"),
    "python tag": (b"name: !!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
    "deep nesting": (b"[" * 5000 + b"]" * 5000, "invalid YAML"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_unreadable_files_are_one_line(tmp_path: Path, case: str) -> None:
    content, fragment = BAD_FILES[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    line = _one_error_line(cli("validate", str(path)))
    assert line.startswith(f"error: {path}: "), line
    assert fragment in line, line


def test_duplicated_key_names_both_lines(tmp_path: Path) -> None:
    text = (REPO / "sweeps" / "quickstart.yaml").read_text()
    text = text.replace("  batch_real: 128\n", "  batch_real: 128\n  iterations: 5\n")  # iterations is set above
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("  iterations:")) + 1
    second = next(i for i, ln in enumerate(lines) if ln == "  iterations: 5") + 1
    line = _one_error_line(cli("validate", str(path)))
    expected = f"method.iterations: duplicated key 'iterations' (lines {first} and {second}); keep one"
    assert line == f"error: {path}: {expected}"


def test_duplicated_top_level_key_and_merge_keys(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nmethod: {objective: dm, ipc: 1}\nname: b\n")
    assert "name: duplicated key 'name' (lines 1 and 3)" in _one_error_line(cli("validate", str(path)))
    ok = tmp_path / "ok.yaml"  # a YAML merge key whose value is overridden is not a duplicate
    ok.write_text("name: a\nmethod:\n  <<: {objective: dm, ipc: 1}\n  ipc: 2\n")
    proc = cli("validate", str(ok))
    assert proc.exit_code == 0, proc.stderr
    assert load_spec(ok).method == {"objective": "dm", "ipc": 2}


def test_a_root_without_the_dataset_layout_is_one_line(tmp_path: Path) -> None:
    """A root one level too high (or a file): caught by `ddx validate`, not by a failed trial."""
    class_folders(tmp_path / "data" / "imgs")
    data = tiny_digits_spec(tmp_path / "store", dataset={"name": "imagefolder", "root": str(tmp_path / "data")})
    line = _one_error_line(cli("validate", str(write_spec(tmp_path / "s.yaml", data))))
    assert line.endswith(
        f"dataset.root: '{tmp_path / 'data'}' needs train/ and test/ (or val/) class folders; "
        "point it at the dataset's folder"
    ), line
    data["dataset"]["root"] = str(tmp_path / "data" / "imgs")
    assert cli("validate", str(write_spec(tmp_path / "s.yaml", data))).exit_code == 0


def test_relative_root_resolves_against_the_spec_folder(tmp_path: Path, monkeypatch) -> None:
    class_folders(tmp_path / "project" / "data" / "imgs")
    data = tiny_digits_spec(tmp_path / "store", dataset={"name": "imagefolder", "root": "data/imgs", "resolution": 8})
    path = write_spec(tmp_path / "project" / "sweep.yaml", data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the spec's folder
    spec = load_spec(path)
    assert spec.dataset.root == str(tmp_path / "project" / "data" / "imgs")
    assert cli("validate", str(path)).exit_code == 0
    data["dataset"]["root"] = "missing/imgs"
    write_spec(path, data)
    line = _one_error_line(cli("validate", str(path)))
    assert f"dataset.root: folder '{tmp_path / 'project' / 'missing' / 'imgs'}' does not exist" in line


def test_uri_roots_are_checked_with_pyarrow(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    data = tiny_digits_spec(tmp_path / "store", dataset={"name": "imagefolder", "resolution": 8})
    path = tmp_path / "s.yaml"
    for root, ok in ((f"file://{tmp_path / 'imgs'}", True), (f"file://{tmp_path / 'nope'}", False)):
        data["dataset"]["root"] = root
        write_spec(path, data)
        proc = cli("validate", str(path))
        if ok:
            assert proc.exit_code == 0, proc.stderr
        else:
            assert f"dataset.root: '{root}' does not exist" in _one_error_line(proc)
    data["dataset"]["root"] = "nosuchscheme://bucket/x"
    write_spec(path, data)
    assert "dataset.root: unknown storage scheme 'nosuchscheme'; pyarrow reads file, s3," in _one_error_line(
        cli("validate", str(path))
    )


def test_s3_roots_with_query_parameters(tmp_path: Path, monkeypatch) -> None:
    """An S3-compatible store named the pyarrow way (``?endpoint_override=…&scheme=http``)."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="ddx")
        s3.put_object(Bucket="ddx", Key="cifar10/train/a/0.png", Body=b"x")
        query = f"?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        data = tiny_digits_spec(tmp_path / "store", dataset={"name": "imagefolder", "resolution": 8})
        path = tmp_path / "s.yaml"
        data["dataset"]["root"] = f"s3://ddx/cifar10{query}"
        write_spec(path, data)
        proc = cli("validate", str(path))
        assert proc.exit_code == 0, proc.stderr
        data["dataset"]["root"] = f"s3://ddx/cifar100{query}"
        write_spec(path, data)
        assert "does not exist" in _one_error_line(cli("validate", str(path)))
    finally:
        server.stop()
    monkeypatch.setenv("DDX_URI_TIMEOUT", "5")
    line = _one_error_line(cli("validate", str(path)))  # the server is gone: unreachable
    assert "dataset.root: " in line and ("cannot reach" in line or "no answer" in line), line


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(algoritm="grid"),
        lambda d: d["method"].update(iterations="many"),
        lambda d: d["resources"].update(distill_workers=0),
        lambda d: d["dataset"].update(name="cifar10", root="/no/such/dir"),
        lambda d: d.update(name="[bold red]x"),  # user text is never read as rich markup
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "missing-root", "markup"],
)
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_cli_rejects_bad_specs_with_exit_2_and_writes_nothing(tmp_path: Path, mutate, command: str) -> None:
    storage = tmp_path / "store"
    data = tiny_digits_spec(storage)
    mutate(data)
    spec = write_spec(tmp_path / "bad.yaml", data)
    line = _one_error_line(cli(command, str(spec)))
    assert str(spec) in line
    assert not storage.exists()


def test_cli_missing_file(tmp_path: Path) -> None:
    for target, says in (
        (tmp_path / "absent.yaml", "no such file"),
        (tmp_path, "a folder"),
        (Path("/dev/null"), "not a regular file"),
    ):
        assert (
            _one_error_line(cli("validate", str(target))) == f"error: {target}: {says} (give the path of a sweep YAML)"
        )


def test_validate_prints_plan(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "ok.yaml", tiny_digits_spec(tmp_path / "store"))
    proc = cli("validate", str(spec))
    assert proc.exit_code == 0, proc.stderr
    assert "2 trials × 4 evaluations" in proc.stdout
    assert "distinct trial keys (sets distilled): 2" in proc.stdout
    assert "evaluations in all: 8" in proc.stdout
    assert "prerequisites produced: none" in proc.stdout
    assert not (tmp_path / "store").exists()


def test_plan_counts_distinct_keys(tmp_path: Path) -> None:
    """ddif_width_depth: 12 trials, but the pixel trials read no nf_* key → 6 fields + 1 pixel set."""
    spec = load_spec(_with_data(REPO / "sweeps" / "ddif_width_depth.yaml", tmp_path))
    plan = describe_plan(spec)
    assert plan["trials"] == 12
    assert plan["distinct_keys"] == 7
    assert plan["evaluations_per_trial"] == 1 * 2 * 5  # convnet × {32, 64} × 5 seeds
    assert plan["evaluations_total"] == 7 * 10
    assert plan["prerequisites"] == {}


def test_plan_names_prerequisites_and_unknown_key_counts(tmp_path: Path) -> None:
    data = tiny_digits_spec(
        tmp_path / "store",
        method={"objective": "cfm", "iterations_per_batch": 2},
        evaluation={"label_mode": ["hard", "soft"]},
    )
    data["method"].pop("batch_real")
    plan = describe_plan(parse_spec(data))
    assert plan["prerequisites"] == {"teacher": ["cfm", "label_mode soft"]}
    assert plan["evaluations_per_trial"] == 2 * 2 * 2
    data["algorithm"] = "optuna"
    data["num_samples"] = 5
    data["search"]["beta"] = {"loguniform": [0.01, 1.0]}
    data["search"]["ipc"] = {"choice": [1, 2]}
    plan = describe_plan(parse_spec(data))
    assert plan["trials"] == 5 and plan["distinct_keys"] is None and plan["distinct_keys_at_most"] == 5
    proc = cli("validate", str(write_spec(tmp_path / "o.yaml", data)))
    assert "unknown before running, at most 5 (optuna samples the values" in proc.stdout


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "ok.yaml", tiny_digits_spec(tmp_path / "store"))
    proc = cli("sweep", str(spec), "--dry-run")
    assert proc.exit_code == 0, proc.stdout + proc.stderr
    assert "2 trials" in proc.stdout and "distinct trial keys" in proc.stdout
    assert not (tmp_path / "store").exists()


HEAVY = ("torch", "torchvision", "kornia", "timm", "ray", "pandas")


@pytest.mark.parametrize("args", [["validate"], ["sweep", "--dry-run"]], ids=["validate", "dry-run"])
def test_validation_imports_no_torch_or_ray(tmp_path: Path, args: list[str]) -> None:
    spec = write_spec(tmp_path / "ok.yaml", tiny_digits_spec(tmp_path / "store"))
    code = (
        "import sys\n"
        "from orchestrator.cli.main import app\n"
        f"try:\n    app([{args[0]!r}, {str(spec)!r}, *{args[1:]!r}])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = fresh_output(code)
    assert "HEAVY []" in out, out


def test_real_process_bad_spec_exits_2_with_one_line(tmp_path: Path) -> None:
    """The installed entry point, in its own process: exit code 2, one line, no traceback."""
    data = tiny_digits_spec(tmp_path / "store")
    data["method"]["iteratons"] = 3
    spec = write_spec(tmp_path / "bad.yaml", data)
    proc = ddx("sweep", str(spec))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {spec}: method.iteratons: unknown hyper-parameter (did you mean 'iterations'?); known for dm "
        "with pixels: " + proc.stderr.split("pixels: ", 1)[1].strip()
    ]
    assert not (tmp_path / "store").exists()
    version = ddx("--version")
    assert version.returncode == 0 and version.stdout.startswith("ddx ")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["sweep"], "error: ddx sweep: Missing argument 'spec'. (see `ddx sweep --help`)"),
        (["sweeep", "x.yaml"], "error: ddx: No such command 'sweeep'. Did you mean 'sweep'? (see `ddx --help`)"),
        (["up", "--cpus", "0"], "error: ddx up: Invalid value for '--cpus': Input should be greater than or equal"),
        (["report", "x", "--bogus"], "error: ddx report: No such option: --bogus"),
    ],
)
def test_command_line_usage_errors_are_one_line(args: list[str], line: str) -> None:
    """A mistyped command, option or argument: one line naming the command and its --help, exit 2
    (Click's own rendering is a usage line, a hint and a box)."""
    proc = ddx(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), proc.stderr
    assert lines[0].endswith("--help`)") and proc.stdout == ""


def test_help_and_no_command_still_print_the_help() -> None:
    """``ddx`` alone prints its help (exit 2, as Click does); ``--help`` exits 0."""
    bare, helped = ddx(), ddx("sweep", "--help")
    assert bare.returncode == 2 and "Usage: ddx [OPTIONS] COMMAND" in bare.stdout + bare.stderr
    assert "error:" not in bare.stderr
    assert helped.returncode == 0 and "Usage: ddx sweep [OPTIONS]" in helped.stdout


def test_spec_json_is_stable_for_the_trial_key() -> None:
    """config_hash covers what determines results: a given prerequisite block changes it, storage does not."""
    a = parse_spec(tiny_digits_spec(Path("/tmp/a")))
    b = parse_spec(tiny_digits_spec(Path("/tmp/b")))
    c = parse_spec(tiny_digits_spec(Path("/tmp/a"), teacher={"seed": 1}))
    assert a.config_hash() == b.config_hash() != c.config_hash()
    assert json.loads(a.model_dump_json())["evaluation"]["label_mode"] == ["hard"]


def test_evaluation_preset_fills_the_keys_not_given(tmp_path: Path) -> None:
    """``evaluation.preset`` (methods.evaluation.presets): explicit keys win, the rest follow the preset."""
    data = tiny_digits_spec(tmp_path / "store", evaluation={"preset": "cfm_code", "epochs": 7})
    for key in ("batch_size", "archs"):
        data["evaluation"].pop(key)
    spec = parse_spec(data)
    ev = spec.evaluation
    assert ev.epochs == 7 and ev.preset == "cfm_code"  # explicit
    assert (ev.optimizer, ev.schedule, ev.mix, ev.label_modes) == ("adamw", "cosine_half", "cutmix", ["soft"])
    assert ev.archs == ["convnet_bn_d3", "resnet18"]
    assert describe_plan(spec)["prerequisites"] == {"teacher": ["label_mode soft"]}
    cifar = tiny_digits_spec(tmp_path / "store", dataset={"name": "imagefolder", "root": str(class_folders(tmp_path))})
    cifar["dataset"]["name"] = "cifar10"
    cifar["evaluation"] = {"preset": "cfm_code", "resolutions": [32]}
    with pytest.raises(SpecError, match=r"evaluation.preset: preset 'cfm_code' sets the batch size per IPC"):
        parse_spec(cifar)
    cifar["search"].pop("ipc")
    cifar["method"]["ipc"] = 10
    assert parse_spec(cifar).evaluation.batch_size == 50  # cfm_code: 50 at IPC 10 on CIFAR-10
    with pytest.raises(SpecError, match=r"evaluation.preset: unknown preset 'cfm_cod' \(did you mean 'cfm_code'\?\)"):
        parse_spec(tiny_digits_spec(tmp_path / "store", evaluation={"preset": "cfm_cod"}))
    with pytest.raises(SpecError, match=r"evaluation: invalid evaluation settings: mix: 'cutmix' needs"):
        parse_spec(tiny_digits_spec(tmp_path / "store", evaluation={"mix": "cutmix"}))


def test_a_new_prerequisite_gets_its_block_with_no_spec_change(tmp_path: Path) -> None:
    """``experts`` (trajectory matching) is only a registered entry: its block is generated and checked."""
    data = tiny_digits_spec(tmp_path / "store", method={"objective": "tm", "syn_steps": 2}, experts={"num_experts": 2})
    data["method"].pop("batch_real")
    spec = parse_spec(data)
    assert spec.experts.num_experts == 2 and "experts" in PREREQUISITE_BLOCKS
    assert describe_plan(spec)["prerequisites"] == {"experts": ["tm"]}
    for block, key, fragment in (
        ({"num_experts": 0}, "experts.num_experts", "must be ≥ 1"),
        ({"arch": "vgg11"}, "experts.arch", "vgg11 needs inputs of at least 32 px"),
        ({"augment": "crop_flop"}, "experts.augment", "did you mean 'flip'"),
        ({"epochs": 3}, "experts.epochs", "unknown key"),
    ):
        with pytest.raises(SpecError) as info:
            parse_spec({**data, "experts": block}, where="tm.yaml")
        assert info.value.line().startswith(f"tm.yaml: {key}: ") and fragment in info.value.line(), info.value.line()


def test_a_scheduler_needs_probes(tmp_path: Path) -> None:
    data = tiny_digits_spec(tmp_path / "r", scheduler={"name": "asha"})
    with pytest.raises(SpecError, match=r"set method\.probe_every") as err:
        parse_spec(data)
    assert err.value.key == "scheduler"
    data["method"]["probe_every"] = 5
    assert parse_spec(data).scheduler is not None


def test_arch_epochs_size_students_per_network(tmp_path: Path) -> None:
    data = tiny_digits_spec(tmp_path / "r", evaluation={"epochs": 30, "arch_epochs": {"resnet18": 5}})
    spec = parse_spec(data)
    jobs = {j.arch: j for j in spec.evaluation.students(spec.seed).jobs(8)}
    protocol = spec.evaluation.protocol()
    assert protocol.settings("hard", epochs=jobs["resnet18"].epochs).epochs == 5
    assert protocol.settings("hard", epochs=jobs["convnet_d3"].epochs).epochs == 30
    data["evaluation"]["arch_epochs"] = {"vgg11": 5}
    with pytest.raises(SpecError, match=r"not one of evaluation\.archs") as err:
        parse_spec(data)
    assert err.value.key == "evaluation.arch_epochs.vgg11"


def test_the_sweep_driver_reads_trial_failures_without_torch() -> None:
    """The driver (orchestrator.sweep.run) and its end-of-sweep failure listing import no torch."""
    code = (
        "import sys, types\n"
        "from orchestrator.sweep.run import _failures\n"
        "r = types.SimpleNamespace(error=RuntimeError('boom\\nValueError: bad'), path='/x', config={'a': 1},\n"
        "                          metrics={'trial_id': 't1'})\n"
        "(f,) = _failures([r])\n"
        "print(f.error, '|', f.log)\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = fresh_output(code)
    assert "RuntimeError: ValueError: bad | /x/error.txt" in out
    assert "TORCH False" in out, out


def test_storage_is_checked_before_ray_starts(tmp_path: Path) -> None:
    """An unwritable storage or an empty --storage: one line, and no Ray was started for it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    spec = write_spec(tmp_path / "s.yaml", tiny_digits_spec(blocker / "store"))  # under a file: cannot be made
    for extra, says in (([], "storage: cannot write to"), (["--storage", ""], "--storage: empty")):
        proc = cli("sweep", str(spec), *extra)
        assert says in _one_error_line(proc)
        assert "running on" not in proc.stdout  # the line that follows Ray's start
