"""The squeeze step through the orchestrator: the teacher block, the cached teacher, soft labels,
and the CPU-scale CFM sweep end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import ddx, write_spec

from methods.evaluation.real_training import RealTrainSettings, load_network
from methods.teacher.squeeze import SQUEEZE_PRESETS
from orchestrator.errors import SpecError
from orchestrator.spec.load import parse_spec
from orchestrator.spec.model import PREREQUISITE_BLOCKS
from tests.helpers import trial_of

TeacherBlock = PREREQUISITE_BLOCKS["teacher"]

REPO = Path(__file__).resolve().parent.parent


def digits_spec(storage: Path, **over) -> dict:
    spec = {
        "name": "cfm_digits",
        "storage": str(storage),
        "dataset": {"name": "digits", "resolution": 8},
        "teacher": {"arch": "convnet_d2", "epochs": 2, "batch_size": 64},
        "method": {"objective": "cfm", "iterations_per_batch": 3, "ipc": 1},
        "search": {"beta": {"grid": [0.01, 0.1]}},
        "resources": {"distill_workers": 1, "eval_cpus": 1, "max_concurrent_trials": 1},
        "evaluation": {"archs": ["convnet_d2"], "seeds": 1, "epochs": 2, "label_mode": ["hard", "soft"],
                       "temperature": 30},
    }  # fmt: skip
    spec.update(over)
    return spec


def test_teacher_block_presets_and_overrides() -> None:
    assert TeacherBlock().settings() == RealTrainSettings()
    table2 = TeacherBlock(preset="cifar10").settings()
    assert table2 == SQUEEZE_PRESETS["cifar10"]
    assert (table2.epochs, table2.lr, table2.weight_decay, table2.batch_size) == (200, 0.1, 5e-4, 128)
    mixed = TeacherBlock(preset="cifar10", epochs=3, lr=0.01).settings()
    assert (mixed.epochs, mixed.lr, mixed.momentum) == (3, 0.01, 0.9)
    with pytest.raises(ValueError, match="'cifar10', 'cifar100' or 'tiny_imagenet'"):
        TeacherBlock(preset="imagenet21k")
    with pytest.raises(ValueError, match="unknown network"):
        TeacherBlock(arch="resnet19")


def test_cfm_keys_are_sweep_keys(tmp_path: Path) -> None:
    spec = parse_spec(digits_spec(tmp_path))
    assert spec.teacher is not None and spec.teacher.arch == "convnet_d2"
    bad = digits_spec(tmp_path)
    bad["method"]["bta"] = 0.1
    with pytest.raises(SpecError, match="did you mean 'beta'"):
        parse_spec(bad)
    wrong = digits_spec(tmp_path)
    wrong["method"]["use_ce"] = "yes"
    with pytest.raises(SpecError, match="use_ce: expected true or false"):
        parse_spec(wrong)


def test_teacher_is_trained_once_and_reused(tmp_path: Path, ray_session) -> None:
    from orchestrator.storage.artifacts import ArtifactStore, cache_root
    from orchestrator.sweep import prerequisites

    spec = parse_spec(digits_spec(tmp_path))
    store = ArtifactStore(cache_root(str(tmp_path)), local_dir=tmp_path / "node-local")
    res = prerequisites.Resources(cpus=1, gpus=0, retries=0)

    def ensure(s):
        return prerequisites.ensure({"teacher": s.prerequisite_options("teacher")}, s.dataset_options(), store, res)

    produced = ensure(spec)
    (ref,) = produced.refs["teacher"]
    path = store.fetch(ref)
    assert path.parent == tmp_path / "cache" / "teacher"  # local storage: used in place, no copy
    stamp = path.stat().st_mtime_ns
    again = ensure(parse_spec(digits_spec(tmp_path, name="another_sweep"))).refs["teacher"][0]
    assert again == ref and store.fetch(again).stat().st_mtime_ns == stamp  # a later sweep reuses it
    model, meta = load_network(path)
    assert meta["arch"] == "convnet_d2" and meta["settings"]["epochs"] == 2
    assert 0.3 < meta["test_acc"] <= 1.0  # it learned something in two epochs on digits
    assert produced.row_fields(store)["teacher_test_acc"] == pytest.approx(meta["test_acc"])
    other = digits_spec(tmp_path)
    other["teacher"]["seed"] = 1
    assert ensure(parse_spec(other)).refs["teacher"][0].key != ref.key  # the seed is part of the key

    # soft-label evaluation loads that teacher: the student learns from its KL targets
    from methods.context import DistillContext
    from methods.datasets import cached_dataset
    from methods.distill.loop import init_from_real
    from methods.distill.pipeline import make_components
    from methods.evaluation.protocol import Protocol
    from methods.parameterizations import payload_bytes, synthetic_payload
    from orchestrator.evaluation.jobs import EvalJob
    from orchestrator.evaluation.tasks import evaluate_group

    data = cached_dataset(spec.dataset_options())
    param = make_components(trial_of(data, {"objective": "random", "ipc": 2}), data).param
    init_from_real(param, data, DistillContext())
    payload = payload_bytes(synthetic_payload(param))
    settings = Protocol.of({"epochs": 2, "batch_size": 64, "temperature": 30.0})
    job = EvalJob("convnet_d2", 8, 0, "soft")
    (row,) = evaluate_group(payload, [job], spec.dataset_options(), settings, 1, False, produced, store.root)
    assert row["status"] == "ok" and 0.0 <= row["test_acc"] <= 1.0
    assert row["hostname"] and row["node_id"]  # where the evaluation ran
    with pytest.raises(ValueError, match="label_mode 'soft' needs teacher"):
        evaluate_group(payload, [job], spec.dataset_options(), settings, 1, False, None)
    del model


@pytest.mark.slow
def test_cpu_cfm_sweep_end_to_end(tmp_path: Path, cifar10_root: Path) -> None:
    """``ddx sweep`` on the shipped CPU-scale CFM file (shrunk further): rows carry beta, eta, objective, label mode."""
    data = yaml.safe_load((REPO / "sweeps" / "cfm_beta_cpu.yaml").read_text())
    data["storage"] = str(tmp_path / "results")
    data["dataset"].update(root=str(cifar10_root), train_per_class=30, val_per_class=5, test_per_class=10)
    data["teacher"]["epochs"] = 1
    data["method"]["iterations_per_batch"] = 3
    data["evaluation"].update(seeds=1, epochs=2)
    spec_path = write_spec(tmp_path / "cfm.yaml", data)
    run = ddx("sweep", str(spec_path), timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = pd.read_parquet(tmp_path / "results" / "cfm_beta_cpu" / "results.parquet")
    assert len(rows) == 2 * 2  # two β × (hard, soft)
    assert set(rows["status"]) == {"ok"}
    assert sorted(rows["beta"].unique().tolist()) == [0.01, 0.1]
    assert set(rows["eta"]) == {0.1} and set(rows["objective"]) == {"cfm"}
    assert set(rows["label_mode"]) == {"hard", "soft"}
    assert set(rows["teacher_arch"]) == {"convnet_d3"}
    teachers = list((tmp_path / "results" / "cache" / "teacher").glob("*.pt"))
    stats = list((tmp_path / "results" / "cache" / "statistics").glob("*.pt"))
    assert len(teachers) == 1 and len(stats) == 1  # one squeeze and one statistics pass for both trials
    assert torch.load(teachers[0], weights_only=True)["meta"]["arch"] == "convnet_d3"
