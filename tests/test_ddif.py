"""DDiF in the orchestrator: sweep files, budget validation before any work, PNG export, end to end."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from methods.parameterizations import ParamConfig, SetShape, build_parameterization, save_synthetic
from methods.registry import PARAMETERIZATIONS
from orchestrator.errors import SpecError
from orchestrator.spec.load import parse_spec
from orchestrator.spec.trials import trial_config, trial_key
from tests.helpers import REPO, class_folders, cli, ddx, write_spec

SWEEPS = REPO / "sweeps"


def load_sweep(name: str, root: Path, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((SWEEPS / name).read_text())
    data["dataset"]["root"] = str(root)
    for block, values in changes.items():
        data[block] = {**data.get(block, {}), **values}
    return data


@pytest.mark.parametrize("name", ["ddif_width_depth.yaml", "ddif_width_depth_cpu.yaml"])
def test_sweep_files_validate_and_the_pixel_reference_is_one_trial(name: str, tmp_path: Path) -> None:
    spec = parse_spec(load_sweep(name, class_folders(tmp_path)), where=name)
    assert spec.dataset.name == "cifar10" and spec.method["ipc"] == 1
    assert spec.evaluation.resolutions == [32, 64]
    grid = {k: d.grid for k, d in spec.search.items()}
    assert set(grid) == {"parameterization", "nf_width", "nf_depth"} and "pixels" in grid["parameterization"]
    keys: dict[str, set[str]] = {"pixels": set(), "neural_field": set()}
    for combo in itertools.product(*grid.values()):
        config = trial_config(spec, dict(zip(grid, combo, strict=True)))
        keys[config.parameterization_name].add(trial_key(config))
    assert len(keys["pixels"]) == 1
    assert len(keys["neural_field"]) == len(grid["nf_width"]) * len(grid["nf_depth"])


def test_infeasible_width_depth_fails_before_any_work(tmp_path: Path) -> None:
    data = load_sweep("ddif_width_depth.yaml", class_folders(tmp_path))
    data["search"]["nf_width"] = {"grid": [6, 10, 20, 40]}
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="w.yaml")
    assert err.value.key == "search.nf_width.grid"
    assert "nf_width=40, nf_depth=3 fits 0 instances per class at ipc=1" in err.value.message
    assert "one instance needs 3523" in err.value.message
    # d=40 with L=2 fits one field per class (b = 1,883 ≤ 3,072)
    data["search"]["nf_depth"] = {"grid": [2]}
    parse_spec(data, where="w.yaml")
    # raising the budget makes the grid feasible again
    data["search"]["nf_depth"] = {"grid": [2, 3]}
    data["method"]["ipc"] = 2
    parse_spec(data, where="w.yaml")


def test_ddx_validate_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    spec = {
        "name": "bad",
        "dataset": {"name": "cifar10", "root": str(class_folders(tmp_path))},
        "method": {"objective": "dm", "parameterization": "neural_field", "ipc": 1, "nf_width": 40, "nf_depth": 3},
    }
    res = cli("validate", str(write_spec(tmp_path / "bad.yaml", spec)))
    assert res.exit_code == 2
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "method.nf_width: neural_field with nf_width=40, nf_depth=3" in lines[0]
    # digits (1×8×8 = 64 scalars per class): a d=6 field needs 6·3 + 6·7 + 1·7 = 67
    spec["dataset"] = {"name": "digits"}
    spec["method"]["nf_width"], spec["method"]["nf_depth"] = 6, 2
    res = cli("validate", str(write_spec(tmp_path / "bad2.yaml", spec)))
    assert res.exit_code == 2 and "one instance needs 67" in res.output


def _set(name: str, **opts: Any):
    options = PARAMETERIZATIONS.get(name).options(**opts)
    p = build_parameterization(ParamConfig(name, SetShape(10, 1, 3, 32), options))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in p.parameters():
            t.copy_(torch.randn(t.shape, generator=g) * (1.0 if name == "pixels" else 0.5))
    return p


def test_ddx_export_writes_one_grid_per_class(tmp_path: Path) -> None:
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    field = _set("neural_field", nf_width=6)
    save_synthetic(field, tmp_path / "nf.pt", extra={"mean": mean, "std": std, "class_names": list("abcdefghij")})
    res = cli("export", str(tmp_path / "nf.pt"), "--resolution", "64", "--out", str(tmp_path / "nf"))
    assert res.exit_code == 0, res.output
    pngs = sorted((tmp_path / "nf").glob("*.png"))
    assert [p.name for p in pngs][:2] == ["class_000_a_r64.png", "class_001_b_r64.png"] and len(pngs) == 10
    # 37 fields per class → a 7-column grid of 64px tiles with 1px padding: 7 × 6 tiles
    assert Image.open(pngs[0]).size == (7 * 65 + 1, 6 * 65 + 1)
    assert "37 instances per class" in (tmp_path / "nf" / "README.txt").read_text()

    pixels = _set("pixels")
    save_synthetic(pixels, tmp_path / "px.pt", extra={"mean": mean, "std": std})
    res = cli("export", str(tmp_path / "px.pt"), "--out", str(tmp_path / "px"))
    assert res.exit_code == 0, res.output
    png = np.asarray(Image.open(tmp_path / "px" / "class_003_r32.png").convert("RGB"))
    assert png.shape == (32, 32, 3)  # one instance per class: the tile alone (make_grid adds no padding)
    expected = (pixels.images[3] * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)).clamp(0, 1)
    expected = expected.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(png.astype(int) - expected.astype(int)).max() <= 1
    res = cli("export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x"))
    assert res.exit_code == 2
    # a resolution whose decoded set cannot fit any machine: one line before decoding (was a traceback)
    res = cli("export", str(tmp_path / "px.pt"), "--resolution", "10000000", "--out", str(tmp_path / "huge"))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith("error: --resolution: decoding 10 images at 10000000 px needs "), lines[0]
    assert not (tmp_path / "huge").exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a torch file", "not a torch file (text: 'not a torch file'); give a synthetic set a sweep wrote"),
        ({"images": torch.zeros(2, 1, 8, 8), "labels": torch.tensor([0, 1])}, "not a ddx synthetic set"),
        ({"config": {"name": "pixels"}, "state": {}}, "a damaged ddx synthetic set"),
    ],
    ids=["junk", "images and labels", "damaged"],
)
def test_ddx_export_of_what_is_not_a_ddx_set_is_one_line(tmp_path: Path, content: object, says: str) -> None:
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    res = cli("export", str(path), "--out", str(tmp_path / "out"))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}: {says}"), res.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cpu_sweep_runs_end_to_end(cifar10_root: Path, tmp_path: Path) -> None:
    data = load_sweep("ddif_width_depth_cpu.yaml", cifar10_root)
    data["storage"] = str(tmp_path / "results")
    path = write_spec(tmp_path / "ddif_cpu.yaml", data)
    proc = ddx("sweep", str(path), timeout=3600, env={"DDX_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = pd.read_parquet(tmp_path / "results" / data["name"] / "results.parquet")
    assert (rows["status"] == "ok").all()
    assert set(rows["eval_resolution"]) == {32, 64}
    assert (rows["budget_scalars"] == 3072).all()
    fields = rows[rows["parameterization"] == "neural_field"]
    pixels = rows[rows["parameterization"] == "pixels"]
    per_class = fields.groupby(["nf_width", "nf_depth"])["instances_per_class"].first().to_dict()
    assert per_class == {(10, 2): 17, (10, 3): 10, (20, 2): 5, (20, 3): 3}
    assert (pixels["instances_per_class"] == 1).all() and pixels["trial_key"].nunique() == 1
    assert set(fields.loc[fields["eval_resolution"] == 64, "resize_mode"]) == {"coordinates"}
    assert set(pixels.loc[pixels["eval_resolution"] == 64, "resize_mode"]) == {"bilinear"}
    assert set(rows.loc[rows["eval_resolution"] == 32, "resize_mode"]) == {"none"}
    assert rows["test_acc"].between(0, 1).all()
    syn = sorted((tmp_path / "results" / data["name"] / "synthetic").glob("*.pt"))
    assert len(syn) == 5
    res = cli("export", str(syn[0]), "--resolution", "64", "--out", str(tmp_path / "png"))
    assert res.exit_code == 0 and len(list((tmp_path / "png").glob("*.png"))) == 10
