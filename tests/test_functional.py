"""The functional student: a network run as a pure function of a flat parameter vector equals the module."""

from __future__ import annotations

import pytest
import torch

from methods.functional import FunctionalNet
from methods.networks import build_network


@pytest.mark.parametrize("arch", ["convnet_d3", "resnet18"])
@pytest.mark.parametrize("train", [True, False])
def test_functional_forward_equals_the_module(arch: str, train: bool) -> None:
    torch.manual_seed(0)
    net = build_network(arch, 3, 10, 32).train(train)
    fnet = FunctionalNet(net)
    x = torch.randn(4, 3, 32, 32)
    theta = fnet.flatten()
    assert theta.shape == (sum(p.numel() for p in net.parameters()),) == (fnet.num_params,)
    assert torch.equal(theta, torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    got = fnet(theta, x)
    want = net(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_other_weights_flow_through_the_vector_and_gradients_reach_it() -> None:
    torch.manual_seed(1)
    net = build_network("convnet_d2", 3, 5, 16)
    fnet = FunctionalNet(net)
    other = build_network("convnet_d2", 3, 5, 16)
    theta = fnet.flatten(other).requires_grad_(True)
    x = torch.randn(3, 3, 16, 16)
    out = fnet(theta, x)
    torch.testing.assert_close(out, other(x), rtol=0, atol=1e-6)
    assert not torch.allclose(out, net(x))
    (g,) = torch.autograd.grad(out.square().sum(), theta)
    other.zero_grad()
    other(x).square().sum().backward()
    torch.testing.assert_close(g, torch.cat([p.grad.reshape(-1) for p in other.parameters()]), rtol=1e-5, atol=1e-6)
    fnet.load_into(theta.detach())  # copying the vector into the module makes the module the same function
    torch.testing.assert_close(net(x), other(x), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="flat vector"):
        fnet(theta[:-1], x)
