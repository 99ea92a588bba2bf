"""Batched students (methods.evaluation.student_batch): K seeds trained as one vmapped computation
equal the same seeds trained one by one — the same initial weights and views (exactly), the same
first-step losses (≤ 1e-5 relative), final accuracies within 0.5 pt — for hard labels, teacher
soft labels (the teacher in eval and in train mode, crop with a black fill), learned soft labels,
BatchNorm networks, chunks and the one-by-one fallback."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import ray
import torch
import torch.nn.functional as F
from torch import nn

import methods.evaluation.student_chunks as chunks
from methods.datasets import DatasetOptions, EvalData, cached_dataset
from methods.evaluation.options import EvalSettings
from methods.evaluation.protocol import Protocol
from methods.evaluation.seed_streams import SeedStreams
from methods.evaluation.stacked_students import StackedStudents
from methods.evaluation.student import Execution, black_fill, make_optimizer, train_student
from methods.evaluation.student_batch import train_students
from methods.evaluation.student_chunks import batchable, chunk_size
from methods.networks import Classifier, build_network
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, payload_bytes, synthetic_payload
from methods.parameterizations.options import PixelOptions
from methods.seeding import seeded
from orchestrator.evaluation.jobs import EvalJob
from orchestrator.evaluation.tasks import evaluate_group, failed_result

DIGITS = DatasetOptions(name="digits", resolution=8)
SEEDS = [0, 1, 2]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _subset(data, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([data.sample_class(c, per_class, g) for c in range(data.num_classes)])
    return x, torch.arange(data.num_classes).repeat_interleave(per_class)


def _run(x, y, data, arch, settings, teacher=None, **kw):
    """Batched (K = 3) and one-by-one outcomes, and every step's per-seed losses of both."""
    batched_losses: list[torch.Tensor] = []
    alone_losses: list[list[torch.Tensor]] = [[] for _ in SEEDS]
    batched = train_students(
        x,
        y,
        data,
        arch,
        SEEDS,
        settings,
        teacher=teacher,
        max_batch=3,
        on_step=lambda i, loss: batched_losses.append(loss),
    )
    alone = [
        train_students(x, y, data, arch, [s], settings, teacher=teacher, on_step=partial(_append, alone_losses[k]))[0]
        for k, s in enumerate(SEEDS)
    ]
    return batched, alone, torch.stack(batched_losses), torch.stack([torch.cat(ls) for ls in alone_losses], 1)


def _append(into: list[torch.Tensor], _step: int, losses: torch.Tensor) -> None:
    into.append(losses)


def _first_step_relative(b_losses: torch.Tensor, a_losses: torch.Tensor) -> float:
    return float(((b_losses[0] - a_losses[0]) / a_losses[0]).abs().max())


def _state_close(a: nn.Module, b: nn.Module) -> float:
    sa, sb_ = a.state_dict(), b.state_dict()
    assert sa.keys() == sb_.keys()
    return max(float((sa[k].double() - sb_[k].double()).abs().max()) for k in sa)


# ---------------------------------------------------------------------------------------------
# random streams and initial weights


def test_seed_streams_give_each_seed_its_draws_alone_whatever_the_interleaving() -> None:
    device = torch.device("cpu")
    alone = []
    for s in SEEDS:
        with seeded(s):
            alone.append([torch.rand(3), torch.randperm(7), torch.randint(0, 9, (4,))])
    torch.manual_seed(123)
    caller = torch.random.get_rng_state()
    streams = SeedStreams(SEEDS, device)
    got: list[list[torch.Tensor]] = [[] for _ in SEEDS]
    for draw in (lambda: torch.rand(3), lambda: torch.randperm(7), lambda: torch.randint(0, 9, (4,))):
        for k in reversed(range(len(SEEDS))):  # another order than the seeds'
            with streams.use(k):
                got[k].append(draw())
    assert torch.equal(torch.random.get_rng_state(), caller)  # the caller's stream is untouched
    for want, have in zip(alone, got, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(want, have, strict=True))


def test_batched_students_start_from_exactly_the_one_by_one_weights() -> None:
    streams = SeedStreams(SEEDS, torch.device("cpu"))
    models = []
    for k in range(len(SEEDS)):
        with streams.use(k):
            models.append(build_network("convnet_d2", 1, 10, 8))
    stacked = StackedStudents(models, Execution(), torch.device("cpu"))
    for k, s in enumerate(SEEDS):
        with seeded(s):
            alone = build_network("convnet_d2", 1, 10, 8)
        for name, p in alone.named_parameters():
            assert torch.equal(stacked.params[name][k], p)  # exactly, not approximately
    # and the first step of training sees the same views: its losses agree (checked below)


