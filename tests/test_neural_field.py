"""DDiF neural fields: batched decoding, any resolution, n-D grids, gradients, save/load, warm-up."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from methods.context import DistillContext
from methods.datasets import DatasetOptions, load_dataset
from methods.distill.loop import DistillSettings, resolve_optim
from methods.distill.objective import build_objective
from methods.distill.pipeline import make_components, run_distillation
from methods.dm.options import DMOptions
from methods.parameterizations import (
    ParamConfig,
    SetShape,
    load_synthetic,
    save_synthetic,
)
from methods.parameterizations.neural_field import WARMUP_KIND, NeuralField
from methods.parameterizations.options import NeuralFieldOptions
from methods.parameterizations.pixels import Pixels
from methods.parameterizations.siren import coordinate_grid, decode_fields
from tests.helpers import trial_of


def make_field(
    width: int = 6, depth: int = 2, ipc: int = 1, channels: int = 3, res: int = 32, dims: int = 2, **extra: object
) -> NeuralField:
    opts = NeuralFieldOptions(nf_width=width, nf_depth=depth, **extra)  # type: ignore[arg-type]
    shape = SetShape(num_classes=10, ipc=ipc, channels=channels, resolution=res, dims=dims)
    return NeuralField(ParamConfig("neural_field", shape, opts))


def randomise(p: NeuralField, seed: int = 0) -> None:
    """Spread the weights beyond SIREN's init so tests do not rely on small values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in p.parameters():
            t.add_(0.3 * torch.randn(t.shape, generator=g))


def reference_decode(p: NeuralField, resolution: int, rows: list[int] | None = None) -> torch.Tensor:
    """An independent per-field SIREN (F.linear, one field at a time) on a linspace grid."""
    o = p.opts
    axes = [torch.linspace(-1, 1, resolution)] * p.config.shape.dims
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))
    outs = []
    for j in range(p.num_instances) if rows is None else rows:
        h = grid
        for k in range(o.nf_depth + 1):
            w, b = getattr(p, f"weight_{k}")[j], getattr(p, f"bias_{k}")[j]
            h = F.linear(h, w, b)
            if k < o.nf_depth:
                h = torch.sin((o.nf_w0_first if k == 0 else o.nf_w0) * h)
        outs.append(h.t().reshape(-1, *[resolution] * p.config.shape.dims))
    return torch.stack(outs)


def test_coordinates_span_minus_one_to_one() -> None:
    c = coordinate_grid([4, 3])
    assert c.shape == (12, 2)
    assert c.min() == -1 and c.max() == 1
    assert torch.equal(c[:3, 0], torch.full((3,), -1.0)) and torch.equal(c[:3, 1], torch.tensor([-1.0, 0.0, 1.0]))
    assert coordinate_grid([5]).shape == (5, 1) and coordinate_grid([2, 3, 4]).shape == (24, 3)


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_decode_shapes_values_and_bound(resolution: int) -> None:
    p = make_field()
    randomise(p)
    with torch.no_grad():
        x = p.decode(resolution)
    assert x.shape == (370, 3, resolution, resolution)
    assert torch.isfinite(x).all()
    # sine features lie in [-1, 1], so |F(c)| ≤ |b_out| + Σ|W_out| at every coordinate
    bound = p.bias_2.abs() + p.weight_2.abs().sum(-1)
    assert (x.abs().amax(dim=(2, 3)) <= bound + 1e-5).all()
    assert x.std() > 0.05  # not a constant image
    rows = [0, 1, 36, 37, 200, 369]  # first/last of classes 0 and 1, the middle, the last field
    torch.testing.assert_close(x[rows], reference_decode(p, resolution, rows), atol=3e-4, rtol=1e-4)


def test_finer_grid_contains_the_coarse_one() -> None:
    p = make_field()
    randomise(p, 1)
    with torch.no_grad():
        coarse, fine = p.decode(32), p.decode(63)
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, atol=3e-4, rtol=1e-4)
    assert not torch.allclose(fine[..., 1::2, 1::2], F.interpolate(coarse, size=31, mode="nearest"), atol=1e-2)


def test_decode_index_selects_rows() -> None:
    p = make_field(width=10)
    randomise(p, 2)
    idx = torch.tensor([3, 169, 0])
    with torch.no_grad():
        torch.testing.assert_close(p.decode(20, index=idx), p.decode(20)[idx], atol=1e-6, rtol=0)


