"""Sweep-file validation: valid files parse; each malformed one gives one line, exit 2, no writes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.spec import load_spec, parse_spec
from tests.helpers import REPO, cli, ddx, tiny_digits_spec, write_spec


def test_quickstart_parses_with_expected_values() -> None:
    spec = load_spec(REPO / "sweeps" / "quickstart.yaml")
    assert spec.name == "quickstart"
    assert spec.dataset.name == "digits"
    assert spec.search["ipc"].grid == [1, 10]
    assert spec.search["objective"].grid == ["random", "dm"]
    assert spec.evaluation.archs == ["convnet_d3", "resnet18"]
    assert spec.evaluation.seeds >= 2
    assert spec.resources.trial_resources is None  # the cluster's driver token (runtime.trial_token)


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_file_validates(path: Path, cifar10_root: Path, monkeypatch) -> None:
    data = yaml.safe_load(path.read_text())
    root = data.get("dataset", {}).get("root")
    if root and not Path(root).exists():  # GPU/cluster examples point at the user's data
        data["dataset"]["root"] = str(cifar10_root)
    parse_spec(data, where=path.name)


BASE = tiny_digits_spec(Path("/tmp/never"))


def _mutated(mutate) -> dict:
    data = copy.deepcopy(BASE)
    mutate(data)
    return data


CASES = {
    "unknown top-level key": (lambda d: d.update(algoritm="grid"), "algoritm", "did you mean 'algorithm'"),
    "unknown nested key": (lambda d: d["evaluation"].update(epoch=3), "evaluation.epoch", "did you mean 'epochs'"),
    "unknown hyper-parameter": (lambda d: d["method"].update(iteratons=3), "method.iteratons", "did you mean"),
    "wrong type": (lambda d: d["method"].update(iterations="many"), "method.iterations", "expected int"),
    "wrong type (pydantic)": (lambda d: d["evaluation"].update(seeds="two"), "evaluation.seeds", "integer"),
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
    "unknown objective": (lambda d: d["method"].update(objective="dn"), "method.objective", "known: "),
    "unknown network": (lambda d: d["evaluation"].update(archs=["resnet19"]), "evaluation.archs", "did you mean"),
    "missing root": (lambda d: d["dataset"].update(name="cifar10"), "dataset.root", "needs a root"),
    "root does not exist": (
        lambda d: d["dataset"].update(name="imagefolder", root="/no/such/dir"),
        "dataset.root",
        "does not exist",
    ),
    "negative ipc": (lambda d: d["search"].update(ipc={"grid": [0, 1]}), "search.ipc.grid", "must be > 0"),
    "bad name": (lambda d: d.update(name="has space"), "name", "pattern"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_specs_name_the_key(case: str) -> None:
    mutate, key, fragment = CASES[case]
    with pytest.raises(SpecError) as info:
        parse_spec(_mutated(mutate), where="bad.yaml")
    line = info.value.line()
    assert "\n" not in line
    assert line.startswith(f"bad.yaml: {key}"), line
    assert fragment in line, line


def test_bad_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmethod: {objective: dm\n  ipc: [1,\n")
    with pytest.raises(SpecError, match=r"invalid YAML at line \d+"):
        load_spec(path)


def test_yaml_is_data_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_spec(path)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(algoritm="grid"),
        lambda d: d["method"].update(iterations="many"),
        lambda d: d["resources"].update(distill_workers=0),
        lambda d: d["dataset"].update(name="cifar10", root="/no/such/dir"),
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "missing-root"],
)
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_cli_rejects_bad_specs_with_exit_2_and_writes_nothing(tmp_path: Path, mutate, command: str) -> None:
    storage = tmp_path / "store"
    data = tiny_digits_spec(storage)
    mutate(data)
    spec = write_spec(tmp_path / "bad.yaml", data)
    proc = cli(command, str(spec))
    assert proc.exit_code == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and str(spec) in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not storage.exists()


def test_cli_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    for target in (broken, tmp_path / "absent.yaml"):
        proc = cli("validate", str(target))
        assert proc.exit_code == 2
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr


def test_validate_prints_plan(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "ok.yaml", tiny_digits_spec(tmp_path / "store"))
    proc = cli("validate", str(spec))
    assert proc.exit_code == 0, proc.stderr
    assert "2 trials × 4 evaluations" in proc.stdout
    assert not (tmp_path / "store").exists()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "ok.yaml", tiny_digits_spec(tmp_path / "store"))
    proc = cli("sweep", str(spec), "--dry-run")
    assert proc.exit_code == 0, proc.stdout + proc.stderr
    assert "2 trials" in proc.stdout
    assert not (tmp_path / "store").exists()


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