# ---------------------------------------------------------------------------------------------
# the same training, batched and alone


def test_train_student_is_train_students_with_one_seed(digits) -> None:
    x, y = _subset(digits, 3)
    s = EvalSettings(epochs=3, batch_size=16, check_every=1, track_test=True)
    a = train_student(x, y, digits, "convnet_d1", 5, s)
    b = train_students(x, y, digits, "convnet_d1", [5], s)[0]
    assert a.curve == b.curve and a.batched == b.batched == 1
    assert _state_close(a.model, b.model) == 0.0  # bit for bit


def test_batched_equals_one_by_one_on_digits(digits) -> None:
    x, y = _subset(digits, 10)
    s = EvalSettings(epochs=15, batch_size=32, check_every=5, track_test=True)  # DSA, one op per batch
    batched, alone, b_losses, a_losses = _run(x, y, digits, "convnet_d2", s)
    assert [o.batched for o in batched] == [3, 3, 3] and [o.batched for o in alone] == [1, 1, 1]
    assert b_losses.shape == a_losses.shape == (15 * 4, 3)
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    for b, a in zip(batched, alone, strict=True):
        assert abs(b.test_acc - a.test_acc) <= 0.005
        assert [e for e, _, _ in b.curve] == [e for e, _, _ in a.curve] == [5, 10, 15]
        assert b.max_over_test is not None and abs(b.max_over_test - a.max_over_test) <= 0.005
        assert b.test_acc > 0.3  # it learned: digits at chance is 0.1


@pytest.mark.slow  # about 25 s on the 2-core machine
def test_batched_equals_one_by_one_on_a_cifar10_subset(cifar10_root) -> None:
    opts = DatasetOptions(
        name="cifar10", root=str(cifar10_root), train_per_class=20, test_per_class=50, val_per_class=2
    )
    data = cached_dataset(opts)
    x, y = _subset(data, 2)
    s = EvalSettings(epochs=20, batch_size=256, check_every=10)
    batched, alone, b_losses, a_losses = _run(x, y, data, "convnet_d3", s)
    assert [o.batched for o in batched] == [3, 3, 3]
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    gaps = [abs(b.test_acc - a.test_acc) for b, a in zip(batched, alone, strict=True)]
    assert max(gaps) <= 0.005, gaps  # 500 test images: at most 2 predictions apart


@pytest.mark.parametrize("soft_augment", ["crop_flip", "rrc_flip"])  # DSA draws apart; resized crops seed by seed
def test_soft_labels_the_teacher_relabels_each_seeds_own_view(digits, soft_augment: str) -> None:
    with seeded(99):  # not one of the students' seeds
        teacher = build_network("convnet_d1", 1, 10, 8).eval()
    x, y = _subset(digits, 4)
    s = EvalSettings(epochs=4, batch_size=20, label_mode="soft", soft_augment=soft_augment, mix="cutmix",
                     check_every=2)  # fmt: skip
    seen: list[torch.Tensor] = []
    handle = teacher.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    try:
        batched, alone, b_losses, a_losses = _run(x, y, digits, "convnet_d1", s, teacher=teacher)
    finally:
        handle.remove()
    steps = 4 * 2
    # batched: one teacher call per step on the K views; then each seed alone, one call per step
    b_views = [v.view(3, 20, *v.shape[1:]) for v in seen[:steps]]
    for k in range(3):
        a_views = seen[steps + k * steps : steps + (k + 1) * steps]
        for b, a in zip(b_views, a_views, strict=True):
            assert torch.equal(b[k], a)  # the very view seed k trains on alone, augmented and cut-mixed
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    assert float(((b_losses - a_losses) / a_losses).abs().max()) <= 1e-3  # every step, 8 steps in
    assert all(abs(b.test_acc - a.test_acc) <= 0.005 for b, a in zip(batched, alone, strict=True))


