"""The pixel parameterization: every instance is an image, resized by interpolation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.parameterizations.base import ParamConfig, Parameterization
from methods.parameterizations.options import RESIZE_MODES, PixelOptions, SetShape, pixel_scalars


class Pixels(Parameterization):
    """IPC images per class stored as raw (normalised) pixels.

    Options: ``resize_mode`` (``nearest`` | ``bilinear`` | ``bicubic``, default bilinear) used
    when decoding at a resolution other than the distillation one.
    """

    def __init__(self, config: ParamConfig) -> None:
        super().__init__(config)
        mode = config.options.resize_mode
        if mode not in RESIZE_MODES:
            raise ValueError(f"pixels.resize_mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
        self.resize_mode = mode
        s = config.shape
        self.images = nn.Parameter(torch.zeros(self.num_instances, s.channels, s.resolution, s.resolution))

    @classmethod
    def scalars_per_instance(cls, shape: SetShape, options: PixelOptions) -> int:
        return pixel_scalars(shape, options)

    def decode(self, resolution: int | None = None, index: Tensor | None = None) -> Tensor:
        x = self.images if index is None else self.images[index]
        if resolution is None or resolution == x.shape[-1]:
            return x
        kwargs = {} if self.resize_mode == "nearest" else {"align_corners": False}
        return F.interpolate(x, size=(resolution, resolution), mode=self.resize_mode, **kwargs)

    def init_from_real(self, images: Tensor) -> None:
        with torch.no_grad():
            self.images.copy_(images.to(self.images))
