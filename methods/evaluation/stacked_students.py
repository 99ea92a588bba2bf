"""K students of one network as stacked weights, run as one computation under :func:`torch.vmap`.

The K networks' parameters and buffers are stacked (:func:`torch.func.stack_module_state`) and one
``vmap(functional_call)`` over a meta-device copy of the network runs the K forward passes, student
k on batch k. BatchNorm buffers are stacked too (one running mean/var per seed), updated in place
under vmap in training mode and read in eval mode.

Under vmap, autocast does not reach the convolutions (measured: torch 2.14 on CPU leaves a vmapped
``conv2d`` in fp32), so a bf16 :class:`~methods.evaluation.student.Execution` casts by hand what
autocast casts: convolution and linear layers run on bf16 inputs and weights (fp32 master
weights, fp32 gradients), norm layers on fp32 inputs. ``channels_last`` is not applied here
(the convolution's batching rule picks the layout of its grouped convolution).
"""

from __future__ import annotations

import copy
from functools import partial

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from methods.datasets import EvalData
from methods.evaluation.student import Execution
from methods.networks import Classifier

_LOW_PRECISION_LAYERS = (nn.Conv2d, nn.Linear)
_NORM_LAYERS = (nn.GroupNorm, nn.BatchNorm2d)


def _cast_input(_module: nn.Module, args: tuple[Tensor, ...], dtype: torch.dtype) -> tuple[Tensor, ...]:
    return (args[0].to(dtype), *args[1:])


class StackedStudents:
    """K students as stacked weights: training-mode logits on K batches, each one's accuracy, the K modules."""

    def __init__(self, models: list[Classifier], ex: Execution, device: torch.device) -> None:
        self.k, self.models, self.ex, self.dtype = len(models), models, ex, ex.autocast_dtype
        self.device = device
        self.vmap_eval = device.type == "cuda"
        params, buffers = stack_module_state(models)  # copies
        self.params = {n: p.detach().requires_grad_() for n, p in params.items()}
        self.buffers = buffers
        self.base = copy.deepcopy(models[0]).to("meta")
        self.base.train()
        self.low: set[str] = set()
        if self.dtype is not None:
            for name, m in self.base.named_modules():
                if isinstance(m, _LOW_PRECISION_LAYERS):
                    self.low.update(f"{name}.{p}" if name else p for p, _ in m.named_parameters())
                    m.register_forward_pre_hook(partial(_cast_input, dtype=self.dtype))
                elif isinstance(m, _NORM_LAYERS):
                    m.register_forward_pre_hook(partial(_cast_input, dtype=torch.float32))

    def parameters(self) -> list[Tensor]:
        """The stacked parameters, (K, …) each: what one optimiser steps for all K students."""
        return list(self.params.values())

    def _weights(self) -> dict[str, Tensor]:
        if self.dtype is None:
            return self.params
        return {n: p.to(self.dtype) if n in self.low else p for n, p in self.params.items()}

    def _call(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def logits(self, x: Tensor) -> Tensor:
        """(K, B, classes): student k's training-mode logits on ``x[k]`` for ``x`` of shape (K, B, C, H, W)."""
        return torch.vmap(self._call)(self._weights(), self.buffers, x)

    @torch.no_grad()
    def accuracy(self, data: EvalData, split: str) -> list[float]:
        """Each student's accuracy on ``split``, every batch resized once for all K.

        On CUDA one vmapped forward per batch; elsewhere the K students as plain modules, which
        on CPU is faster (a vmapped convolution runs as a grouped one: 2.3× slower, measured).
        """
        correct = torch.zeros(self.k, dtype=torch.long)
        total = 0
        models = self.modules() if not self.vmap_eval else []
        for m in models:
            m.eval()
        self.base.eval()
        try:
            weights = self._weights() if self.vmap_eval else {}
            run = torch.vmap(self._call, in_dims=(0, 0, None))
            for xb, yb in data.batches(split):
                xb = xb.to(self.device, non_blocking=True)
                if self.vmap_eval:
                    logits = run(weights, self.buffers, xb)
                else:
                    with self.ex.autocast(self.device):
                        logits = torch.stack([m(self.ex.prepare_input(xb)) for m in models])
                correct += (logits.argmax(-1).cpu() == yb[None]).sum(1)
                total += len(yb)
        finally:
            self.base.train()
            for m in models:
                m.train()
        return [int(c) / max(1, total) for c in correct]

    @torch.no_grad()
    def modules(self) -> list[Classifier]:
        """The K students as plain modules, holding the stacked weights and buffers as they are now."""
        for k, model in enumerate(self.models):
            for name, t in model.named_parameters():
                t.copy_(self.params[name][k])
            for name, t in model.named_buffers():
                t.copy_(self.buffers[name][k])
        return self.models


__all__ = ["StackedStudents"]
