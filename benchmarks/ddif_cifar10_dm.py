"""DDiF vs pixels on real CIFAR-10 under the same storage budget (IPC=1), DM objective, CPU scale.

What it measures (JSON to ``benchmarks/results/ddif_cifar10_dm.json``):

* instances per class each parameterization gets from the budget of IPC=1 (3,072 scalars per
  class): pixels 1, SIREN fields d=6, L=2 (81 scalars each) 37 (DDiF Table 8);
* test accuracy (mean ± std over ≥ 3 student seeds) of ConvNet-D3 trained on each distilled
  set, decoded at the distillation resolution 32;
* cross-resolution (DDiF Table 13): the same sets decoded at 64 — fields by re-sampling the
  coordinate grid, pixels by bilinear upsampling — and students trained/tested at 64;
  Diff = ACC_32 − ACC_64 and Ratio = Diff / ACC_32. Diagnostic row ``neural_field_bilinear``:
  the same fields decoded at 32 and upsampled bilinearly like pixels (its ACC_32 is the
  fields' own), which separates "more instances" from "coordinate decoding".

Both sets go through the same pipeline a sweep trial uses (``methods.distill.pipeline.run_distillation``)
and the same student trainer (``methods.evaluation.student.train_student``). Evaluation protocol: SGD
(lr 0.01, momentum 0.9, wd 5e-4, ×0.1 at half-way), DSA, batch ≤ 32, the same number of
optimiser steps for every set (pixels: 10 images → 1 step per epoch; fields: 370 images → 12
steps per epoch, so fewer epochs). The real data is a seeded CPU-scale subset (train/test per
class), so accuracies are far below full-CIFAR figures; the comparison is what matters. At 64
the real validation/test images are the 32×32 originals upsampled (``RealData.resized``,
bilinear): there is no real 64×64 CIFAR-10, unlike the paper's ImageNet-Subset 128 → 256.

Run: ``nice -n 10 python benchmarks/ddif_cifar10_dm.py`` (resumable: finished evaluations in
the JSON and distilled sets under ``$DDX_CACHE/ddif_bench`` are reused).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from methods.artifacts import default_cache_dir
from methods.context import DistillContext
from methods.datasets import DatasetOptions, load_dataset
from methods.distill.loop import resolve_optim
from methods.distill.pipeline import make_components, run_distillation
from methods.distill.trial import TrialConfig
from methods.evaluation.student import EvalSettings, train_student
from methods.parameterizations import load_synthetic, save_synthetic

ROOT = Path(__file__).resolve().parent


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CIFAR10_ROOT", "/work/cache/cifar10"))
    ap.add_argument("--train-per-class", type=int, default=200)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=60, help="DM iterations for both sets")
    ap.add_argument("--batch-real", type=int, default=32)
    ap.add_argument("--nf-width", type=int, default=6)
    ap.add_argument("--nf-depth", type=int, default=2)
    ap.add_argument("--nf-lr", type=float, default=None, help="Adam lr of the fields (default: DDiF's 5e-5)")
    ap.add_argument("--warmup-iterations", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150, help="student optimiser steps for every set")
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--fields-bilinear",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also evaluate the fields decoded at 32 and upsampled bilinearly (diagnostic)",
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "ddif_cifar10_dm.json"))
    return ap.parse_args()


def mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def main() -> None:
    a = parse()
    torch.set_num_threads(a.threads)
    opts = DatasetOptions(
        name="cifar10", root=a.root, train_per_class=a.train_per_class, test_per_class=a.test_per_class
    )
    data = load_dataset(opts)
    common = {
        "objective": "dm",
        "ipc": 1,
        "iterations": a.iterations,
        "batch_real": a.batch_real,
        "checkpoint_every": 0,
    }
    sets: dict[str, dict[str, Any]] = {
        "pixels": {**common, "parameterization": "pixels", "resize_mode": "bilinear"},
        "neural_field": {
            **common,
            "parameterization": "neural_field",
            "nf_width": a.nf_width,
            "nf_depth": a.nf_depth,
            "warmup_iterations": a.warmup_iterations,
            **({"lr_images": a.nf_lr} if a.nf_lr is not None else {}),
        },
    }
    out_path = Path(a.out)
    config = {k: v for k, v in vars(a).items() if k not in ("out", "threads", "root", "fields_bilinear")}
    result: dict[str, Any] = {"benchmark": "ddif_cifar10_dm", "config": config, "sets": {}, "evaluations": []}
    if out_path.exists():
        old = json.loads(out_path.read_text())
        if old.get("config") == config:
            result = old
    cache = default_cache_dir() / "ddif_bench"
    ctx = DistillContext(seed=0)

    def write() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(out_path)

    params = {}
    for name, hp in sets.items():
        tag = f"{name}-" + hashlib.sha256(json.dumps([hp, config], sort_keys=True).encode()).hexdigest()[:12]
        path = cache / f"{tag}.pt"
        if path.exists() and name in result["sets"]:
            params[name], _ = load_synthetic(path)
            continue
        trial = TrialConfig.build(**hp, dataset=opts)
        c = make_components(trial, data)
        optim = resolve_optim(c.objective, c.param, c.settings)
        t0 = time.perf_counter()
        param, _, summary = run_distillation(trial, data, ctx)
        total = time.perf_counter() - t0
        save_synthetic(param, path, extra={"mean": list(data.mean), "std": list(data.std), **summary})
        params[name] = param
        warm = getattr(param, "warmup_mse", None)
        result["sets"][name] = {
            "hyper": hp,
            "optimizer": {"name": optim.optimizer, "lr": optim.lr},
            "instances_per_class": param.per_class,
            "budget_scalars_per_class": param.config.shape.budget_scalars,
            "scalars_used_per_class": param.budget_used_per_class(),
            "scalars_per_instance": param.scalars_per_instance(param.config.shape, param.config.options),
            "distill_seconds": summary["distill_seconds"],
            "init_plus_distill_seconds": total,
            "final_dm_loss": summary["loss"],
            "warmup_mse_mean": float(warm.mean()) if warm is not None else None,
            "warmup_cached": getattr(param, "warmup_cached", None),
            "synthetic_path": str(path),
        }
        write()
        print(name, result["sets"][name], flush=True)

    done = {(e["set"], e["resolution"], e["seed"]) for e in result["evaluations"]}
    base_res = params["pixels"].config.shape.resolution
    # (name, set, interpolation): None decodes with the set's own decode (fields: coordinates)
    views: list[tuple[str, Any, str | None]] = [(name, param, None) for name, param in params.items()]
    if a.fields_bilinear:  # diagnostic: the same fields decoded at 32 and upsampled like pixels
        views.append(("neural_field_bilinear", params["neural_field"], "bilinear"))
    for res in a.resolutions:
        data_r = data.resized(res)
        for name, param, interp in views:
            if interp is not None and res == base_res:
                continue  # identical to the set's own decode
            with torch.no_grad():
                images = param.decode(res).detach()
                if interp is not None:
                    images = F.interpolate(param.decode(), size=(res, res), mode=interp, align_corners=False)
            n = images.shape[0]
            steps_per_epoch = math.ceil(n / min(a.eval_batch, n))
            epochs = max(1, round(a.steps / steps_per_epoch))
            settings = EvalSettings(epochs=epochs, batch_size=a.eval_batch)
            for seed in range(a.seeds):
                if (name, res, seed) in done:
                    continue
                out = train_student(images, param.labels.clone(), data_r, "convnet_d3", seed, settings)
                mode = interp or param.resize_mode
                result["evaluations"].append(
                    {
                        "set": name,
                        "resolution": res,
                        "resize_mode": "none" if res == base_res else mode,
                        "seed": seed,
                        "epochs": epochs,
                        "steps": epochs * steps_per_epoch,
                        "val_acc": out.val_acc,
                        "test_acc": out.test_acc,
                        "train_seconds": out.train_seconds,
                    }
                )
                write()
                print(result["evaluations"][-1], flush=True)

    summary: dict[str, Any] = {}
    for name, param, interp in views:
        per_res = {}
        for res in a.resolutions:
            source = "neural_field" if interp is not None and res == base_res else name
            accs = [e["test_acc"] for e in result["evaluations"] if e["set"] == source and e["resolution"] == res]
            if accs:
                per_res[str(res)] = mean_std(accs)
        entry: dict[str, Any] = {"instances_per_class": param.per_class, "test_acc": per_res}
        base, other = str(a.resolutions[0]), [str(r) for r in a.resolutions[1:]]
        for r in other:
            if base in per_res and r in per_res:
                diff = per_res[base]["mean"] - per_res[r]["mean"]
                entry[f"cross_resolution_{base}_to_{r}"] = {
                    "resize_mode": interp or param.resize_mode,
                    "diff_pct_points": 100 * diff,
                    "ratio": diff / per_res[base]["mean"],
                }
        summary[name] = entry
    result["summary"] = summary
    result["machine"] = {"torch": torch.__version__, "threads": a.threads, "cpu_count": os.cpu_count()}
    write()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
