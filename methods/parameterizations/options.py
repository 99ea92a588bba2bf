"""The parameterizations' hyper-parameters and storage arithmetic (torch-free).

:class:`SetShape` (classes, IPC budget, the real instance mimicked), each parameterization's
``Options`` dataclass, and the scalars one instance stores — all the sweep validator needs
to check a budget before anything runs. The :class:`~methods.parameterizations.base.Parameterization`
classes call the same functions, so the check and the build cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from methods.options import NonNegativeInt, PositiveFloat, PositiveInt

#: interpolation when pixels are decoded at another resolution
ResizeMode = Literal["nearest", "bilinear", "bicubic"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


@dataclass(frozen=True)
class SetShape:
    """What a synthetic set must look like: classes, budget and the real instance it mimics."""

    num_classes: int
    ipc: int  # the storage budget, in real images per class
    channels: int
    resolution: int  # distillation resolution
    dims: int = 2  # spatial dimensions of an instance (images 2; audio spectrograms 2; voxels/video 3)
    dataset: str | None = None  # the dataset's registry name, for settings tabulated per dataset (DDiF Table 9)

    @property
    def values_per_instance(self) -> int:
        """Scalars of one real instance: C · resolution^dims."""
        return self.channels * self.resolution**self.dims

    @property
    def budget_scalars(self) -> int:
        """Stored scalars allowed per class: IPC × the values of one real instance."""
        return self.ipc * self.values_per_instance


def instances_per_class(shape: SetShape, scalars_per_instance: int) -> int:
    """⌊IPC · (values of one real instance) / scalars per instance⌋: the one budget rule (DDiF Table 8)."""
    return shape.budget_scalars // scalars_per_instance


@dataclass(frozen=True)
class PixelOptions:
    """Pixel hyper-parameters (sweep keys): the interpolation used to decode at another resolution."""

    resize_mode: ResizeMode = "bilinear"


def pixel_scalars(shape: SetShape, options: PixelOptions) -> int:
    """A pixel instance stores one real instance's values."""
    return shape.values_per_instance


@dataclass(frozen=True)
class NeuralFieldOptions:
    """Field and warm-up hyper-parameters (sweep keys).

    ``nf_width`` d, ``nf_depth`` L (sine layers), ``nf_w0_first`` / ``nf_w0`` the SIREN
    frequencies ω of the first / later layers (DDiF reference code, CIFAR: 30 / 10), and the
    warm-up of Eq. 2 (Adam, ``warmup_lr``, ``warmup_iterations``; ``warmup_cache`` to reuse
    earlier fits).
    """

    nf_width: PositiveInt = 6
    nf_depth: PositiveInt = 2
    nf_w0: PositiveFloat = 10.0
    nf_w0_first: PositiveFloat = 30.0
    warmup_iterations: NonNegativeInt = 5000
    warmup_lr: PositiveFloat = 5e-4
    warmup_cache: bool = True


def layer_shapes(n: int, width: int, depth: int, out: int) -> list[tuple[int, int]]:
    """``(out_features, in_features)`` of a SIREN's L sine layers and its linear output layer."""
    if n < 1 or width < 1 or depth < 1 or out < 1:
        raise ValueError(f"a SIREN needs n, width, depth, out ≥ 1 (got n={n}, d={width}, L={depth}, m={out})")
    return [(width, n)] + [(width, width)] * (depth - 1) + [(out, width)]


def parameter_count(n: int, width: int, depth: int, out: int) -> int:
    """Scalars of one field: b = d(n+1) + (L−1)·d(d+1) + m(d+1) (DDiF Table 8)."""
    return sum(o * (i + 1) for o, i in layer_shapes(n, width, depth, out))


def field_scalars(shape: SetShape, options: NeuralFieldOptions) -> int:
    """b = d(n+1) + (L−1)·d(d+1) + m(d+1) (DDiF Table 8), m = channels, n = spatial dims."""
    return parameter_count(shape.dims, options.nf_width, options.nf_depth, shape.channels)


__all__ = [
    "RESIZE_MODES",
    "NeuralFieldOptions",
    "PixelOptions",
    "ResizeMode",
    "SetShape",
    "field_scalars",
    "instances_per_class",
    "layer_shapes",
    "parameter_count",
    "pixel_scalars",
]
