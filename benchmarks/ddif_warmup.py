"""DDiF warm-up (Eq. 2) on real CIFAR-10: how well SIREN fields of widths 6/10/20 fit real images.

Each field (L=2 sine layers, ω₀=30 first / ω=10 later) is fitted to one real CIFAR-10 training
image by MSE with Adam (lr 5e-4, 5,000 iterations — DDiF's warm-up), all fields batched. PSNR
is measured in pixel space: decodes are de-normalised with the dataset's mean/std and clipped
to [0, 1]; PSNR = 10·log10(1 / MSE) per image, averaged over images. Baseline in the same run:
the best constant image (each image's per-channel mean), i.e. what a field that learnt nothing
but its output bias would reach.

Run: ``nice -n 10 python benchmarks/ddif_warmup.py`` (JSON to ``benchmarks/results/ddif_warmup.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from methods.datasets import DatasetOptions, load_dataset
from methods.parameterizations import SetShape
from methods.parameterizations.neural_field import NeuralField, fit_fields
from methods.parameterizations.options import NeuralFieldOptions
from methods.parameterizations.siren import decode_fields, init_siren, parameter_count

ROOT = Path(__file__).resolve().parent


def psnr01(x: Tensor, ref: Tensor) -> Tensor:
    """Per-image PSNR (dB) of images in [0, 1]."""
    mse = (x.clamp(0, 1) - ref.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CIFAR10_ROOT", "/work/cache/cifar10"))
    ap.add_argument("--per-class", type=int, default=5, help="real images fitted per class")
    ap.add_argument("--widths", type=int, nargs="+", default=[6, 10, 20])
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "results" / "ddif_warmup.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = load_dataset(DatasetOptions(name="cifar10", root=a.root, train_per_class=50, test_per_class=1))
    target = torch.cat([data.train_x[data.class_indices(c)[: a.per_class]] for c in range(data.num_classes)])
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    ref = target * std + mean
    const = ref.mean(dim=(2, 3), keepdim=True).expand_as(ref)
    const_psnr = psnr01(const, ref)
    rows = []
    for width in a.widths:
        o = NeuralFieldOptions(nf_width=width, nf_depth=a.depth, warmup_iterations=a.iterations)
        b = parameter_count(2, width, a.depth, 3)
        layers = init_siren(len(target), 2, width, a.depth, 3, o.nf_w0, torch.Generator().manual_seed(0))
        layers = [(w.requires_grad_(), bias.requires_grad_()) for w, bias in layers]
        t0 = time.perf_counter()
        mse = fit_fields(layers, target, o.nf_w0_first, o.nf_w0, a.iterations, a.lr)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            decoded = decode_fields(layers, [32, 32], o.nf_w0_first, o.nf_w0) * std + mean
        p = psnr01(decoded, ref)
        per_class_at_ipc1 = NeuralField.instances_per_class(SetShape(10, 1, 3, 32), o)
        rows.append(
            {
                "nf_width": width,
                "nf_depth": a.depth,
                "params_per_field": b,
                "fields_per_class_at_ipc1": per_class_at_ipc1,
                "fields": len(target),
                "psnr_db_mean": float(p.mean()),
                "psnr_db_min": float(p.min()),
                "psnr_db_max": float(p.max()),
                "constant_psnr_db_mean": float(const_psnr.mean()),
                "psnr_gain_over_constant_db": float((p - const_psnr).mean()),
                "normalised_mse_mean": float(mse.mean()),
                "warmup_seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    out = {
        "benchmark": "ddif_warmup",
        "config": {k: v for k, v in vars(a).items() if k not in ("out", "root")},
        "dataset": "cifar10 (JPEG tree), first images of each class of a seeded 50-per-class train subset",
        "psnr_definition": "pixel space [0,1] after de-normalisation, clipped; 10*log10(1/MSE) per image, mean",
        "constant_baseline": "each image's per-channel mean colour",
        "rows": rows,
        "machine": {"torch": torch.__version__, "threads": a.threads, "load_avg": os.getloadavg()},
    }
    path = Path(a.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