def _relabelled(x, y, data, arch, settings, teacher, batched_kw):
    """Batched (K = 3, ``batched_kw`` passes the teacher) and one-by-one runs; every teacher call's
    (input, output) of each, and every step's per-seed losses of each."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = teacher.register_forward_hook(lambda m, a, out: seen.append((a[0].detach().clone(), out.detach().clone())))
    b_losses: list[torch.Tensor] = []
    a_losses: list[list[torch.Tensor]] = [[] for _ in SEEDS]
    try:
        batched = train_students(
            x, y, data, arch, SEEDS, settings, max_batch=3, on_step=lambda i, loss: b_losses.append(loss), **batched_kw
        )
        cut = len(seen)
        alone = [
            train_student(x, y, data, arch, s, settings, teacher=teacher, on_step=partial(_append, a_losses[k]))
            for k, s in enumerate(SEEDS)
        ]
    finally:
        handle.remove()
    a = torch.stack([torch.cat(ls) for ls in a_losses], 1)
    return batched, alone, seen[:cut], seen[cut:], torch.stack(b_losses), a


def test_teacher_in_train_mode_relabels_each_seeds_view_alone(digits) -> None:
    """teacher_mode train: BatchNorm normalises with the relabelled batch's statistics, so each seed's
    view is relabelled on its own: the same inputs and the same soft targets, bit for bit."""
    with seeded(98):
        teacher = build_network("convnet_bn_d1", 1, 10, 8)
    stats = {k: v.clone() for k, v in teacher.state_dict().items()}
    x, y = _subset(digits, 4)
    s = EvalSettings(epochs=3, batch_size=20, label_mode="soft", soft_augment="crop_flip", mix="mixup",
                     teacher_mode="train", check_every=3)  # fmt: skip
    batched, alone, b_seen, a_seen, b_losses, a_losses = _relabelled(
        x, y, digits, "convnet_d1", s, teacher, {"needs": {"teacher": teacher}}
    )
    steps = 3 * 2
    assert len(b_seen) == 3 * steps and len(a_seen) == 3 * steps  # batched: one call per seed and step
    for k in range(3):
        for t in range(steps):
            (bx, bz), (ax, az) = b_seen[t * 3 + k], a_seen[k * steps + t]
            assert bx.shape == ax.shape == (20, 1, 8, 8)
            assert torch.equal(bx, ax) and torch.equal(bz, az)  # the seed's view and its soft targets
    # relabelling the K views as one batch would have mixed the seeds' statistics: other targets
    with torch.no_grad():
        together = copy.deepcopy(teacher).train()(torch.cat([b_seen[k][0] for k in range(3)]))[:20]
    assert not torch.allclose(together, b_seen[0][1], atol=1e-3)
    assert all(torch.equal(v, stats[k]) for k, v in teacher.state_dict().items())  # the teacher is left as it was
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    assert [o.batched for o in batched] == [3, 3, 3]
    assert all(abs(b.test_acc - a.test_acc) <= 0.005 for b, a in zip(batched, alone, strict=True))


def test_soft_labels_with_a_black_crop_fill_batch_like_one_by_one(digits) -> None:
    with seeded(97):
        teacher = build_network("convnet_d1", 1, 10, 8).eval()
    x, y = _subset(digits, 4)
    x = x + 3.0  # no pixel of the set is black: the fill is tellable apart
    s = EvalSettings(epochs=2, batch_size=20, label_mode="soft", soft_augment="crop_flip", soft_crop_fill="black",
                     mix="cutmix", check_every=2)  # fmt: skip
    batched, alone, b_seen, a_seen, b_losses, a_losses = _relabelled(
        x, y, digits, "convnet_d1", s, teacher, {"teacher": teacher}
    )
    steps = 2 * 2
    assert len(b_seen) == steps  # teacher_mode eval: one call per step on the K views
    black = float(black_fill(digits)[0])
    for k in range(3):
        for t in range(steps):
            assert torch.equal(b_seen[t][0].view(3, 20, 1, 8, 8)[k], a_seen[k * steps + t][0])
    assert any(bool((v == black).any()) for v, _ in b_seen)  # pixels shifted in are the black fill
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    assert all(abs(b.test_acc - a.test_acc) <= 0.005 for b, a in zip(batched, alone, strict=True))


def test_learned_soft_labels_batch_like_one_by_one(digits) -> None:
    """A set's (N, C) learned soft labels (DATM): soft cross-entropy per seed, as train_student has it."""
    x, y = _subset(digits, 5)
    g = torch.Generator().manual_seed(4)
    soft = 4.0 * F.one_hot(y, 10).float() + torch.randn(len(y), 10, generator=g)  # logits, not probabilities
    s = EvalSettings(epochs=8, batch_size=25, check_every=4)
    batched, alone, b_losses, a_losses = _run(x, soft, digits, "convnet_d2", s)
    assert [o.batched for o in batched] == [3, 3, 3]
    assert b_losses.shape == a_losses.shape == (8 * 2, 3)
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    assert float(((b_losses - a_losses) / a_losses).abs().max()) <= 1e-3
    for b, a in zip(batched, alone, strict=True):
        assert abs(b.test_acc - a.test_acc) <= 0.005 and b.test_acc > 0.3
    # the labels really are read as logits: a hard-label run's first losses are other numbers
    _, _, hard_losses, _ = _run(x, y, digits, "convnet_d2", s)
    assert not torch.allclose(hard_losses[0], b_losses[0], rtol=1e-3)
    with pytest.raises(ValueError, match="learned soft labels train hard-mode"):
        train_students(x, soft, digits, "convnet_d2", SEEDS, EvalSettings(label_mode="soft"), teacher=nn.Identity())


