"""Layer statistics (UniDD Eq. 17–19): streaming equals one-shot, EMU is a running mean, caching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods.artifacts import LocalArtifactCache
from methods.context import DistillContext
from methods.networks import build_network
from methods.spectral import (
    LayerMoments,
    MovingStatistics,
    accumulate_moments,
    batch_statistics,
    cached_real_statistics,
    conv_inputs,
    real_statistics,
    select_convs,
    statistics_key,
)


def test_batch_statistics_match_the_definition() -> None:
    """Ψ = (1/nhw)(X̂−X̄)ᵀ(X̂−X̄) over pixels, Φ = (1/n)X′ᵀY over images (Eq. 17–18)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 3, 5, generator=g) * 2 + 1
    y = torch.tensor([0, 1, 2, 0, 1, 1])
    psi, phi = batch_statistics(x, F.one_hot(y, 3))
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 4).double()
    assert torch.allclose(psi, torch.cov(pixels.T, correction=0), atol=1e-12)
    pooled = x.double().mean(dim=(2, 3))
    for c in range(3):
        assert torch.allclose(phi[:, c], pooled[y == c].sum(0) / 6, atol=1e-12)


def test_streaming_moments_equal_one_shot() -> None:
    """Sums over uneven chunks give the same Ψ, Φ as the whole batch at once."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(37, 5, 4, 4, generator=g) * 3 + 10  # an offset mean stresses E[xxᵀ] − μμᵀ
    y = torch.randint(4, (37,), generator=g)
    onehot = F.one_hot(y, 4)
    m = LayerMoments.zeros(5, 4)
    for start, stop in ((0, 1), (1, 13), (13, 30), (30, 37)):
        m.add(x[start:stop], onehot[start:stop])
    psi, phi = batch_statistics(x, onehot)
    assert torch.allclose(m.psi(), psi, atol=1e-10)
    assert torch.allclose(m.phi(), phi, atol=1e-12)
    assert int(m.images) == 37 and int(m.pixels) == 37 * 16


def test_streaming_through_a_network_equals_one_shot() -> None:
    """Hooked conv inputs streamed in batches of 7 equal the statistics of one full forward."""
    torch.manual_seed(0)
    net = build_network("convnet_d2", 3, 4, 16).eval()
    convs = select_convs(net, "all")
    assert [type(m) for _, m in convs] == [nn.Conv2d, nn.Conv2d]
    x, y = torch.randn(30, 3, 16, 16), torch.arange(30) % 4
    ctx = DistillContext()
    streamed = real_statistics(net, [m for _, m in convs], x, y, 4, ctx, batch_size=7)
    with torch.no_grad(), conv_inputs([m for _, m in convs]) as slots:
        net(x)
    for moments, feats in zip(streamed, slots, strict=True):
        assert feats is not None
        psi, phi = batch_statistics(feats, F.one_hot(y, 4))
        assert torch.allclose(moments.psi(), psi, atol=1e-6)
        assert torch.allclose(moments.phi(), phi, atol=1e-6)


def test_streaming_memory_does_not_hold_features() -> None:
    """The accumulators are d×d sums: their size does not depend on how many images went through."""
    net = build_network("convnet_d2", 3, 4, 16).eval()
    convs = [m for _, m in select_convs(net)]
    small = accumulate_moments(net, convs, [(torch.randn(4, 3, 16, 16), torch.arange(4))], 4, torch.device("cpu"))
    batches = ((torch.randn(8, 3, 16, 16), torch.arange(8) % 4) for _ in range(10))
    big = accumulate_moments(net, convs, batches, 4, torch.device("cpu"))
    assert [p.shape for m in small for p in m.parts()] == [p.shape for m in big for p in m.parts()]
    assert int(big[0].images) == 80


def test_select_convs() -> None:
    net = build_network("convnet_d3", 3, 10, 32)
    names = [n for n, _ in select_convs(net, "all")]
    assert len(names) == 3
    assert [n for n, _ in select_convs(net, "0,-1")] == [names[0], names[2]]
    assert [n for n, _ in select_convs(net, names[1])] == [names[1]]
    with pytest.raises(ValueError, match="neither a conv index"):
        select_convs(net, "7")
    with pytest.raises(ValueError, match="twice"):
        select_convs(net, "0,0")


def test_emu_is_the_running_mean_of_batch_statistics() -> None:
    """Eq. 19 applied batch after batch equals the plain mean; rounds of several batches too."""
    g = torch.Generator().manual_seed(2)
    stats = [[torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 2, generator=g, dtype=torch.float64)]
             for _ in range(6)]  # fmt: skip
    emu = MovingStatistics()
    recursion = None
    for b, current in enumerate(stats, start=1):
        mixed = emu.mix(current)
        # Eq. 19: Ψ_s = (1/b) Ψ_s^b + (1 − 1/b) Ψ_s^{b−1}
        recursion = (
            current if recursion is None else [c / b + (1 - 1 / b) * r for c, r in zip(current, recursion, strict=True)]
        )
        for got, want in zip(mixed, recursion, strict=True):
            assert torch.allclose(got, want, atol=1e-12)
        emu.update(current, 1)
    mean = [torch.stack([s[i] for s in stats]).mean(0) for i in range(2)]
    for got, want in zip(emu.means(), mean, strict=True):
        assert torch.allclose(got, want, atol=1e-12)
    # rounds of three batches (what two or three workers fold in at once) give the same mean
    rounds = MovingStatistics()
    for r in range(2):
        chunk = stats[3 * r : 3 * r + 3]
        rounds.update([sum(s[i] for s in chunk) for i in range(2)], 3)
    assert rounds.count == 6
    for got, want in zip(rounds.means(), mean, strict=True):
        assert torch.allclose(got, want, atol=1e-12)
    # the earlier batches are constants: the gradient reaches only the current batch
    cur = [stats[0][0].clone().requires_grad_(True), stats[0][1].clone().requires_grad_(True)]
    out = emu.mix(cur)
    out[0].sum().backward()
    assert torch.allclose(cur[0].grad, torch.full((3, 3), 1 / 7, dtype=torch.float64))
    # the state round-trips through a checkpoint
    again = MovingStatistics()
    again.load_state_dict(emu.state_dict())
    assert again.count == 6 and all(torch.equal(a, b) for a, b in zip(again.sums, emu.sums, strict=True))


def test_statistics_cache_hits_and_keys(tmp_path) -> None:
    torch.manual_seed(0)
    net = build_network("convnet_d2", 3, 4, 16).eval()
    convs = select_convs(net, "all")
    x, y = torch.randn(20, 3, 16, 16), torch.arange(20) % 4
    ctx = DistillContext(cache=LocalArtifactCache(tmp_path))
    first, hit1 = cached_real_statistics(net, convs, x, y, 4, ctx, batch_size=8)
    second, hit2 = cached_real_statistics(net, convs, x, y, 4, ctx, batch_size=8)
    assert (hit1, hit2) == (False, True)
    assert len(list((tmp_path / "statistics").glob("*.pt"))) == 1  # one artifact, keyed by content
    for a, b in zip(first, second, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.parts(), b.parts(), strict=True))
    names = [n for n, _ in convs]
    key = statistics_key(x, y, net, names)
    assert statistics_key(x, y, net, names[:1]) != key  # layer set
    assert statistics_key(x[:-1], y[:-1], net, names) != key  # dataset
    other = build_network("convnet_d2", 3, 4, 16)
    assert statistics_key(x, y, other, names) != key  # teacher weights


def test_resnet_downsample_convs_are_not_matched_twice() -> None:
    """A ResNet's downsample conv reads the tensor ``layerX.0.conv1`` reads: it is left out."""
    torch.manual_seed(0)
    net = build_network("resnet18", 3, 10, 32).eval()
    every = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    convs = select_convs(net, "all", resolution=32)
    names = [n for n, _ in convs]
    assert len(every) == 20 and len(names) == 17  # stem + 8 blocks × 2
    assert sorted(set(every) - set(names)) == [f"features.layer{i}.0.downsample.0" for i in (2, 3, 4)]
    with torch.no_grad(), conv_inputs([m for _, m in convs]) as slots:
        net(torch.randn(2, 3, 32, 32))
    inputs = [s for s in slots if s is not None]
    assert len(inputs) == 17
    assert all(a is not b for i, a in enumerate(inputs) for b in inputs[i + 1 :])  # no shared tensor
    assert len({t.data_ptr() for t in inputs}) == 17
    # indices count the deduplicated list; the ConvNet (no shared inputs) keeps every conv
    assert [n for n, _ in select_convs(net, "-1", resolution=32)] == ["features.layer4.1.conv2"]
    assert len(select_convs(build_network("convnet_d3", 3, 10, 32))) == 3


