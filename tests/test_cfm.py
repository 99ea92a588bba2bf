"""CFM, LFM, the filter family and SRe²L as objectives: loss values, gradients, phases, resume."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from methods.cfm.options import CFMOptions, FilterMatchingOptions, SpectralMatchingOptions
from methods.context import DistillContext
from methods.datasets import RealData
from methods.distill.objective import build_objective
from methods.distill.pipeline import make_components, run_distillation
from methods.networks import build_network
from methods.recover.loop import batch_of_rows
from methods.registry import OBJECTIVES
from methods.spectral import beta_at
from methods.sre2l.options import SRe2LOptions
from tests.helpers import trial_of


def tiny_data(per_class: int = 1, classes: int = 4, res: int = 16, seed: int = 0) -> RealData:
    """A deterministic RealData of random images (``per_class`` training images per class)."""
    g = torch.Generator().manual_seed(seed)
    n = per_class * classes
    x = torch.randn(n, 3, res, res, generator=g)
    y = torch.arange(classes).repeat(per_class)
    return RealData(
        name="tiny", train_x=x, train_y=y, val_x=x[:classes], val_y=y[:classes], test_x=x[:classes],
        test_y=y[:classes], num_classes=classes, class_names=[str(c) for c in range(classes)],
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
    )  # fmt: skip


def teacher_for(data: RealData, arch: str = "convnet_d2", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(arch, data.channels, data.num_classes, data.resolution).eval()


def prepared(objective: Any, data: RealData, ipc: int = 1, **ctx_kw: Any) -> tuple[Any, Any, DistillContext]:
    """An objective prepared on ``data`` and a pixel set initialised from it, with its phases."""
    ctx = DistillContext(**ctx_kw)
    hp = {"objective": objective.name, "ipc": ipc}
    param = make_components(trial_of(data, hp), data).param
    objective.prepare(data, ctx, {"teacher": teacher_for(data)})
    objective.phases(param, 0, ctx)
    return param, objective, ctx


def test_registered_with_their_options() -> None:
    assert OBJECTIVES.get("cfm").options is CFMOptions
    assert OBJECTIVES.get("lfm").options is SpectralMatchingOptions
    assert "beta" not in SpectralMatchingOptions.__dataclass_fields__  # lfm reads no β
    for name in ("cfm", "lfm", "filter_matching", "sre2l"):
        assert "teacher" in OBJECTIVES.get(name).requires
    cfm = CFMOptions(beta=1.0, eta=0.5)
    assert (cfm.beta, cfm.eta, cfm.beta_schedule, cfm.iterations_per_batch) == (1.0, 0.5, "cosine", 1000)


def test_cfm_loss_is_zero_when_synthetic_statistics_equal_real_ones() -> None:
    """The real set *is* the synthetic batch: every filter and signal term vanishes (Eq. 20)."""
    data = tiny_data(per_class=1)
    cfm = build_objective("cfm", CFMOptions(use_ce=False, beta=0.01))
    for obj in (cfm, build_objective("lfm", SpectralMatchingOptions(use_ce=False))):
        _, obj, _ = prepared(obj, data)
        logits, inputs = obj.forward_taps(data.train_x)
        loss = obj.batch_loss(inputs, logits, data.train_y, 0, 0)
        assert abs(float(loss)) < 1e-9
        assert obj.last_terms["filter"] < 1e-9 and obj.last_terms["signal"] < 1e-9
        # a perturbed batch is penalised, by both terms
        logits, inputs = obj.forward_taps(data.train_x + 0.3 * torch.randn_like(data.train_x))
        assert float(obj.batch_loss(inputs, logits, data.train_y, 0, 0)) > 1e-3
        assert obj.last_terms["filter"] > 1e-4 and obj.last_terms["signal"] > 1e-4
    sre = build_objective("sre2l", SRe2LOptions(use_ce=False))
    _, sre, _ = prepared(sre, data)
    logits, inputs = sre.forward_taps(data.train_x)
    assert abs(float(sre.batch_loss(inputs, logits, data.train_y, 0, 0))) < 1e-5


@pytest.mark.parametrize(
    "objective",
    [
        build_objective("cfm", CFMOptions()),
        build_objective("lfm", SpectralMatchingOptions()),
        build_objective("filter_matching", FilterMatchingOptions(filter="mtt", use_ce=False)),
        build_objective("filter_matching", FilterMatchingOptions(filter="dc", use_ce=False)),
        build_objective("filter_matching", FilterMatchingOptions(filter="all_pass", use_ce=False)),
        build_objective("sre2l", SRe2LOptions()),
    ],
    ids=lambda o: f"{o.name}-{getattr(getattr(o, 'filter', None), 'kind', '')}",
)
def test_gradient_reaches_the_synthetic_pixels(objective: Any) -> None:
    data = tiny_data(per_class=3)
    param, obj, ctx = prepared(objective, data, ipc=2)
    phase = obj.phases(param, 0, ctx)[1]
    idx = phase.owned(ctx)
    param.images.grad = None
    loss = obj.loss(param.decode(index=idx), param.labels[idx], phase, step=0, ctx=ctx)
    loss.backward()
    grad = param.images.grad
    assert grad is not None and bool(torch.isfinite(grad).all())
    assert float(grad[idx].abs().sum()) > 0  # every owned image gets a gradient …
    others = torch.ones(param.num_instances, dtype=torch.bool)
    others[idx] = False
    assert float(grad[others].abs().sum()) == 0  # … and the other batch none


def test_loss_terms_switch_off_individually() -> None:
    """Table 5 ablation: filter / + signal / + CE each change the loss as documented (Eq. 21)."""
    data = tiny_data(per_class=2)
    x = data.train_x[:4] + 0.5
    values = {}
    for label, kw in {"filter": dict(use_signal=False, use_ce=False), "filter_signal": dict(use_ce=False),
                      "all": {}}.items():  # fmt: skip
        obj = build_objective("cfm", CFMOptions(eta=0.1, **kw))
        _, obj, _ = prepared(obj, data)
        logits, inputs = obj.forward_taps(x)
        values[label] = (float(obj.batch_loss(inputs, logits, data.train_y[:4], 0, 0)), dict(obj.last_terms))
    f_only, fs, full = values["filter"], values["filter_signal"], values["all"]
    assert f_only[1]["signal"] == 0 and f_only[1]["ce"] == 0
    assert f_only[0] == pytest.approx(0.1 * f_only[1]["filter"])
    assert fs[0] == pytest.approx(0.1 * (fs[1]["filter"] + fs[1]["signal"]))
    assert full[0] == pytest.approx(full[1]["ce"] + 0.1 * (full[1]["filter"] + full[1]["signal"]))
    assert full[1]["ce"] > 0 and fs[1]["signal"] > 0
    with pytest.raises(ValueError, match="switched off"):
        build_objective("cfm", CFMOptions(use_filter=False, use_signal=False, use_ce=False))


def test_phases_are_rounds_of_ipc_batches_with_the_beta_curriculum() -> None:
    data = tiny_data(per_class=5)
    obj = build_objective("cfm", CFMOptions(iterations_per_batch=7, beta=0.2))
    param, obj, ctx = prepared(obj, data, ipc=4)
    batch = batch_of_rows(param.labels)
    assert batch.tolist() == [0, 1, 2, 3] * 4  # rows are class-major: batch b = b-th image of every class
    phases = obj.phases(param, iterations=123, ctx=ctx)  # the loop's `iterations` is not read
    assert [p.iterations for p in phases] == [7] * 4
    assert [sorted(set(p.units.tolist())) for p in phases] == [[0], [1], [2], [3]]
    assert all(torch.equal(param.labels[p.index].sort().values, torch.arange(4)) for p in phases)
    two = build_objective("cfm", CFMOptions(round_size=2))
    two_phases = prepared(two, data, ipc=4)[1].phases(param, 0, ctx)
    assert [sorted(set(p.units.tolist())) for p in two_phases] == [[0, 1], [2, 3]]
    assert [obj.beta_of(b) for b in range(4)] == [beta_at(0.2, b, 4, "cosine") for b in range(4)]
    assert obj.beta_of(0) == pytest.approx(0.2) and obj.beta_of(3) < obj.beta_of(0)


def test_recover_end_to_end_clips_and_updates_emu() -> None:
    data = tiny_data(per_class=3)
    ctx = DistillContext(seed=0)
    hp = {"objective": "cfm", "ipc": 3, "iterations_per_batch": 4}
    param, obj, summary = run_distillation(trial_of(data, hp), data, ctx, {"teacher": teacher_for(data)})
    start = make_components(trial_of(data, hp), data).param
    from methods.distill.loop import init_from_real

    init_from_real(start, data, ctx)
    assert not torch.allclose(param.images, start.images)  # recover moved every batch …
    for b in range(3):
        rows = batch_of_rows(param.labels) == b
        assert not torch.allclose(param.images[rows], start.images[rows])
    lo, hi = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25  # … and clipped pixels to [0, 1]
    images = param.images.detach()
    assert float(images.min()) >= lo - 1e-6 and float(images.max()) <= hi + 1e-6
    assert obj.emu.count == 3 and summary["steps"] == 12
    assert obj.row_fields() == {"eta": 0.1, "filter": "high_pass", "beta": 0.1, "beta_schedule": "cosine"}


def test_resume_from_a_mid_run_checkpoint_is_exact() -> None:
    """The EMU state travels with the checkpoint: a resumed run ends where an uninterrupted one does."""
    data = tiny_data(per_class=3)
    hp = {"objective": "cfm", "ipc": 3, "iterations_per_batch": 4, "checkpoint_every": 5}
    states: list[dict[str, Any]] = []
    needs = {"teacher": teacher_for(data)}
    full, _, _ = run_distillation(trial_of(data, hp), data, DistillContext(seed=3), needs, on_checkpoint=states.append)
    mid = next(s for s in states if int(s["phase"]) == 1)  # saved inside batch 1, after batch 0's EMU update
    assert int(mid["objective"]["emu.count"]) == 1
    resumed, obj, _ = run_distillation(
        trial_of(data, hp), data, DistillContext(seed=3), {"teacher": teacher_for(data)}, resume=mid
    )
    assert torch.equal(resumed.images, full.images)
    assert obj.emu.count == 3


def test_sre2l_statistics_source() -> None:
    data = tiny_data(per_class=2)
    _, conv, _ = prepared(build_objective("sre2l", SRe2LOptions()), data)
    assert conv.source == "conv" and len(conv.taps) == 2  # instance-norm ConvNet: conv inputs
    obj = build_objective("sre2l", SRe2LOptions())
    obj.prepare(data, DistillContext(), {"teacher": teacher_for(data, "resnet18")})
    assert obj.source == "bn" and len(obj.taps) == len(obj.real) > 10  # every BatchNorm2d
    with pytest.raises(ValueError, match="BatchNorm2d"):
        sre = build_objective("sre2l", SRe2LOptions(sre2l_stats="bn"))
        sre.prepare(data, DistillContext(), {"teacher": teacher_for(data)})


def test_recover_objectives_require_a_teacher() -> None:
    with pytest.raises(ValueError, match="needs the prerequisite 'teacher'"):
        build_objective("cfm", CFMOptions()).prepare(tiny_data(), DistillContext(), {})