def test_batchnorm_students_batch_with_per_seed_running_statistics(digits) -> None:
    x, y = _subset(digits, 5)
    s = EvalSettings(epochs=6, batch_size=16, optimizer="adam", lr=1e-3, schedule="cosine", check_every=3)
    assert batchable("convnet_bn_d2", 1, 8)
    batched, alone, b_losses, a_losses = _run(x, y, digits, "convnet_bn_d2", s)
    assert [o.batched for o in batched] == [3, 3, 3]
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    for b, a in zip(batched, alone, strict=True):
        bns = [
            (mb, ma)
            for mb, ma in zip(b.model.modules(), a.model.modules(), strict=True)
            if isinstance(ma, nn.BatchNorm2d)
        ]
        assert len(bns) == 2
        for mb, ma in bns:
            assert int(mb.num_batches_tracked) == int(ma.num_batches_tracked) == 6 * 4
            assert torch.allclose(mb.running_mean, ma.running_mean, atol=1e-4)
            assert torch.allclose(mb.running_var, ma.running_var, rtol=1e-3)
        assert abs(b.test_acc - a.test_acc) <= 0.005
    # the seeds' running statistics are their own, not shared
    assert not torch.equal(batched[0].model.features[1].running_mean, batched[1].model.features[1].running_mean)


# ---------------------------------------------------------------------------------------------
# what batches, chunks, the optimiser


def test_what_batches() -> None:
    assert batchable("convnet_d3") and batchable("convnet_bn_d3") and batchable("convnet", 1, 8)
    assert batchable("resnet18") and batchable("alexnet")
    assert not batchable("regnety_400mf")  # squeeze-excitation blocks
    assert not batchable("vit_tiny")  # attention, LayerNorm, timm's blocks
    assert not batchable("alexnet", 3, 224)  # the ImageNet AlexNet head has dropout
    assert not batchable("convnet_d7", 3, 32)  # cannot be built at 32 px


def test_seeds_are_trained_in_chunks_and_unbatchable_networks_one_by_one(digits, monkeypatch) -> None:
    x, y = _subset(digits, 2)
    s = EvalSettings(epochs=2, batch_size=20)
    outs = train_students(x, y, digits, "convnet_d1", [3, 4, 5], s, max_batch=2)
    assert [o.batched for o in outs] == [2, 2, 1]
    alone = train_student(x, y, digits, "convnet_d1", 5, s)
    assert outs[2].curve == alone.curve  # the last chunk of one is the one-by-one run
    monkeypatch.setattr(chunks, "batchable", lambda *a, **k: False)  # a network that does not batch
    fallback = train_students(x, y, digits, "convnet_d1", [3, 4, 5], s, max_batch=8)
    assert [o.batched for o in fallback] == [1, 1, 1]
    assert fallback[2].curve == alone.curve


