"""Trajectory matching through the orchestrator: the shipped sweep files, experts produced once per
content and reused by later sweeps, experts fetched from remote storage into an empty node cache,
and the CPU twins end to end through the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from methods.artifacts import content_key
from methods.tm.experts import ExpertBuffer, load_expert
from methods.tm.options import ExpertOptions, TMOptions
from orchestrator.errors import SpecError
from orchestrator.spec.load import parse_spec
from orchestrator.storage.artifacts import MANIFEST_SUFFIX, file_sha256
from orchestrator.storage.locations import join, list_files, read_bytes
from tests.helpers import REPO, class_folders, ddx, write_spec

pytestmark = pytest.mark.timeout(1800)

SWEEPS = REPO / "sweeps"
GPU_FILES = [
    "tm_cifar10.yaml",
    "tm_cifar10_ipc10.yaml",
    "tm_cifar10_ipc50.yaml",
    "ddif_tm_cifar10.yaml",
    "ddif_tm_cifar10_ipc10.yaml",
    "ddif_tm_cifar10_ipc50.yaml",
]
CPU_TWINS = ["tm_cifar10_cpu.yaml", "ddif_tm_cifar10_cpu.yaml"]


def load_sweep(name: str, root: Path) -> dict[str, Any]:
    data = yaml.safe_load((SWEEPS / name).read_text())
    data["dataset"]["root"] = str(root)
    return data


@pytest.mark.parametrize("name", GPU_FILES + CPU_TWINS)
def test_tm_sweep_files_validate_and_keep_only_what_they_read(name: str, tmp_path: Path) -> None:
    spec = parse_spec(load_sweep(name, class_folders(tmp_path)), where=name)
    assert spec.dataset.name == "cifar10" and spec.method["objective"] == "tm"
    assert spec.evaluation.lr_from_set
    assert spec.evaluation.preset == ("ddif_paper" if name.startswith("ddif") else "dd_standard")
    experts = spec.prerequisite("experts").options()
    assert isinstance(experts, ExpertOptions)
    starts = spec.hyper_values("max_start_epoch") or [TMOptions().max_start_epoch]
    spans = spec.hyper_values("expert_epochs") or [TMOptions().expert_epochs]
    assert experts.epochs_trained == max(s - 1 + m for s in starts for m in spans)  # not one snapshot more
    if name in GPU_FILES:  # MTT's buffer: 100 experts × 50 epochs, SGD 0.01, batch 256; 5 students
        assert (experts.num_experts, experts.train_epochs, experts.lr, experts.batch_size) == (100, 50, 0.01, 256)
        assert spec.evaluation.seeds == 5 and spec.evaluation.epochs == 1000
        assert spec.dataset.zca == ("ipc50" not in name)  # MTT and DDiF whiten CIFAR-10 except at IPC 50
    else:
        assert (experts.num_experts, experts.train_epochs) == (2, 4)
        assert spec.dataset.zca and spec.dataset.train_per_class == 20


def test_ddif_tm_files_hold_table_9c() -> None:
    from methods.tm.options import DDIF_TM_SETTINGS

    files = {"ddif_tm_cifar10.yaml": 1, "ddif_tm_cifar10_ipc10.yaml": 10, "ddif_tm_cifar10_ipc50.yaml": 50}
    for name, ipc in files.items():
        method = yaml.safe_load((SWEEPS / name).read_text())["method"]
        row = DDIF_TM_SETTINGS[("cifar10", ipc)]
        assert method["ipc"] == ipc and method["parameterization"] == "neural_field"
        for key in ("syn_steps", "expert_epochs", "max_start_epoch", "batch_syn", "syn_lr_lr", "syn_lr_init"):
            assert method[key] == row[key], (name, key)
        assert (method["nf_width"], method["nf_depth"]) == ((20, 2) if ipc == 50 else (6, 2))  # Table 8


def test_experts_too_short_for_the_trials_fail_validation(tmp_path: Path) -> None:
    data = load_sweep("tm_cifar10.yaml", class_folders(tmp_path))
    data["search"] = {"max_start_epoch": {"grid": [2, 3]}}
    del data["method"]["max_start_epoch"]
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="t.yaml")
    assert err.value.key == "experts.keep_epochs"
    assert "max_start_epoch=3, expert_epochs=2 reads expert epochs up to 4" in err.value.message
    data["experts"]["num_expert"] = 3
    with pytest.raises(SpecError, match="did you mean 'num_experts'"):
        parse_spec(data, where="t.yaml")


# --- end to end through the CLI --------------------------------------------------------------
def tm_digits_spec(storage: str, name: str, syn_steps: list[int]) -> dict[str, Any]:
    """Two-expert TM on digits: a CPU-seconds sweep (one trial per ``syn_steps``)."""
    return {
        "name": name,
        "storage": storage,
        "dataset": {"name": "digits", "resolution": 8},
        "experts": {"arch": "convnet_d1", "num_experts": 2, "train_epochs": 2, "batch_size": 128, "lr": 0.05,
                    "augment": "none"},
        "method": {"objective": "tm", "ipc": 1, "iterations": 2, "expert_epochs": 1, "max_start_epoch": 2,
                   "augment": "none", "checkpoint_every": 0},
        "search": {"syn_steps": {"grid": syn_steps}},
        "resources": {"distill_workers": 1, "cpus_per_worker": 1, "eval_cpus": 1, "max_concurrent_trials": 2},
        "evaluation": {"archs": ["convnet_d1"], "seeds": 1, "epochs": 2, "batch_size": 64, "lr_from_set": True},
    }  # fmt: skip


def manifests(storage: str) -> dict[str, float]:
    """Expert manifest → its ``created_at`` (rewritten whenever a piece is produced again)."""
    folder = join(storage, "cache", "experts")
    return {loc: json.loads(read_bytes(loc))["created_at"] for loc in list_files(folder, MANIFEST_SUFFIX)}


def sweep(tmp_path: Path, spec: dict[str, Any], cache: Path) -> pd.DataFrame:
    path = write_spec(tmp_path / f"{spec['name']}.yaml", spec)
    proc = ddx("sweep", str(path), cwd=tmp_path, timeout=900, env={"DDX_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = pd.read_parquet(io.BytesIO(read_bytes(join(spec["storage"], spec["name"], "results.parquet"))))
    assert (rows["status"] == "ok").all(), rows[["status", "error"]]
    return rows


def produced(rows: pd.DataFrame) -> int:
    """Prerequisite pieces the sweep's trials produced (each trial counts its own, once)."""
    return int(rows.groupby("trial_key")["prerequisite_pieces_produced"].first().sum())


