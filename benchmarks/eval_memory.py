"""Peak memory of one evaluation: resizing every split up front (before) vs lazily resized
validation/test splits (after), at several evaluation resolutions, in one run.

One evaluation = what an evaluation task does (``orchestrator.evaluation.tasks.evaluate_job``):
load the dataset, decode a pixel set (``ipc`` real CIFAR-10 training images per class) at the
evaluation resolution, train ``convnet`` (the depth of the resolution: D3 at 32 px, D5 at 128,
D6 at 256) for ``epochs`` epoch(s) in batches of ``train_batch`` images, and measure validation
and test accuracy. The two paths
differ only in how the real data is held:

* **before** — ``cached_dataset(options, resolution)``: every split, the training split
  included, resized to the evaluation resolution and kept (ddx before this change);
* **after** — ``cached_eval_data(options).at(resolution)``: only validation and test, at the
  loaded resolution, resized batch by batch inside the accuracy loop.

Each (path, resolution) runs in a fresh subprocess; its peak resident set size is the
kernel's ``ru_maxrss`` of that process (interpreter and torch included; the RSS right after
the imports is recorded as ``import_rss_mib``). Data: the CIFAR-10 JPEG tree, subset as the
JSON says (the old path at 256 px on the full 45,000-image training split needs ~35 GB (33 GiB) for the
training split alone, more than this machine has); ``full_cifar10_before_split_gib`` gives
the size of the old path's resized splits at full CIFAR-10 size, computed from the tensor
shapes (not measured).

    python benchmarks/eval_memory.py --out benchmarks/results/eval_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's methods/, in the parent and in every worker
TARBALL = Path("/work/shared/data/cifar10-jpg.tar.gz")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def cifar10_root(cache: Path) -> Path:
    """The CIFAR-10 JPEG tree under ``cache`` (extracted from the shared tarball once)."""
    target = cache / "cifar10-jpg"
    if not (target / ".extracted").exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TARBALL) as tar:
            tar.extractall(target, filter="data")
        (target / ".extracted").touch()
    return target / "cifar10"


def worker(args: argparse.Namespace) -> None:
    """One evaluation in this (fresh) process; prints one JSON line."""
    import torch

    from methods.datasets import DatasetOptions, cached_dataset, cached_eval_data
    from methods.evaluation.options import EvalSettings
    from methods.evaluation.student import train_student
    from methods.networks import resolve_arch
    from methods.parameterizations import from_payload

    torch.set_num_threads(args.threads)
    import_rss = rss_mib()
    dataset = json.loads(args.dataset)
    opts = DatasetOptions(**dataset)
    start = time.perf_counter()
    if args.path == "before":
        data: Any = cached_dataset(opts, args.resolution)
        held = {"train": tuple(data.train_x.shape), "val": tuple(data.val_x.shape), "test": tuple(data.test_x.shape)}
    else:
        data = cached_eval_data(opts).at(args.resolution)
        held = {"val": tuple(data.val_x.shape), "test": tuple(data.test_x.shape)}
    load_seconds = time.perf_counter() - start
    data_rss = rss_mib()
    payload = torch.load(args.payload, map_location="cpu", weights_only=True)
    param = from_payload(payload)
    with torch.no_grad():
        images = param.decode(args.resolution).detach()
    arch = resolve_arch("convnet", args.resolution)
    settings = EvalSettings(epochs=args.epochs, batch_size=args.train_batch, precision="fp32", channels_last=False)
    start = time.perf_counter()
    out = train_student(images, param.labels.clone(), data, arch, 0, settings)
    print(
        json.dumps(
            {
                "path": args.path,
                "resolution": args.resolution,
                "arch": arch,
                "peak_rss_mib": peak_mib(),
                "import_rss_mib": import_rss,
                "rss_after_data_mib": data_rss,
                "held_shapes": held,
                "load_seconds": load_seconds,
                "eval_seconds": time.perf_counter() - start,
                "val_acc": out.val_acc,
                "test_acc": out.test_acc,
            }
        )
    )


def make_payload(dataset: dict[str, Any], ipc: int, path: Path) -> None:
    import torch

    from methods.datasets import DatasetOptions, load_dataset
    from methods.parameterizations import ParamConfig, SetShape, build_parameterization, synthetic_payload
    from methods.parameterizations.options import PixelOptions

    data = load_dataset(DatasetOptions(**dataset))
    shape = SetShape(data.num_classes, ipc, data.channels, data.resolution)
    param = build_parameterization(ParamConfig("pixels", shape, PixelOptions(resize_mode="bilinear")))
    g = torch.Generator().manual_seed(0)
    param.init_from_real(torch.cat([data.sample_class(c, ipc, g) for c in range(data.num_classes)]))
    torch.save(synthetic_payload(param), path)


def eval_batch_size(resolution: int) -> int:
    from methods.datasets.eval_data import eval_batch_size as size

    return size(resolution)


def gib(n: int, res: int) -> float:
    return n * 3 * res * res * 4 / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", choices=["before", "after"])
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--payload", help=argparse.SUPPRESS)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[32, 128, 256])
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--test-per-class", type=int, default=50)
    ap.add_argument("--ipc", type=int, default=2)
    ap.add_argument("--train-batch", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.environ.get("DDX_CACHE", "/tmp/ddx-cache"))
    ap.add_argument("--out", default="benchmarks/results/eval_memory.json")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.prepare:
        make_payload(json.loads(args.dataset), args.ipc, Path(args.payload))
        return

    cache = Path(args.cache)
    dataset = {
        "name": "cifar10",
        "root": str(cifar10_root(cache)),
        "train_per_class": args.train_per_class,
        "val_per_class": args.val_per_class,
        "test_per_class": args.test_per_class,
        "cache_dir": str(cache),
    }
    payload = cache / f"eval_memory_payload_ipc{args.ipc}.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DDX_CACHE": str(cache)}
    # decode the JPEGs once (cached on disk) and build the pixel set, outside the measured processes
    script = str(Path(__file__).resolve())
    prep = [sys.executable, script, "--prepare", "--dataset", json.dumps(dataset), "--payload", str(payload)]
    subprocess.run([*prep, "--ipc", str(args.ipc)], check=True, env=env, cwd=REPO)

    runs: list[dict[str, Any]] = []
    for res in args.resolutions:
        for path in ("before", "after"):  # each in a fresh process
            cmd = [sys.executable, script, "--worker", "--path", path]
            cmd += ["--resolution", str(res), "--dataset", json.dumps(dataset), "--payload", str(payload)]
            cmd += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
            cmd += ["--train-batch", str(args.train_batch)]
            done = subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True, text=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(run), flush=True)
            runs.append(run)

    def peaks(path: str) -> list[float]:
        return [round(next(r for r in runs if r["path"] == path and r["resolution"] == res)["peak_rss_mib"], 1)
                for res in args.resolutions]  # fmt: skip

    held = runs[0]["held_shapes"]
    n_train, n_val, n_test = held["train"][0], held["val"][0], held["test"][0]
    result = {
        "benchmark": "peak RSS of one evaluation: every split resized up front (before) vs lazy val/test (after)",
        "resolutions": args.resolutions,
        "before_peak_mib": peaks("before"),
        "after_peak_mib": peaks("after"),
        "data": {
            "dataset": "CIFAR-10 (JPEG tree), seeded subset",
            "subset": True,
            "train_per_class": args.train_per_class,
            "val_per_class": args.val_per_class,
            "test_per_class": args.test_per_class,
            "train_images": n_train,
            "val_images": n_val,
            "test_images": n_test,
            "why_subset": (
                "the old path at 256 px on the full training split resizes ~35 GB (33 GiB) (45,000 train images) "
                "and needs about twice that transiently, beyond this 24 GiB shared machine; evaluation "
                "compute at 256 px on 2 CPU cores bounds the validation/test subsets"
            ),
        },
        "evaluation": {
            "arch": "convnet (depth of the resolution)",
            "synthetic_set": f"{args.ipc} real training images per class (pixels), decoded at the resolution",
            "epochs": args.epochs,
            "train_batch_size": args.train_batch,
            "eval_batch_size": {str(r): eval_batch_size(r) for r in args.resolutions},
            "note": (
                "both paths run the same train_student (validation/test accuracy streamed in batches of "
                "eval_batch_size images); they differ only in the real data the process holds"
            ),
            "threads": args.threads,
        },
        "full_cifar10_before_split_gib": {
            str(r): {"train": round(gib(45000, r), 2), "val": round(gib(5000, r), 2), "test": round(gib(10000, r), 2)}
            for r in args.resolutions
        },
        "full_cifar10_note": "computed from tensor shapes (float32, 3 channels), not measured",
        "runs": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("resolutions", "before_peak_mib", "after_peak_mib")}))


if __name__ == "__main__":
    main()