def test_chunks_are_capped_by_memory_and_by_the_device_default(monkeypatch) -> None:
    s = EvalSettings(batch_size=100)
    cpu = torch.device("cpu")
    per_student = chunks.student_memory_bytes("convnet_d3", 3, 10, 32, 100)
    assert 1.2e6 * 4 * 3 < per_student < 1e9  # weights, gradient, momentum, activations of 100 images
    assert chunk_size("convnet_d3", 8, 3, 10, 32, 100, s, cpu) == chunks.DEFAULT_MAX_BATCH["cpu"] == 1
    assert chunk_size("convnet_d3", 8, 3, 10, 32, 100, s, cpu, max_batch=4) == 4
    monkeypatch.setattr(chunks, "_available_bytes", lambda d: int(per_student * 2 / chunks.MEMORY_SHARE) + 1)
    assert chunk_size("convnet_d3", 8, 3, 10, 32, 100, s, cpu, max_batch=8) == 2
    assert chunk_size("regnety_400mf", 8, 3, 10, 32, 100, s, cpu, max_batch=8) == 1
    assert chunk_size("convnet_d3", 8, 3, 10, 32, 100, s, torch.device("meta"), max_batch=8) == 1  # no seed streams


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_one_optimizer_over_stacked_weights_is_k_optimizers(optimizer: str) -> None:
    s = EvalSettings(optimizer=optimizer, lr=0.05, weight_decay=1e-3)
    g = torch.Generator().manual_seed(0)
    w = [torch.randn(4, 3, generator=g) for _ in range(3)]
    singles = [t.clone().requires_grad_() for t in w]
    stacked = torch.stack(w).requires_grad_()
    opts = [make_optimizer([p], s) for p in singles]
    opt = make_optimizer([stacked], s)
    for _ in range(4):
        grads = [torch.randn(4, 3, generator=g) for _ in range(3)]
        for p, gr in zip(singles, grads, strict=True):
            p.grad = gr.clone()
        stacked.grad = torch.stack(grads)
        for o in opts:
            o.step()
        opt.step()
    for k, p in enumerate(singles):
        assert torch.allclose(stacked[k], p, rtol=0, atol=1e-7)


