"""A network as a pure function of one flat parameter vector θ (what trajectory matching differentiates).

Trajectory matching (MTT) takes SGD steps θ_{i+1} = θ_i − α ∇_θ ℓ(θ_i; x) of a student and
differentiates the end point with respect to the synthetic images x and the step size α, so
the student's weights must be a tensor in the autograd graph rather than module state.
:class:`FunctionalNet` runs any registered :class:`~methods.networks.Classifier` with the
weights given as a flat vector through :func:`torch.func.functional_call`; the module keeps
only the architecture (and its buffers, e.g. BatchNorm running statistics).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call


class FunctionalNet:
    """``net``'s forward as a function ``(θ, x) ↦ logits`` of a flat parameter vector θ.

    θ is the concatenation of ``net.named_parameters()`` flattened in registration order —
    the same order MTT's ``ReparamModule`` uses, so a flat vector saved from ``flatten`` is
    ``torch.cat([p.reshape(-1) for p in net.parameters()])``.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        named = list(net.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [math.prod(s) for s in self.shapes]
        self.num_params = sum(self.numels)

    def flatten(self, module: nn.Module | None = None) -> Tensor:
        """The parameters of ``module`` (default: the wrapped net) as one detached flat vector."""
        params = dict((module or self.net).named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of ``flat`` shaped like each parameter (differentiable w.r.t. ``flat``)."""
        if flat.dim() != 1 or flat.numel() != self.num_params:
            raise ValueError(f"expected a flat vector of {self.num_params} parameters, got shape {tuple(flat.shape)}")
        parts = torch.split(flat, self.numels)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def load_into(self, flat: Tensor, module: nn.Module | None = None) -> None:
        """Copy ``flat`` into the parameters of ``module`` (default: the wrapped net)."""
        params = dict((module or self.net).named_parameters())
        with torch.no_grad():
            for n, v in self.unflatten(flat).items():
                params[n].copy_(v)

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        """Logits of ``x`` under the weights ``flat`` (buffers: the module's own)."""
        return functional_call(self.net, self.unflatten(flat), (x,))


__all__ = ["FunctionalNet"]
