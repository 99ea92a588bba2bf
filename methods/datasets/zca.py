"""ZCA whitening as a dataset transform (kornia's ``ZCAWhitening``), fitted once per training split.

MTT, DDiF and the trajectory-matching literature whiten CIFAR with ZCA applied to the **raw
[0, 1] pixels**: with ``--zca`` MTT's CIFAR transform is ``ToTensor()`` alone, without
``Normalize`` (mtt-distillation ``utils.py`` ``get_dataset``), and kornia's ``ZCAWhitening``
with regularisation ε = 0.1 is fitted on those images and applied to the training and test sets:
x ↦ U diag((λ + ε)^{-1/2}) Uᵀ (x − μ) over flattened images, with U, λ the eigenvectors and
eigenvalues of the training images' (unbiased) covariance. ε is absolute, so the space matters:
on per-channel normalised CIFAR (variances ~16× larger) the same ε regularises ~16× less.
ddx fits it on the training split it trains on — after the ``train_per_class`` subset and the
validation carve, so no validation or test image shapes it (MTT, which has no validation
split, fits on the full training set) — and applies the same transform to train, validation
and test (:func:`methods.datasets.loaders.load_dataset`; ``DatasetOptions.zca_space`` chooses
pixels, the default, or the normalised images).

The fit (mean, transform and its inverse) is cached under ``<cache>/zca/<key>.pt`` (a
:class:`~methods.artifacts.LocalArtifactCache` entry: locked, verified), described by the
SHA-256 of the training tensor's bytes, its shape, ε and a format version, so it is computed
once per training split and node — concurrent processes wait for the first — and reused by
every process that loads the same data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from kornia.enhance import ZCAWhitening
from torch import Tensor

from methods.artifacts import LocalArtifactCache
from methods.datasets.options import ZCA_EPS

ZCA_VERSION = "kornia-zca-v1"
#: MTT's / DDiF's regularisation (kornia ``eps``): ``ZCA_EPS``, declared with the dataset options


def zca_key(train_x: Tensor, eps: float) -> str:
    """SHA-256 of the training images (float32 bytes), their shape, ``eps`` and the format version."""
    h = hashlib.sha256()
    x = train_x.detach().to("cpu", torch.float32).contiguous()
    h.update(json.dumps({"version": ZCA_VERSION, "shape": list(x.shape), "eps": float(eps)}).encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()[:24]


#: the kind (folder of the cache) of ZCA fits
ZCA_KIND = "zca"


def fit_zca(train_x: Tensor, eps: float = ZCA_EPS, cache_root: Path | None = None) -> tuple[ZCAWhitening, bool]:
    """kornia's ZCA fitted on ``train_x`` (``(N, …)``, samples along dim 0); cached under ``cache_root/zca``.

    Returns the fitted module and whether it came from the cache.
    """
    fitted: list[ZCAWhitening] = []

    def fit() -> ZCAWhitening:
        return ZCAWhitening(eps=eps, compute_inv=True).fit(train_x.detach().to(torch.float32))

    if cache_root is None:
        return fit(), False

    def produce(tmp: Path) -> None:
        zca = fit()
        torch.save({k: v.detach().cpu() for k, v in zca.state_dict().items()}, tmp)
        fitted.append(zca)

    description = {"version": ZCA_VERSION, "eps": float(eps), "train": zca_key(train_x, eps)}
    path = LocalArtifactCache(cache_root).get_or_create(ZCA_KIND, description, produce)
    if fitted:
        return fitted[0], False
    zca = ZCAWhitening(eps=eps, compute_inv=True)
    zca.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return zca, True


@torch.no_grad()
def apply_zca(zca: ZCAWhitening, x: Tensor, chunk: int = 8192) -> Tensor:
    """Whiten ``x`` with a fitted transform, in chunks (same shape and dtype out)."""
    if x.shape[0] == 0:
        return x.clone()
    return torch.cat([zca(part.to(torch.float32)).to(x.dtype) for part in x.split(chunk)]).contiguous()


__all__ = ["ZCA_EPS", "ZCA_VERSION", "apply_zca", "fit_zca", "zca_key"]