def test_bf16_batches_run_convolutions_in_bf16_and_evaluate_like_fp32(digits) -> None:
    x, y = _subset(digits, 5)
    dtypes: list[torch.dtype] = []

    def record(module: nn.Module, args, out) -> None:
        if isinstance(module, nn.Conv2d) and args[0].device.type != "meta":  # not the memory estimate's pass
            dtypes.append(out.dtype)

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        s16 = EvalSettings(epochs=8, batch_size=25, precision="bf16", check_every=8)
        b16 = train_students(x, y, digits, "convnet_d1", SEEDS, s16, max_batch=3)
    finally:
        handle.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert [o.batched for o in b16] == [3, 3, 3]
    b32 = train_students(
        x, y, digits, "convnet_d1", SEEDS, EvalSettings(epochs=8, batch_size=25, check_every=8), max_batch=3
    )
    conv = next(m for m in b16[0].model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.dtype == torch.float32  # master weights stay fp32
    mean16 = sum(o.test_acc for o in b16) / 3
    mean32 = sum(o.test_acc for o in b32) / 3
    assert abs(mean16 - mean32) <= 0.05 and mean32 > 0.3


def test_learned_lr_and_outcomes_of_a_batch(digits) -> None:
    x, y = _subset(digits, 2)
    s = EvalSettings(epochs=2, batch_size=20, lr_from_set=True)
    outs = train_students(x, y, EvalData.from_real(digits), "convnet_d1", [0, 1], s, set_lr=0.02, max_batch=2)
    assert [o.lr for o in outs] == [0.02, 0.02] and all(isinstance(o.model, Classifier) for o in outs)
    assert outs[0].train_seconds == outs[1].train_seconds > 0  # the chunk's time, shared
    with pytest.raises(ValueError, match="lr_from_set"):
        train_students(x, y, digits, "convnet_d1", [0, 1], s)
    assert train_students(x, y, digits, "convnet_d1", [], EvalSettings()) == []


@pytest.mark.parametrize("arch", ["convnet_d2", "convnet_bn_d2"])
def test_vmapped_evaluation_equals_the_students_one_by_one(digits, arch: str) -> None:
    """The CUDA evaluation path (one vmapped forward per batch, eval mode) against the CPU one (K modules)."""
    streams = SeedStreams(SEEDS, torch.device("cpu"))
    models = []
    for k in range(len(SEEDS)):
        with streams.use(k):
            models.append(build_network(arch, 1, 10, 8))
    stacked = StackedStudents(models, Execution(), torch.device("cpu"))
    x, _ = _subset(digits, 3)
    with torch.no_grad():
        for _ in range(3):  # training-mode passes, so BatchNorm has running statistics of its own
            stacked.logits(torch.stack([x[k::3][:8] for k in range(3)]))
    view = EvalData.from_real(digits)
    stacked.vmap_eval = False
    plain = stacked.accuracy(view, "test")
    stacked.vmap_eval = True
    vmapped = stacked.accuracy(view, "test")
    assert len(plain) == 3 and len(set(plain)) > 1  # three different students
    assert max(abs(a - b) for a, b in zip(plain, vmapped, strict=True)) <= 2 / len(view.test_y)


@pytest.mark.slow
def test_a_resnet_batches_like_one_by_one(digits) -> None:
    """torchvision's ResNet-18 (BatchNorm, residual in-place adds) as a vmapped batch."""
    x, y = _subset(digits, 5)
    s = EvalSettings(epochs=2, batch_size=25)
    batched, alone, b_losses, a_losses = _run(x, y, digits, "resnet18", s)
    assert [o.batched for o in batched] == [3, 3, 3]
    assert _first_step_relative(b_losses, a_losses) <= 1e-5
    assert all(abs(b.test_acc - a.test_acc) <= 0.005 for b, a in zip(batched, alone, strict=True))


def test_evaluation_rows_record_how_many_seeds_trained_together(digits, monkeypatch) -> None:
    """orchestrator/evaluation/tasks.py: a group's rows carry ``batched`` (the K of each seed's chunk)
    and the batched students' accuracies; on CPU the default is one by one."""
    shape = SetShape(num_classes=10, ipc=2, channels=1, resolution=8)
    param = build_parameterization(ParamConfig("pixels", shape, PixelOptions()))
    param.init_from_real(_subset(digits, 2)[0])
    payload = payload_bytes(synthetic_payload(param))
    jobs = [EvalJob("convnet_d1", 8, s, "hard") for s in SEEDS]
    protocol = Protocol.of({"epochs": 2, "batch_size": 10, "check_every": 1})
    with monkeypatch.context() as outside:  # called outside Ray: no node id, and no Ray started (or joined)
        outside.setattr(ray, "is_initialized", lambda: False)
        outside.setattr(ray, "init", partial(pytest.fail, "evaluate_group started Ray"))
        outside.setattr(ray, "get_runtime_context", partial(pytest.fail, "evaluate_group asked Ray"))
        rows = evaluate_group(payload, jobs, DIGITS, protocol, 1, False)
    assert [r["batched"] for r in rows] == [1, 1, 1]  # CPU default: max_batch 1
    assert [r["node_id"] for r in rows] == [None] * 3
    monkeypatch.setitem(chunks.DEFAULT_MAX_BATCH, "cpu", 2)
    rows = evaluate_group(payload, jobs, DIGITS, protocol, 1, False)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert [r["batched"] for r in rows] == [2, 2, 1]  # seeds 0 and 1 as one computation, seed 2 alone
    settings = protocol.settings("hard", "digits", 2, None)
    want = train_students(param.decode(8).detach(), param.labels, digits, "convnet_d1", SEEDS, settings, max_batch=2)
    assert [r["test_acc"] for r in rows] == [o.test_acc for o in want]
    assert failed_result(ValueError("x"))["batched"] is None


def test_a_task_trains_as_many_seeds_as_train_together_on_its_device() -> None:
    """orchestrator/evaluation/jobs.py: a group's seeds are cut into tasks of the device's batch (CPU:
    one seed per task, so seeds spread over CPUs and nodes and a lost node re-runs one student)."""
    from orchestrator.evaluation.jobs import groups, seeds_per_task

    jobs = [EvalJob(arch, 8, s, "hard") for arch in ("convnet_d1", "resnet18") for s in range(5)]
    assert seeds_per_task(gpu=False) == 1 and seeds_per_task(gpu=True) == 16
    assert [[j.seed for j in g] for g in groups(jobs, seeds_per_task(gpu=False))] == [[s] for s in range(5)] * 2
    assert [[j.seed for j in g] for g in groups(jobs, 2)] == [[0, 1], [2, 3], [4]] * 2
    assert [{j.arch for j in g} for g in groups(jobs, 16)] == [{"convnet_d1"}, {"resnet18"}]
    assert [len(g) for g in groups(jobs)] == [5, 5]