def test_tiled_decode_equals_single_batch() -> None:
    p = make_field()
    randomise(p, 3)
    layers = p.layers(torch.arange(40))  # 40 fields (leaf views of the set's rows)
    with torch.no_grad():
        one = decode_fields(layers, [24, 24], 30.0, 10.0, tile_elements=1 << 40)
        by_fields = decode_fields(layers, [24, 24], 30.0, 10.0, tile_elements=24 * 24 * 6 * 7)  # 6 tiles of 7 fields
        by_points = decode_fields(layers, [24, 24], 30.0, 10.0, tile_elements=6 * 100)  # 1 field, 100 points
        default = decode_fields(layers, [24, 24], 30.0, 10.0)  # cache-sized tiles without grad
    torch.testing.assert_close(by_fields, one, atol=2e-5, rtol=0)
    torch.testing.assert_close(by_points, one, atol=2e-5, rtol=0)
    torch.testing.assert_close(default, one, atol=2e-5, rtol=0)
    # with gradients the hot path is one computation, and tiles do not change gradients
    w1 = p.weight_1
    g_one = torch.autograd.grad(decode_fields(p.layers(torch.arange(40)), [24, 24], 30.0, 10.0).square().sum(), w1)[0]
    tiled = decode_fields(p.layers(torch.arange(40)), [24, 24], 30.0, 10.0, tile_elements=6 * 100)
    g_tiled = torch.autograd.grad(tiled.square().sum(), w1)[0]
    assert g_one[:40].abs().sum() > 0 and g_one[40:].abs().sum() == 0
    torch.testing.assert_close(g_tiled, g_one, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("dims", "res", "channels", "shape"), [(1, 50, 1, (5, 1, 50)), (3, 8, 1, (5, 1, 8, 8, 8))])
def test_one_and_three_dimensional_grids(dims: int, res: int, channels: int, shape: tuple[int, ...]) -> None:
    # IPC chosen so 5 fields per class fit: 5·b ≤ IPC·C·res^dims
    width, depth = 8, 2
    from methods.parameterizations.siren import parameter_count

    b = parameter_count(dims, width, depth, channels)
    ipc = math.ceil(5 * b / (channels * res**dims))
    p = make_field(width=width, depth=depth, ipc=ipc, channels=channels, res=res, dims=dims)
    assert p.per_class == ipc * channels * res**dims // b >= 5
    randomise(p, 4)
    with torch.no_grad():
        x = p.decode(index=torch.arange(5))
    assert x.shape == shape
    torch.testing.assert_close(x, reference_decode(p, res)[:5], atol=3e-4, rtol=1e-4)
    assert p.decode(res + 3, index=torch.arange(2)).shape == (2, channels, *[res + 3] * dims)


def test_gradients_reach_every_field_parameter() -> None:
    p = make_field(width=6, depth=3)
    randomise(p, 5)
    (p.decode(32) ** 2).mean().backward()
    for name, t in p.named_parameters():
        assert t.grad is not None, name
        per_row = t.grad.reshape(t.shape[0], -1).abs().sum(1)
        assert (per_row > 0).all(), f"{name}: some fields get no gradient"
    # the gradient of one field's decode touches that field only
    p.zero_grad()
    p.decode(16, index=torch.tensor([7])).sum().backward()
    g = p.weight_1.grad.reshape(p.num_instances, -1).abs().sum(1)
    assert g[7] > 0 and g.sum() == g[7]


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    p = make_field(width=10, depth=3)
    randomise(p, 6)
    path = tmp_path / "syn.pt"
    save_synthetic(p, path, extra={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
    q, extra = load_synthetic(path)
    assert isinstance(q, NeuralField) and q.config.to_dict() == p.config.to_dict()
    assert extra["mean"] == [0.5, 0.5, 0.5]
    for k, v in p.state_dict().items():
        assert torch.equal(v, q.state_dict()[k]), k
    with torch.no_grad():
        assert torch.equal(p.decode(48), q.decode(48))


def test_optimiser_defaults_come_from_the_parameterization() -> None:
    dm = build_objective("dm", DMOptions())
    field = make_field()
    o = resolve_optim(dm, field, DistillSettings())
    assert (o.optimizer, o.lr, o.schedule) == ("adam", 5e-5, "constant")
    o = resolve_optim(dm, field, DistillSettings(lr_images=1e-3))
    assert (o.optimizer, o.lr) == ("adam", 1e-3)
    pixels = Pixels(ParamConfig("pixels", field.config.shape))
    o = resolve_optim(dm, pixels, DistillSettings())
    assert (o.optimizer, o.lr, o.momentum) == ("sgd", 1.0, 0.5)


def _psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1.0 / mse)).mean())


