"""The in-memory real dataset every method and evaluation works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.datasets.options import carve_size


class DatasetError(ValueError):
    """A dataset cannot be loaded as configured (missing root, bad layout, too few images)."""


@dataclass
class RealData:
    """Train / validation / test splits of a labelled image dataset, as normalised tensors.

    Images are ``float32`` of shape ``(N, C, H, W)``, normalised per channel with the training
    split's mean and std (``mean``/``std`` keep the constants so images can be shown).
    The validation split is carved from the original training set with a recorded seed; the
    test split is the dataset's own test set (or a seeded carve for sets that have none).
    ``zca`` records that every split was instead (or, with ``zca_space="normalized"``, then)
    ZCA-whitened (:mod:`methods.datasets.zca`): the images are no longer ``x·std + mean`` of
    pixels, so :meth:`display_stats` is None and a viewer should contrast-stretch them instead.
    ``whitening`` is the fitted transform (kornia ``ZCAWhitening``; ``None`` without ZCA):
    ``whitening((x − mean) / std)`` maps [0, 1] pixels into this space (:meth:`from_pixels`);
    ``mean``/``std`` are (0, 1) when the pixels were whitened directly (MTT's way).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split_seed: int = 0
    zca: bool = False
    whitening: nn.Module | None = field(default=None, repr=False, compare=False)
    _class_index: dict[int, Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def values_per_instance(self) -> int:
        """Scalars in one real instance (C·H·W): the unit of storage budgets."""
        return int(self.train_x[0].numel())

    def class_indices(self, c: int) -> Tensor:
        if c not in self._class_index:
            self._class_index[c] = torch.nonzero(self.train_y == c).flatten()
        return self._class_index[c]

    def sample_class(self, c: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` training images of class ``c`` drawn without replacement (all if fewer)."""
        idx = self.class_indices(c)
        perm = torch.randperm(len(idx), generator=generator)[: min(n, len(idx))]
        return self.train_x[idx[perm]]

    def display_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` that map the images back to pixels, or None when they are ZCA-whitened."""
        return None if self.zca else (self.mean, self.std)

    def denormalize(self, x: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return x * std + mean

    def from_pixels(self, x: Tensor) -> Tensor:
        """[0, 1] pixels at the loaded resolution → this data's space (normalised, then whitened with ZCA)."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        out = (x.float() - mean) / std
        if not self.zca:
            return out
        if self.whitening is None:
            raise ValueError(f"{self.name}: ZCA-whitened data without its fitted transform (RealData.whitening)")
        from methods.datasets.zca import apply_zca

        return apply_zca(self.whitening, out.cpu()).to(x.device)

    def resized(self, resolution: int) -> RealData:
        """The same data with every split resized to ``resolution`` (bilinear, antialiased)."""
        if resolution == self.resolution:
            return self
        return replace(
            self,
            train_x=resize_images(self.train_x, resolution),
            val_x=resize_images(self.val_x, resolution),
            test_x=resize_images(self.test_x, resolution),
            whitening=None,  # fitted at the loaded resolution: it does not apply to resized images
            _class_index={},
        )

    def summary(self) -> str:
        return (
            f"{self.name}: {self.num_classes} classes, {self.channels}×{self.resolution}², "
            f"train {len(self.train_y)}, val {len(self.val_y)}, test {len(self.test_y)}"
            + (", ZCA-whitened" if self.zca else "")
        )


def resize_images(x: Tensor, resolution: int, mode: str = "bilinear") -> Tensor:
    """Resize a batch of images to ``resolution``² (antialiased when shrinking)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
    chunks = [F.interpolate(chunk, size=(resolution, resolution), mode=mode, **kwargs) for chunk in x.split(4096)]
    out = torch.cat(chunks) if chunks else x.new_zeros((0, x.shape[1], resolution, resolution))
    return out.contiguous()


def stratified_split(labels: Tensor, per_class: int | None, fraction: float | None, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (kept, carved) with ``per_class`` (or ``fraction``) of every class carved out."""
    g = torch.Generator().manual_seed(seed)
    keep, carve = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = carve_size(len(idx), per_class, fraction)
        if n >= len(idx):
            raise DatasetError(f"class {c} has {len(idx)} training images; cannot carve {n} for validation")
        carve.append(idx[:n])
        keep.append(idx[n:])
    return torch.cat(keep).sort().values, torch.cat(carve).sort().values


def limit_per_class(labels: Tensor, n: int | None, seed: int) -> Tensor:
    """Indices of at most ``n`` images per class (a seeded subset); all indices if ``n`` is None."""
    if n is None:
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(out).sort().values
