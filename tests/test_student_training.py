"""Student training: lazily resized evaluation data, the teacher relabelling the student's exact view,
bf16 autocast and channels_last taking effect, BatchNorm ConvNets as students and teachers."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from methods.datasets import DatasetOptions, EvalData, cached_eval_data, resize_images
from methods.evaluation.options import EvalSettings
from methods.evaluation.student import Execution, accuracy, train_student
from methods.networks import Classifier, build_network
from tests.helpers import trial_of

DIGITS = DatasetOptions(name="digits", resolution=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _subset(data, per_class: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([data.sample_class(c, per_class, torch.Generator().manual_seed(c)) for c in range(10)])
    return x, torch.arange(10).repeat_interleave(per_class)


def test_eval_data_keeps_only_val_and_test_and_resizes_per_batch(digits) -> None:
    view = cached_eval_data(DIGITS)
    assert isinstance(view, EvalData) and not hasattr(view, "train_x")
    assert view.stored_resolution == 8
    big = view.at(16)
    assert big.val_x is view.val_x  # no copy, no resize up front
    batches = list(big.batches("val", batch_size=50))
    assert all(b.shape[-1] == 16 for b, _ in batches)
    eager = resize_images(view.val_x, 16)
    assert torch.equal(torch.cat([b for b, _ in batches]), eager)  # same pixels as resizing the whole split
    assert torch.equal(torch.cat([y for _, y in batches]), view.val_y)


def test_evaluation_batches_shrink_with_the_resolution() -> None:
    from methods.datasets.eval_data import eval_batch_size

    sizes = {r: eval_batch_size(r) for r in (8, 32, 128, 256, 512, 2048)}
    assert sizes == {8: 1024, 32: 256, 128: 16, 256: 4, 512: 1, 2048: 1}
    assert all(b * r * r <= 256 * 32 * 32 for r, b in sizes.items() if r >= 32 and b > 1)


def test_lazy_evaluation_equals_the_eager_resize(digits) -> None:
    x, y = _subset(digits)
    images = resize_images(x, 16)
    s = EvalSettings(epochs=2, batch_size=16, track_test=True, check_every=1)
    eager = train_student(images, y, digits.resized(16), "convnet_d2", 0, s)
    lazy = train_student(images, y, cached_eval_data(DIGITS), "convnet_d2", 0, s)
    assert lazy.curve == eager.curve
    assert (lazy.val_acc, lazy.test_acc) == (eager.val_acc, eager.test_acc)


def test_accuracy_accepts_tensors_and_batch_streams(digits) -> None:
    torch.manual_seed(0)
    net = build_network("convnet_d1", 1, 10, 8)
    view = cached_eval_data(DIGITS)
    assert accuracy(net, view.test_x, view.test_y, batch=37) == accuracy(net, view.batches("test", 64))


def test_teacher_relabels_the_exact_view_the_student_sees(digits) -> None:
    torch.manual_seed(0)
    teacher = build_network("convnet_d1", 1, 10, 8).eval()
    x, y = _subset(digits, 4)
    seen: list[tuple[str, torch.Tensor]] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if isinstance(module, Classifier):
            seen.append(("teacher" if module is teacher else "student", args[0]))

    handle = nn.modules.module.register_module_forward_pre_hook(record)
    try:
        s = EvalSettings(
            epochs=1, batch_size=20, label_mode="soft", soft_augment="rrc_flip", mix="cutmix", check_every=1
        )
        train_student(x, y, digits, "convnet_d1", 0, s, teacher=teacher)
    finally:
        handle.remove()
    pairs = [(a, b) for a, b in itertools.pairwise(seen) if a[0] == "student" and b[0] == "teacher"]
    assert len(pairs) == 2  # 40 images, batch 20
    originals = x.flatten(1)
    for (_, student_in), (_, teacher_in) in pairs:
        assert teacher_in is student_in  # the very tensor the student trained on
        # … which is an augmented, cut-mixed view, not the stored images
        assert not any(torch.equal(v, o) for v in student_in.flatten(1) for o in originals)


def test_execution_options_resolve_per_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = EvalSettings(precision="auto", channels_last="auto")
    assert Execution.resolve(auto, cpu) == Execution(None, False)
    assert Execution.resolve(auto, cuda) == Execution(torch.bfloat16, True)
    assert Execution.resolve(EvalSettings(), cuda) == Execution(None, False)  # defaults: off until a GPU check
    assert Execution.resolve(EvalSettings(precision="fp32", channels_last=False), cuda) == Execution(None, False)
    assert Execution.resolve(EvalSettings(precision="bf16", channels_last=True), cpu) == Execution(torch.bfloat16, True)


@pytest.mark.parametrize(("precision", "channels_last"), [("bf16", True), ("fp32", False)])
def test_bf16_autocast_and_channels_last_take_effect(precision: str, channels_last: bool) -> None:
    # three channels: a one-channel tensor is contiguous in both memory formats
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, 8, 8, generator=g), torch.arange(20) % 10
    val = torch.randn(30, 3, 8, 8, generator=g)
    data = EvalData("noise", val, torch.arange(30) % 10, val, torch.arange(30) % 10, 10, (), (0.0,) * 3, (1.0,) * 3, 8)
    logits_dtypes: list[torch.dtype] = []
    input_formats: list[bool] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(module, Classifier) and module.training:
            logits_dtypes.append(out.dtype)
            input_formats.append(args[0].is_contiguous(memory_format=torch.channels_last))

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        s = EvalSettings(epochs=1, batch_size=10, precision=precision, channels_last=channels_last)  # type: ignore[arg-type]
        out = train_student(x, y, data, "convnet_d2", 0, s)
    finally:
        handle.remove()
    assert logits_dtypes and input_formats
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert set(logits_dtypes) == {want}
    assert set(input_formats) == {channels_last}
    conv = next(m for m in out.model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.dtype == torch.float32  # autocast: parameters stay fp32
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert 0.0 <= out.val_acc <= 1.0


def test_batchnorm_convnets_as_student_and_teacher(digits) -> None:
    torch.manual_seed(0)
    teacher = build_network("convnet_bn_d1", 1, 10, 8).eval()
    x, y = _subset(digits, 3)
    s = EvalSettings(epochs=2, batch_size=15, label_mode="soft", soft_augment="crop_flip")
    out = train_student(x, y, digits, "convnet_bn_d2", 0, s, teacher=teacher)
    bns = [m for m in out.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 and all(int(m.num_batches_tracked) == 4 for m in bns)  # 2 epochs × 2 batches
    assert 0.0 <= out.test_acc <= 1.0


def test_batchnorm_convnet_as_distillation_network(digits) -> None:
    from methods.context import DistillContext
    from methods.distill.pipeline import run_distillation

    hp = {"objective": "dm", "parameterization": "pixels", "distill_arch": "convnet_bn_d2", "ipc": 2}
    param, _, summary = run_distillation(
        trial_of(digits, {**hp, "iterations": 3, "batch_real": 8}), digits, DistillContext(seed=0)
    )
    assert summary["steps"] == 3 and torch.isfinite(param.images).all()
