"""The network registry: every architecture builds from its library and runs at small sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from methods.networks import NetworkError, build_network, convnet_depth_for, resolve_arch
from methods.networks.zoo import vit_patch_size
from methods.registry import NETWORKS, UnknownNameError

#: the smallest resolution each family supports with its small-image stem (tested there)
SMALLEST = {
    "alexnet": 16,
    "vgg11": 32,
    **{f"convnet_d{d}": 2**d for d in range(1, 8)},
    **{f"convnet_bn_d{d}": 2**d for d in range(1, 8)},
}
ISSUE_ARCHS = {
    "convnet_d3",
    "convnet_d4",
    "convnet_d5",
    "convnet_d6",
    "convnet_d7",
    "alexnet",
    "vgg11",
    "resnet18",
    "resnet50",
    "resnet101",
    "densenet121",
    "regnety_400mf",
    "regnety_8gf",
    "convnext_tiny",
    "vit_tiny",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_registry_holds_the_issue_architectures() -> None:
    assert set(NETWORKS.names()) >= ISSUE_ARCHS


@pytest.mark.parametrize("name", NETWORKS.names())
def test_every_network_builds_and_runs(name: str) -> None:
    res = SMALLEST.get(name, 8)
    torch.manual_seed(0)
    net = build_network(name, 3, 7, res)
    x = torch.randn(2, 3, res, res)
    logits = net(x)
    feats = net.embed(x)
    assert logits.shape == (2, 7)
    assert feats.shape == (2, net.feature_dim)
    assert torch.isfinite(logits).all()
    # the head is the one linear layer on the embedding
    assert torch.allclose(net.classifier(feats), logits, atol=1e-5)


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "densenet121", "regnety_400mf", "convnext_tiny", "vit_tiny"])
def test_single_channel_inputs(name: str) -> None:
    res = SMALLEST.get(name, 16)
    net = build_network(name, 1, 10, res)
    loss = net(torch.randn(3, 1, res, res)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        build_network("resnet19", 3, 10, 32)
    msg = str(err.value)
    assert "did you mean 'resnet18'" in msg
    for name in ("alexnet", "vgg11", "densenet121", "convnext_tiny", "vit_tiny", "regnety_400mf"):
        assert name in msg


@pytest.mark.parametrize(
    ("name", "too_small"), [("alexnet", 8), ("vgg11", 16), ("convnet_d4", 8), ("convnet_bn_d4", 8)]
)
def test_too_small_inputs_fail_with_a_network_error(name: str, too_small: int) -> None:
    with pytest.raises(NetworkError, match=f"{too_small}px"):
        build_network(name, 3, 10, too_small)


def _first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(
    ("name", "small_stride", "large_stride"),
    [("resnet18", 1, 2), ("densenet121", 1, 2), ("regnety_400mf", 1, 2), ("convnext_tiny", 1, 4), ("alexnet", 1, 4)],
)
def test_small_image_stems(name: str, small_stride: int, large_stride: int) -> None:
    small = _first_conv(build_network(name, 3, 10, 32))
    assert small.stride == (small_stride, small_stride)
    large = _first_conv(build_network(name, 3, 10, 128))
    assert large.stride == (large_stride, large_stride)


def test_resnet_and_densenet_drop_the_stem_maxpool_for_small_images() -> None:
    r = build_network("resnet18", 3, 10, 32)
    assert isinstance(r.features.maxpool, nn.Identity)
    d = build_network("densenet121", 3, 10, 32)
    assert isinstance(d.features[0].pool0, nn.Identity)
    assert isinstance(build_network("resnet18", 3, 10, 128).features.maxpool, nn.MaxPool2d)


def test_vgg11_uses_instance_norm() -> None:
    net = build_network("vgg11", 3, 10, 32)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 8  # one per convolution of configuration "A"
    assert all(m.num_groups == m.num_channels for m in norms)
    assert net.feature_dim == 512  # 32 px → five max-pools → 1×1×512


def test_convnet_width_and_instance_norm() -> None:
    net = build_network("convnet_d3", 3, 10, 32)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert [c.out_channels for c in convs] == [128, 128, 128]
    assert all(n.num_groups == n.num_channels == 128 for n in norms)
    assert net.feature_dim == 128 * 4 * 4


@pytest.mark.parametrize(("res", "patch"), [(8, 1), (16, 2), (28, 2), (32, 4), (64, 8), (128, 16), (224, 16), (96, 12)])
def test_vit_patch_size_follows_resolution(res: int, patch: int) -> None:
    assert vit_patch_size(res) == patch
    assert res % patch == 0


def test_vit_tokens() -> None:
    net = build_network("vit_tiny", 3, 10, 32)
    vit = net.features
    assert tuple(vit.patch_embed.patch_size) == (4, 4)
    assert vit.patch_embed.num_patches == 64


@pytest.mark.parametrize(("res", "depth"), [(8, 1), (16, 2), (32, 3), (64, 4), (128, 5), (256, 6), (512, 7), (1024, 7)])
def test_convnet_depth_follows_resolution(res: int, depth: int) -> None:
    assert convnet_depth_for(res) == depth
    assert resolve_arch("convnet", res) == f"convnet_d{depth}"
    assert resolve_arch("convnet_bn", res) == f"convnet_bn_d{depth}"
    assert resolve_arch("convnet_d5", res) == "convnet_d5"
    assert resolve_arch("resnet18", res) == "resnet18"


def test_convnet_auto_builds_the_resolved_depth() -> None:
    net = build_network("convnet", 3, 10, 64)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 4
    assert net.feature_dim == 128 * 4 * 4


def test_batchnorm_convnets_are_registered() -> None:
    names = set(NETWORKS.names())
    assert {f"convnet_bn_d{d}" for d in range(1, 8)} | {"convnet_bn"} <= names


def test_batchnorm_convnet_structure_and_state_dict_layout() -> None:
    bn = build_network("convnet_bn_d3", 3, 10, 32)
    inn = build_network("convnet_d3", 3, 10, 32)
    assert not any(isinstance(m, nn.GroupNorm) for m in bn.modules())
    norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 3 and all(m.num_features == 128 and m.affine for m in norms)
    assert [type(m) for m in bn.features][:4] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d]
    assert bn.feature_dim == inn.feature_dim == 128 * 4 * 4
    # same parameter shapes as the instance-norm ConvNet, plus BatchNorm's running statistics
    extra = set(bn.state_dict()) - set(inn.state_dict())
    assert extra == {
        f"features.{i}.{k}" for i in (1, 5, 9) for k in ("running_mean", "running_var", "num_batches_tracked")
    }
    auto = build_network("convnet_bn", 3, 10, 64)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in auto.modules()) == 4


def test_batchnorm_convnet_train_and_eval_modes_differ() -> None:
    torch.manual_seed(0)
    net = build_network("convnet_bn_d2", 3, 5, 16)
    x = torch.randn(8, 3, 16, 16) * 3 + 1
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    net.train()
    alone = net(x[:4])
    together = net(x)[:4]
    assert not torch.allclose(alone, together, atol=1e-4)  # training mode: batch statistics
    assert int(bn.num_batches_tracked) == 2 and not torch.allclose(bn.running_mean, torch.zeros(128))
    net.eval()
    frozen = bn.running_mean.clone()
    assert torch.allclose(net(x[:4]), net(x)[:4], atol=1e-5)  # eval mode: running statistics
    assert torch.equal(bn.running_mean, frozen)
    # instance norm does not depend on the batch in either mode
    inn = build_network("convnet_d2", 3, 5, 16).train()
    assert torch.allclose(inn(x[:4]), inn(x)[:4], atol=1e-5)