@pytest.mark.slow
def test_experts_are_trained_once_for_two_trials_and_zero_times_by_a_later_sweep(tmp_path: Path) -> None:
    storage = str(tmp_path / "results")
    cache = tmp_path / "node-cache"
    first = sweep(tmp_path, tm_digits_spec(storage, "tm_a", [2, 3]), cache)
    assert first["trial_key"].nunique() == 2
    assert produced(first) == 2  # two experts, one task each, for both (concurrent) trials together
    made = manifests(storage)
    assert len(made) == 2
    assert set(first["num_experts"]) == {2} and set(first["expert_epochs_kept"]) == {2}
    assert (first["eval_lr"] == first["syn_lr"]).all()  # students trained with the learned step size
    assert (first["syn_lr"] != 0.01).all()  # … which moved from its initial value

    again = sweep(tmp_path, tm_digits_spec(storage, "tm_a", [2, 3]), cache)  # the same sweep, re-run
    assert sorted(again["created_at"]) == sorted(first["created_at"]) and manifests(storage) == made

    later = sweep(tmp_path, tm_digits_spec(storage, "tm_b", [4]), cache)  # another sweep, same storage
    assert produced(later) == 0 and manifests(storage) == made


@pytest.mark.slow
def test_a_fresh_node_cache_fetches_and_verifies_the_experts_from_storage(tmp_path: Path, s3_server) -> None:
    storage = join(s3_server("tm-experts"), "ddx")
    first = sweep(tmp_path, tm_digits_spec(storage, "tm_s3_a", [2]), tmp_path / "node-a")
    assert produced(first) == 2
    fresh = tmp_path / "node-b"  # a node that trained nothing: its cache starts empty
    later = sweep(tmp_path, tm_digits_spec(storage, "tm_s3_b", [3]), fresh)
    assert produced(later) == 0
    local = sorted((fresh / "artifacts" / "experts").glob("*.pt"))
    assert len(local) == 2
    for loc in manifests(storage):
        body = json.loads(read_bytes(loc))
        copy = fresh / "artifacts" / "experts" / f"{content_key(body['description'])}.pt"
        assert file_sha256(copy) == body["sha256"] and copy.stat().st_size == body["size"]
    buffer = ExpertBuffer(local)
    assert buffer.num_experts == 2 and buffer.last_epoch == 2 and load_expert(local[0])["meta"]["arch"] == "convnet_d1"


@pytest.mark.slow
@pytest.mark.parametrize("name", CPU_TWINS)
def test_cpu_twin_runs_end_to_end(name: str, tmp_path: Path, cifar10_root: Path) -> None:
    data = load_sweep(name, cifar10_root)
    data["storage"] = str(tmp_path / "results")
    rows = sweep(tmp_path, data, tmp_path / "cache")
    trials = rows["trial_key"].nunique()
    assert len(rows) == trials * data["evaluation"]["seeds"]
    assert produced(rows) == 2 and len(manifests(data["storage"])) == 2  # 2 experts, whatever the trials
    assert (rows["eval_lr"] == rows["syn_lr"]).all() and (rows["budget_scalars"] == 3072).all()
    assert rows["test_acc"].between(0, 1).all()
    per_class = 37 if data["method"]["parameterization"] == "neural_field" else 1  # DDiF Table 8
    assert set(rows["instances_per_class"]) == {per_class}