def test_statistics_of_the_old_resnet_layer_set_are_not_reused(tmp_path) -> None:
    """The cache key holds the layer names: statistics cached with the downsample convs miss."""
    torch.manual_seed(0)
    net = build_network("resnet18", 3, 4, 8).eval()
    old = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    new = select_convs(net, "all", resolution=8)
    x, y = torch.randn(12, 3, 8, 8), torch.arange(12) % 4
    ctx = DistillContext(cache=LocalArtifactCache(tmp_path))
    _, hit_old = cached_real_statistics(net, old, x, y, 4, ctx, batch_size=6)
    moments, hit_new = cached_real_statistics(net, new, x, y, 4, ctx, batch_size=6)
    assert (hit_old, hit_new) == (False, False)
    assert len(moments) == 17 and len(list((tmp_path / "statistics").glob("*.pt"))) == 2
    assert statistics_key(x, y, net, [n for n, _ in old]) != statistics_key(x, y, net, [n for n, _ in new])


def test_probe_failure_asks_for_the_resolution() -> None:
    net = build_network("vgg11", 3, 10, 32)  # five max-pools: an 8 px probe cannot reach every conv
    with pytest.raises(ValueError, match="pass the input resolution"):
        select_convs(net, "all", resolution=8)
    assert len(select_convs(net, "all", resolution=32)) == 8
