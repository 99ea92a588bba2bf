"""The evaluation protocol: final model reported, validation for selection, seeds, label modes,
cross-resolution decoding, arch resolution per resolution, references, failures, fractional GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from methods.augment.options import DSA_DEFAULT, DSA_OPS, parse_strategy
from methods.datasets import DatasetOptions
from methods.evaluation.protocol import Protocol
from methods.evaluation.real_training_options import RealTrainSettings
from methods.evaluation.student import EvalSettings, soft_label_loss, train_student
from methods.networks import NetworkError, build_network
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, payload_bytes, synthetic_payload
from methods.parameterizations.options import PixelOptions
from orchestrator.evaluation.jobs import EvalJob, StudentPlan, plan_jobs
from orchestrator.evaluation.reference import ReferenceJob, reference_job, reference_jobs
from orchestrator.evaluation.tasks import evaluate_group
from orchestrator.spec.load import parse_spec

DIGITS = DatasetOptions(name="digits", resolution=8)


@pytest.fixture(scope="module")
def pixel_payload(digits) -> bytes:
    """A real pixel set: two real digits per class (the random-real baseline)."""
    shape = SetShape(num_classes=10, ipc=2, channels=1, resolution=8)
    param = build_parameterization(ParamConfig("pixels", shape, PixelOptions(resize_mode="bicubic")))
    g = torch.Generator().manual_seed(0)
    param.init_from_real(torch.cat([digits.sample_class(c, 2, g) for c in range(10)]))
    return payload_bytes(synthetic_payload(param))  # what evaluation tasks receive: the saved file's bytes


def test_validation_split_is_carved_from_train_and_disjoint(digits) -> None:
    assert len(digits.val_y) > 0 and len(digits.test_y) > 0
    train = {tuple(x.flatten().tolist()) for x in digits.train_x}
    overlap = sum(tuple(x.flatten().tolist()) in train for x in digits.val_x)
    # digits has a handful of exact duplicate images; a carve from train shares no *indices*
    assert overlap <= 2
    assert set(digits.val_y.tolist()) == set(range(10))


def test_final_model_is_reported_and_max_over_test_is_labelled_separately(digits) -> None:
    x = torch.cat([digits.sample_class(c, 3, torch.Generator().manual_seed(c)) for c in range(10)])
    y = torch.arange(10).repeat_interleave(3)
    s = EvalSettings(epochs=6, batch_size=32, lr=0.01, track_test=True, check_every=2)
    out = train_student(x, y, digits, "convnet_d2", seed=0, settings=s)
    epochs = [e for e, _, _ in out.curve]
    assert epochs == [2, 4, 6]
    assert out.val_acc == out.curve[-1][1]  # the final model's validation accuracy …
    assert out.test_acc == out.curve[-1][2]  # … and its test accuracy, not the best epoch's
    assert out.max_over_test == max(t for _, _, t in out.curve)
    assert out.max_over_test >= out.test_acc
    plain = EvalSettings(epochs=6, batch_size=32, lr=0.01, check_every=2)
    untracked = train_student(x, y, digits, "convnet_d2", 0, plain)
    assert untracked.max_over_test is None
    assert all(t is None for _, _, t in untracked.curve)  # test never looked at during training
    assert untracked.test_acc == pytest.approx(out.test_acc)  # same seed → same model


def test_seeds_decide_the_student(digits) -> None:
    x = digits.train_x[:40]
    y = digits.train_y[:40]
    s = EvalSettings(epochs=2, batch_size=20)
    a = train_student(x, y, digits, "convnet_d1", 0, s)
    b = train_student(x, y, digits, "convnet_d1", 0, s)
    c = train_student(x, y, digits, "convnet_d1", 1, s)
    wa, wb, wc = (o.model.classifier.weight for o in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_hard_labels_use_dsa_and_soft_labels_need_a_teacher(digits) -> None:
    assert parse_strategy(EvalSettings().augment) == list(DSA_OPS)
    assert EvalSettings().augment_mode == "single"  # one DSA op per batch, as the reference
    assert EvalSettings().augment == DSA_DEFAULT
    with pytest.raises(ValueError, match="teacher"):
        train_student(
            digits.train_x[:10], digits.train_y[:10], digits, "convnet_d1", 0, EvalSettings(label_mode="soft")
        )
    logits = torch.randn(4, 10)
    assert soft_label_loss(logits, logits.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_label_loss(logits, torch.randn(4, 10), 4.0).item() > 0


def test_soft_label_students_learn_from_the_teacher(digits) -> None:
    torch.manual_seed(0)
    teacher = build_network("convnet_d1", 1, 10, 8).eval()
    x, y = digits.train_x[:30], digits.train_y[:30]
    s = EvalSettings(epochs=3, batch_size=15, label_mode="soft", temperature=4.0, soft_augment="none")
    out = train_student(x, y, digits, "convnet_d1", 0, s, teacher=teacher)
    assert 0.0 <= out.val_acc <= 1.0 and 0.0 <= out.test_acc <= 1.0
    assert len(out.curve) == 3


def test_convnet_depth_follows_each_resolution_in_the_plan() -> None:
    jobs = plan_jobs(["convnet", "convnet_d2", "resnet18"], [8, 16, 32], [0, 1], ["hard"])
    by = {(j.arch, j.resolution): j for j in jobs}
    assert by[("convnet_d1", 8)].requested == "convnet"
    assert by[("convnet_d3", 32)].requested == "convnet"
    # convnet at 16 px *is* convnet_d2: one shared job, recorded under the first name listed
    assert by[("convnet_d2", 16)].requested == "convnet"
    assert by[("convnet_d2", 8)].requested is None
    assert by[("resnet18", 32)].requested is None
    assert len(jobs) == len({j.key for j in jobs}) == (3 * 3 - 1) * 2


def _one(payload: bytes, job: EvalJob, protocol: Protocol) -> dict:
    (row,) = evaluate_group(payload, [job], DIGITS, protocol, 1, False)
    return row


def test_cross_resolution_decode_and_matching_test_set(pixel_payload) -> None:
    protocol = Protocol.of({"epochs": 2, "batch_size": 20, "check_every": 1})
    out = _one(pixel_payload, EvalJob("convnet_d2", 16, 0, "hard"), protocol)
    assert out["status"] == "ok"
    assert out["resize_mode"] == "bicubic"
    assert len(json.loads(out["curve"])) == 2
    same = _one(pixel_payload, EvalJob("convnet_d2", 8, 0, "hard"), protocol)
    assert same["resize_mode"] == "none"
    # ConvNet-D4 needs ≥ 16 px: it trains on the 16 px decode, and refuses the 8 px set
    assert _one(pixel_payload, EvalJob("convnet_d4", 16, 0, "hard"), protocol)["status"] == "ok"
    with pytest.raises(NetworkError, match="8px"):
        _one(pixel_payload, EvalJob("convnet_d4", 8, 0, "hard"), protocol)


def test_reference_jobs_follow_the_spec() -> None:
    base = {
        "name": "r",
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"objective": "random", "ipc": 1},
        "evaluation": {"archs": ["convnet", "resnet18"], "resolutions": [8, 16], "seeds": 3},
    }
    assert reference_jobs(parse_spec(base)) == []
    spec = parse_spec({**base, "evaluation": {**base["evaluation"], "reference": True}})
    assert spec.evaluation.reference is not None and spec.evaluation.reference.epochs == 30
    assert len(reference_jobs(spec)) == 2 * 2 * 3
    spec = parse_spec({**base, "evaluation": {**base["evaluation"], "reference": {"epochs": 2, "seeds": 1}}})
    jobs = reference_jobs(spec)
    assert {(j.arch, j.resolution, j.seed) for j in jobs} == {
        (a, r, 0) for a in ("convnet", "resnet18") for r in (8, 16)
    }


def test_reference_is_trained_once_and_cached(tmp_path: Path, digits) -> None:
    settings = RealTrainSettings(epochs=1, batch_size=256, lr=0.05, schedule="cosine", augment="crop_flip")
    job = ReferenceJob("convnet", 16, 0)
    first = reference_job(job, DIGITS, settings, str(tmp_path), 1, False)
    assert first["status"] == "ok" and first["cached"] is False
    assert first["eval_arch"] == "convnet_d2" and first["eval_resolution"] == 16
    assert first["train_images"] == len(digits.train_y)
    again = reference_job(job, DIGITS, settings, str(tmp_path), 1, False)
    assert again["cached"] is True
    assert (again["val_acc"], again["test_acc"]) == (first["val_acc"], first["test_acc"])
    assert len(list((tmp_path / "reference").glob("*.result"))) == 1
    assert len(list((tmp_path / "reference").glob("*.json"))) == 1  # its description
    other = reference_job(ReferenceJob("convnet", 16, 1), DIGITS, settings, str(tmp_path), 1, False)
    assert other["cached"] is False and other["reference_key"] != first["reference_key"]


def test_fractional_gpu_spec_is_accepted() -> None:
    spec = parse_spec(
        {
            "name": "g",
            "dataset": {"name": "digits", "resolution": 8},
            "method": {"objective": "random", "ipc": 1},
            "resources": {"eval_gpus": 0.25, "eval_cpus": 0.5},
        }
    )
    assert spec.resources.eval_gpus == 0.25 and spec.resources.eval_cpus == 0.5


def test_failed_evaluation_becomes_a_failed_row(ray_session, pixel_payload) -> None:
    import ray

    from orchestrator.evaluation.sets import Evaluation, Evaluator, SetUnderEvaluation
    from orchestrator.evaluation.tasks import TaskResources

    results: list[tuple[EvalJob, dict]] = []
    evaluation = Evaluation(
        Protocol.of({"epochs": 1, "batch_size": 20}),
        StudentPlan(archs=("vgg11", "convnet_d1"), seeds=(0,)),
        DIGITS,
        TaskResources(cpus=1, gpus=0, retries=1),
    )
    evaluator = Evaluator(evaluation, lambda s, j, r: results.append((j, r)))
    assert evaluator.submit(SetUnderEvaluation("set", ray.put(pixel_payload), 2, 8, {"objective": "x"})) == 2
    evaluator.drain()
    by = {j.arch: r for j, r in results}
    assert all(r["objective"] == "x" and r["protocol"].startswith("custom-") for r in by.values())
    assert set(by) == {"vgg11", "convnet_d1"}
    assert by["convnet_d1"]["status"] == "ok"
    assert by["vgg11"]["status"] == "failed"
    assert "vgg11 needs inputs of at least 32px" in by["vgg11"]["error"]


PACKING_SCRIPT = textwrap.dedent(
    """
    import json, threading, time
    import ray, torch
    from methods.datasets import DatasetOptions, cached_dataset
    from methods.parameterizations import ParamConfig, SetShape, build_parameterization
    from methods.parameterizations import payload_bytes, synthetic_payload
    from methods.evaluation.protocol import Protocol
    from orchestrator.evaluation.jobs import StudentPlan
    from orchestrator.evaluation.sets import Evaluation, Evaluator, SetUnderEvaluation
    from orchestrator.evaluation.tasks import TaskResources

    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    data = cached_dataset(DatasetOptions(name="digits", resolution=8))
    param = build_parameterization(ParamConfig("pixels", SetShape(10, 1, 1, 8)))
    param.init_from_real(torch.cat([data.sample_class(c, 1) for c in range(10)]))
    # four groups (one task each): four networks, one seed each
    plan = StudentPlan(archs=("convnet_d1", "convnet_d2", "convnet_d3", "convnet_bn_d1"), seeds=(0,))
    protocol = Protocol.of({"epochs": 150, "batch_size": 10, "check_every": 150})
    evaluation = Evaluation(protocol, plan, DatasetOptions(name="digits", resolution=8), TaskResources(0.5, 0.25, 0))
    rows, seen = [], []
    evaluator = Evaluator(evaluation, lambda s, j, r: rows.append(r["status"]))
    evaluator.submit(SetUnderEvaluation("set", ray.put(payload_bytes(synthetic_payload(param))), 1, 8, {}))
    t = threading.Thread(target=evaluator.drain)
    t.start()
    while t.is_alive():
        seen.append(ray.available_resources().get("GPU", 0.0))
        time.sleep(0.05)
    print(json.dumps({"rows": rows, "gpu_free": seen}))
    """
)


@pytest.mark.slow
def test_fractional_gpus_pack_four_students_on_one_gpu(tmp_path: Path) -> None:
    """One declared GPU, eval_gpus 0.25: Ray runs four evaluation tasks on it at once.

    (A CPU machine declares a logical GPU; the tasks fall back to the CPU, but Ray's
    accounting of the 0.25 shares is the real one.)
    """
    out = subprocess.run(
        [sys.executable, "-c", PACKING_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows"] == ["ok"] * 4
    free = result["gpu_free"]
    assert min(free) == pytest.approx(0.0, abs=1e-9)  # all four 0.25 shares held at the same moment
    assert all(any(abs(f - k * 0.25) < 1e-9 for k in range(5)) for f in free)
