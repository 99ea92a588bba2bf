"""Batched SIREN neural fields: many small fields evaluated in one computation.

DDiF (Shin et al., ICLR 2025) stores a synthetic instance as a field F_ψ: Rⁿ → Rᵐ and decodes
it by evaluating F_ψ on every coordinate of a grid C (DDiF Eq. 1, Algorithm 2):

    x̃ = F_ψ(C),   F_ψ(c) = W_L h_{L−1} + b_L,   h_l = sin(ω_l (W_l h_{l−1} + b_l)),   h_{−1} = c

with L sine layers of the same width d (SIREN, Sitzmann et al., NeurIPS 2020; ω_0 for the first
layer, ω for the others) and a linear output layer. Its storage is (DDiF Table 8)

    b = d(n+1) + (L−1)·d(d+1) + m(d+1)   scalars per field.

Every weight and bias here is stacked along dimension 0, one row per field, so a whole set of
fields is one ``baddbmm`` per layer (no Python loop over fields), and the rows are what ddx
shards across workers and gathers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from methods.parameterizations.options import layer_shapes, parameter_count  # noqa: F401  (re-exported)

#: activation elements (fields × width × coordinates) per tile of a no-grad decode: 2¹⁸ fp32 = 1 MiB,
#: so a tile's activations stay in cache (measured fastest on CPU; see benchmarks/decode.py)
CACHE_TILE_ELEMENTS = 1 << 18
#: per tile when gradients flow: the training hot path stays one batched computation unless an
#: activation would exceed 2²⁵ elements (128 MiB), which bounds memory
GRAD_TILE_ELEMENTS = 1 << 25


def coordinate_grid(
    size: Sequence[int], device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The coordinate set C: ``(∏ size, n)`` evenly spaced points of [−1, 1]ⁿ (DDiF App. B.5).

    Each axis holds ``torch.linspace(−1, 1, s)`` (end points included, as in SIREN's
    ``get_mgrid``); rows are in row-major order of ``size``, so a decode ``(m, P)`` reshapes to
    ``(m, *size)`` directly. A finer grid of ``2s − 1`` points contains the coarse one.
    """
    axes = [torch.linspace(-1.0, 1.0, int(s), device=device, dtype=dtype) for s in size]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh, dim=-1).reshape(-1, len(axes))


def init_siren(
    num: int,
    n: int,
    width: int,
    depth: int,
    out: int,
    w0: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[tuple[Tensor, Tensor]]:
    """SIREN's initialisation for ``num`` stacked fields: ``[(W (num, o, i), b (num, o)), …]``.

    First layer W ~ U(−1/i, 1/i); later layers and the output layer W ~ U(−√(6/i)/ω, √(6/i)/ω)
    (Sitzmann et al. 2020, Sec. 3.2); biases U(−1/√i, 1/√i) (PyTorch ``Linear``'s default, which
    SIREN keeps). Drawn on the CPU from ``generator``, so the draw is device-independent.
    """
    layers = []
    for k, (o, i) in enumerate(layer_shapes(n, width, depth, out)):
        wb = 1.0 / i if k == 0 else math.sqrt(6.0 / i) / w0
        bb = 1.0 / math.sqrt(i)
        w = (torch.rand(num, o, i, generator=generator, dtype=dtype) * 2 - 1) * wb
        b = (torch.rand(num, o, generator=generator, dtype=dtype) * 2 - 1) * bb
        layers.append((w, b))
    return layers


def siren_forward(layers: Sequence[tuple[Tensor, Tensor]], coords: Tensor, w0_first: float, w0: float) -> Tensor:
    """Evaluate stacked fields on shared coordinates: ``(N, m, P)`` from ``coords`` ``(P, n)``.

    One batched matrix product per layer, feature-major (``h`` is ``(N, features, P)``, so each
    product is a wide ``(o × i) · (i × P)`` GEMM), with ω folded into the same ``baddbmm``:
    h ← sin(ω·b + ω·W h) for the sine layers, W h + b for the output layer.
    """
    n_fields = layers[0][0].shape[0]
    h = coords.t().unsqueeze(0).expand(n_fields, -1, -1)
    last = len(layers) - 1
    for k, (w, b) in enumerate(layers):
        if k == last:
            h = torch.baddbmm(b.unsqueeze(2), w, h)
        else:
            s = w0_first if k == 0 else w0
            h = torch.sin(torch.baddbmm(b.unsqueeze(2), w, h, beta=s, alpha=s))
    return h


def decode_fields(
    layers: Sequence[tuple[Tensor, Tensor]],
    size: Sequence[int],
    w0_first: float,
    w0: float,
    tile_elements: int | None = None,
) -> Tensor:
    """Decode every field on the grid ``size``: ``(N, m, *size)``, differentiable.

    The work is split into tiles of at most ``tile_elements`` activations (fields × width ×
    coordinates): several whole fields per tile when a field's grid fits, else one field and a
    slice of its coordinates. Each tile is one batched computation over its fields. By default
    (``None``) a no-grad decode uses cache-sized tiles (:data:`CACHE_TILE_ELEMENTS`), and a decode
    that needs gradients — the distillation hot path — is a single computation unless it would
    exceed :data:`GRAD_TILE_ELEMENTS`.
    """
    w_first = layers[0][0]
    coords = coordinate_grid(size, device=w_first.device, dtype=w_first.dtype)
    n_fields, points = w_first.shape[0], coords.shape[0]
    widest = max(w.shape[1] for w, _ in layers)
    if tile_elements is None:
        grad = torch.is_grad_enabled() and any(t.requires_grad for wb in layers for t in wb)
        tile_elements = GRAD_TILE_ELEMENTS if grad else CACHE_TILE_ELEMENTS
    per_field = points * widest
    fields_per_tile = max(1, tile_elements // per_field)
    points_per_tile = points if per_field <= tile_elements else max(1, tile_elements // widest)
    rows = []
    for start in range(0, n_fields, fields_per_tile):
        part = [(w[start : start + fields_per_tile], b[start : start + fields_per_tile]) for w, b in layers]
        tiles = [
            siren_forward(part, coords[p : p + points_per_tile], w0_first, w0)
            for p in range(0, points, points_per_tile)
        ]
        rows.append(tiles[0] if len(tiles) == 1 else torch.cat(tiles, dim=2))
    out = rows[0] if len(rows) == 1 else torch.cat(rows)
    return out.reshape(n_fields, out.shape[1], *[int(s) for s in size])


def decode_flops(n_fields: int, points: int, n: int, width: int, depth: int, out: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of the matrix products of one decode (sines not counted)."""
    return 2 * n_fields * points * sum(o * i for o, i in layer_shapes(n, width, depth, out))
