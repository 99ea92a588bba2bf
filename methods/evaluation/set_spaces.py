"""The spaces a synthetic set's values can be in, and the checks and conversions between them.

``pixels`` ([0, 1] intensities), ``normalized`` (``(x − mean) / std`` with the constants the file
was normalised with) and ``zca`` (ZCA-whitened, used as they are; the real data is whitened the same
way). Every check raises :class:`SetError` with one line: what is wrong and how to fix it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from methods.datasets import RealData

#: the spaces a set's values can be in (see the module docstring)
SPACES = ("pixels", "normalized", "zca")
#: a normalisation: per-channel (mean, std)
Stats = tuple[tuple[float, ...], tuple[float, ...]]
#: tolerance for values of a ``pixels`` tensor outside [0, 1] (rounding of saved PNGs and the like)
PIXEL_SLACK = 0.01


class SetError(ValueError):
    """A synthetic set that cannot be evaluated as given (one line: what and how to fix it)."""


def normalise(images: Tensor, data: RealData) -> Tensor:
    """[0, 1] pixels → the dataset's space: ``(x − mean) / std`` with its constants, then its ZCA
    whitening when the data is whitened (:meth:`RealData.from_pixels`; the whitening is fitted at the
    data's resolution, so such a set must have that resolution)."""
    if data.zca:
        if images.dim() == 4 and images.shape[-1] != data.resolution:
            raise SetError(
                f"{data.name!r} is ZCA-whitened at {data.resolution} px; a {images.shape[-1]} px pixel set cannot "
                "be whitened with it (resize the set, or store it already whitened with 'space': 'normalized')"
            )
        if data.whitening is None:
            raise SetError(f"{data.name!r} is ZCA-whitened but its fitted whitening is not at hand")
    return data.from_pixels(images)


def check_soft_labels(soft: Tensor, n: int, num_classes: int) -> Tensor:
    """Learned soft labels as a float ``(n, num_classes)`` matrix of finite values, or a :class:`SetError`."""
    if not isinstance(soft, Tensor) or soft.dim() != 2 or not soft.dtype.is_floating_point:
        shape = tuple(soft.shape) if isinstance(soft, Tensor) else type(soft).__name__
        raise SetError(f"learned soft labels must be an (N, C) float matrix, got {shape}")
    if soft.shape[0] != n:
        raise SetError(f"{n} images but {soft.shape[0]} rows of learned soft labels")
    if soft.shape[1] != num_classes:
        raise SetError(
            f"learned soft labels have {soft.shape[1]} columns; the dataset has {num_classes} classes (one per class)"
        )
    if not torch.isfinite(soft).all():
        raise SetError("learned soft labels contain NaN or infinite values")
    return soft.detach().float()


def check_space(images: Tensor, space: str, source: str = "it") -> None:
    """A :class:`SetError` when the values cannot be in ``space``: ``pixels`` outside [0, 1] (they are
    normalised or whitened), ``normalized`` or ``zca`` values that all lie in [0, 1] (they are pixels:
    normalised and whitened images are centred on 0)."""
    if space not in SPACES:
        raise SetError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    lo, hi = float(images.min()), float(images.max())
    if space == "pixels" and (lo < -PIXEL_SLACK or hi > 1 + PIXEL_SLACK):
        raise SetError(
            f"values span {lo:.3g}…{hi:.3g}, outside [0, 1] pixel space: if {source} is already "
            "normalised with the dataset's mean/std, store 'space': 'normalized' (or pass --space normalized); "
            "ZCA-whitened: --space zca"
        )
    if space != "pixels" and lo >= 0 and hi <= 1:
        raise SetError(
            f"values span {lo:.3g}…{hi:.3g}, inside [0, 1]: these are pixels, not {space} values (normalised and "
            "whitened images are centred on 0); pass --space pixels"
        )


def require_data_space(space: str, data: RealData) -> None:
    """A :class:`SetError` for pixel or normalised values when ``data`` is ZCA-whitened (they cannot be
    compared with it); ZCA values are used as they are (the orchestrator whitens the real data for them)."""
    if data.zca and space != "zca":
        raise SetError(
            f"the set holds {space} values but the real data is ZCA-whitened (dataset.zca): evaluate it without "
            "dataset.zca, or give its ZCA-whitened values (--space zca)"
        )


def to_data_space(
    images: Tensor, space: str, data: RealData, source_stats: Stats | None = None, source: str = "it"
) -> Tensor:
    """``images`` held in ``space`` → the space of ``data``'s normalised images (checked first).

    ``pixels`` are normalised with ``data``'s mean/std; ``normalized`` images were normalised with
    ``source_stats`` (default: ``data``'s own) and are re-normalised with ``data``'s; ``zca`` images
    are used as they are (the real data is whitened to match, ``dataset.zca: true``).
    """
    check_space(images, space, source)
    require_data_space(space, data)
    if space == "pixels":
        return normalise(images, data)
    if space == "normalized" and source_stats is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in source_stats)
        if mean.shape[1] != images.shape[1]:
            raise SetError(f"{mean.shape[1]} normalisation constants for {images.shape[1]} channels")
        return normalise(images.float() * std + mean, data)
    return images.float()