def test_warmup_fits_real_cifar10_and_is_cached(cifar10_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    data = load_dataset(DatasetOptions(name="cifar10", root=str(cifar10_root), train_per_class=12, test_per_class=2))
    # IPC = 1 at d=20 gives 5 fields per class: 50 fields, each fitted to its own real image (Eq. 2)
    p = make_field(width=20, warmup_iterations=300)
    assert p.per_class == 5
    target = torch.cat([data.train_x[data.class_indices(c)[:5]] for c in range(10)])
    p.init_from_real(target)
    assert p.warmup_cached is False and p.warmup_mse is not None and p.warmup_mse.shape == (50,)
    with torch.no_grad():
        x = p.decode()
    torch.testing.assert_close(p.warmup_mse, (x - target).pow(2).mean(dim=(1, 2, 3)), atol=1e-5, rtol=1e-4)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    psnr = _psnr01(x * std + mean, target * std + mean)
    const = target.mean(dim=(2, 3), keepdim=True).expand_as(target)  # the best constant image per channel
    psnr_const = _psnr01(const * std + mean, target * std + mean)
    assert psnr > psnr_const + 6.0, (psnr, psnr_const)
    # the cache: same images and settings → the same fields, loaded not refitted
    files = list((tmp_path / "artifacts" / WARMUP_KIND).glob("*.pt"))
    assert len(files) == 1
    q = make_field(width=20, warmup_iterations=300)
    q.init_from_real(target)
    assert q.warmup_cached is True
    for k, v in p.state_dict().items():
        assert torch.equal(v, q.state_dict()[k]), k
    # other warm-up settings or other images → another key
    r = make_field(width=20, warmup_iterations=301)
    assert r.warmup_key(target) != p.warmup_key(target)
    assert p.warmup_key(target.flip(0)) != p.warmup_key(target)


def test_warmup_init_is_seeded_by_content_not_by_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    a = make_field(res=8, ipc=2, warmup_iterations=3, warmup_cache=False)
    b = make_field(res=8, ipc=2, warmup_iterations=3, warmup_cache=False)
    images = torch.randn(a.num_instances, 3, 8, 8)
    torch.manual_seed(1)
    a.init_from_real(images)
    torch.manual_seed(2)
    b.init_from_real(images)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not list(tmp_path.glob("**/*.pt"))  # warmup_cache=False writes nothing


def test_dm_distils_neural_fields_on_digits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    data = load_dataset(DatasetOptions(name="digits"))
    hp = {
        "objective": "dm",
        "parameterization": "neural_field",
        "ipc": 1,
        "nf_width": 4,
        "nf_depth": 2,
        "warmup_iterations": 50,
        "iterations": 4,
        "batch_real": 16,
        "distill_arch": "convnet_d2",
        "lr_images": 1e-3,
    }
    c = make_components(trial_of(data, hp), data)
    assert c.param.per_class == 64 // parameter_count_digits(4, 2)
    param, _, summary = run_distillation(trial_of(data, hp), data, DistillContext(seed=0))
    assert isinstance(param, NeuralField) and math.isfinite(summary["loss"])
    warm = make_components(trial_of(data, hp), data).param
    from methods.distill.loop import init_from_real

    init_from_real(warm, data, DistillContext(seed=0))
    assert warm.warmup_cached is True
    moved = [not torch.equal(v, warm.state_dict()[k]) for k, v in param.state_dict().items() if k != "labels"]
    assert all(moved)
    assert param.describe()["resize_mode"] == "coordinates"
    assert param.decode(16).shape == (param.num_instances, 1, 16, 16)


def parameter_count_digits(width: int, depth: int) -> int:
    from methods.parameterizations.siren import parameter_count

    return parameter_count(2, width, depth, 1)


def test_cfm_recovers_neural_fields(tmp_path: Path, monkeypatch) -> None:
    """A recover objective (CFM, batches of rows as ownership units) drives fields like pixels."""
    from methods.datasets import RealData
    from methods.networks import build_network

    monkeypatch.setenv("DDX_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16, generator=g), torch.arange(4).repeat(2)
    data = RealData("tiny", x, y, x[:4], y[:4], x[:4], y[:4], 4, list("abcd"), (0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(0)
    teacher = build_network("convnet_d2", 3, 4, 16).eval()
    hp = {"objective": "cfm", "parameterization": "neural_field", "ipc": 1, "nf_width": 4, "nf_depth": 2}
    hp |= {"warmup_iterations": 20, "iterations_per_batch": 2}
    param, _, summary = run_distillation(trial_of(data, hp), data, DistillContext(seed=0), {"teacher": teacher})
    assert isinstance(param, NeuralField) and param.per_class == 768 // 47 == 16
    assert summary["steps"] == 16 * 2 and math.isfinite(summary["loss"])
    start = make_components(trial_of(data, hp), data).param
    from methods.distill.loop import init_from_real

    init_from_real(start, data, DistillContext(seed=0))
    assert start.warmup_cached is True
    moved = (param.weight_1 - start.weight_1).flatten(1).abs().sum(1) > 0
    assert moved.all()  # every field (every batch of rows) was optimised
