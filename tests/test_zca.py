"""ZCA whitening as a dataset transform: fitted on the training split's [0, 1] pixels (kornia, as MTT), cached,
applied to every split. (MTT's definition on identical inputs: tests/test_reference_parity.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kornia.enhance import ZCAWhitening

from methods.datasets import DatasetOptions, load_dataset
from methods.datasets.zca import ZCA_EPS, fit_zca


def _pixels(x: torch.Tensor, data: object) -> torch.Tensor:
    """The [0, 1] pixels of normalised images of ``data`` (x·std + mean)."""
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)  # type: ignore[attr-defined]
    std = torch.tensor(data.std).view(1, -1, 1, 1)  # type: ignore[attr-defined]
    return x * std + mean


def _spectrum(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1).double()
    return torch.linalg.eigvalsh(torch.cov(flat.T)).clamp_min(0).sort().values


def test_whitened_training_covariance_has_the_regularised_identity_spectrum(tmp_path: Path) -> None:
    plain = load_dataset(DatasetOptions(name="digits", cache_dir=str(tmp_path)))
    white = load_dataset(DatasetOptions(name="digits", zca=True, cache_dir=str(tmp_path)))
    assert white.zca and not plain.zca and white.train_x.shape == plain.train_x.shape
    before, after = _spectrum(_pixels(plain.train_x, plain)), _spectrum(white.train_x)
    # ZCA with regularisation ε maps the pixels' covariance eigenvalues λ to λ/(λ+ε): ≤ 1, flatter where λ ≫ ε
    torch.testing.assert_close(after, before / (before + ZCA_EPS), atol=1e-4, rtol=1e-3)
    assert float(after.max()) <= 1.0 + 1e-4
    top = slice(-20, None)  # the 20 leading directions: spread over an order of magnitude before, flatter after
    assert float(before[top].max() / before[top].min()) > 10.0
    assert float(after[top].max() / after[top].min()) < 3.0  # digits' pixel eigenvalues are all < 1 (ε = 0.1)
    assert float(white.train_x.flatten(1).mean(0).abs().max()) < 1e-4  # centred


def test_fit_is_cached_deterministic_and_shared_by_val_and_test(tmp_path: Path) -> None:
    opts = DatasetOptions(name="digits", zca=True, cache_dir=str(tmp_path))
    a = load_dataset(opts)
    files = list((tmp_path / "zca").glob("*.pt"))
    assert len(files) == 1  # computed once for this training split…
    b = load_dataset(opts)
    assert len(list((tmp_path / "zca").glob("*.pt"))) == 1  # …and reused
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    x = torch.rand(30, 1, 4, 4)
    assert [fit_zca(x, ZCA_EPS, tmp_path / "own")[1] for _ in range(2)] == [False, True]  # keyed by the tensor's bytes
    # validation and test go through the transform fitted on the training split's pixels (kornia, fitted here)
    plain = load_dataset(DatasetOptions(name="digits", cache_dir=str(tmp_path)))
    ref = ZCAWhitening(eps=ZCA_EPS).fit(_pixels(plain.train_x, plain))
    for got, x in ((a.train_x, plain.train_x), (a.val_x, plain.val_x), (a.test_x, plain.test_x)):
        torch.testing.assert_close(got, ref(_pixels(x, plain)), atol=1e-4, rtol=1e-4)
    # a different training split is a different fit
    other = load_dataset(DatasetOptions(name="digits", zca=True, split_seed=1, cache_dir=str(tmp_path)))
    assert len(list((tmp_path / "zca").glob("*.pt"))) == 2
    assert other.train_x.shape[1:] == a.train_x.shape[1:]


def test_zca_sets_are_displayed_without_pixel_statistics(tmp_path: Path) -> None:
    white = load_dataset(DatasetOptions(name="digits", zca=True, cache_dir=str(tmp_path)))
    plain = load_dataset(DatasetOptions(name="digits", cache_dir=str(tmp_path)))
    assert white.display_stats() is None  # whitened images are not x·std + mean of pixels
    assert plain.display_stats() == (plain.mean, plain.std)
    assert "ZCA" in white.summary() and white.resized(16).zca


def test_eps_is_part_of_the_key(tmp_path: Path) -> None:
    x = torch.randn(50, 1, 4, 4)
    fit_zca(x, 0.1, tmp_path)
    fit_zca(x, 0.01, tmp_path)
    assert len(list((tmp_path / "zca").glob("*.pt"))) == 2
    with pytest.raises(ValueError):
        fit_zca(x[:1], 0.1, None)  # kornia needs ≥ 2 samples for an unbiased covariance
