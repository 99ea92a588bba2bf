"""Benchmark of CFM's real-statistics pass (UniDD Eq. 18): peak memory and throughput.

For two dataset sizes, each measured in a fresh subprocess (one thread):

* **streaming** — :func:`methods.spectral.real_statistics`: conv inputs folded into float64
  sums inside forward hooks, batch by batch;
* **one-shot baseline** — the naive alternative: keep every conv input of every image, then
  compute Ψ and Φ at once (:func:`methods.spectral.batch_statistics`).

Peak memory is the process's peak resident set *above* its size once the data and teacher are
loaded (Linux ``VmHWM`` reset through ``/proc/self/clear_refs``), so the dataset itself (held
in memory by every ddx method) is not counted. Throughput is images per CPU-second of the
single-threaded pass (``time.process_time``; wall-clock rates are recorded too but on a shared
machine mostly measure the other processes); ``forward_only`` is the same teacher's plain
forward (no hooks): the ratio is the statistics' overhead.

    python benchmarks/statistics_pass.py --out benchmarks/results/statistics_pass.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def measure(mode: str, images: int, root: str, batch: int) -> dict[str, Any]:
    """One measurement (runs inside the child process)."""
    import torch
    import torch.nn.functional as F

    from methods.context import DistillContext
    from methods.datasets import DatasetOptions, cached_dataset
    from methods.networks import build_network
    from methods.spectral import batch_statistics, conv_inputs, real_statistics, select_convs

    torch.set_num_threads(1)
    per_class = images // 10
    data = cached_dataset(DatasetOptions(name="cifar10", root=root, train_per_class=per_class + 1, val_per_class=1))
    x, y = data.train_x[: per_class * 10].clone(), data.train_y[: per_class * 10].clone()
    del data
    torch.manual_seed(0)
    net = build_network("convnet_d3", 3, 10, 32).eval()
    convs = [m for _, m in select_convs(net)]
    with torch.no_grad():
        net(x[:batch])  # warm-up
    _reset_peak()
    base = _status("VmRSS")
    start, cpu_start = time.perf_counter(), time.process_time()
    if mode == "streaming":
        moments = real_statistics(net, convs, x, y, 10, DistillContext(), batch_size=batch)
        psi = [m.psi() for m in moments]
    elif mode == "one_shot":
        feats: list[list[torch.Tensor]] = [[] for _ in convs]
        with torch.no_grad(), conv_inputs(convs) as slots:
            for s in range(0, len(y), batch):
                net(x[s : s + batch])
                for i, t in enumerate(slots):
                    feats[i].append(t.clone())  # type: ignore[union-attr]
            psi = [batch_statistics(torch.cat(f), F.one_hot(y, 10))[0] for f in feats]
    elif mode == "forward_only":
        with torch.no_grad():
            for s in range(0, len(y), batch):
                net(x[s : s + batch])
        psi = []
    else:
        raise ValueError(mode)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _status("VmHWM")
    return {
        "mode": mode,
        "images": len(y),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "images_per_s": len(y) / seconds,
        "images_per_cpu_s": len(y) / cpu,
        "peak_extra_mib": (peak - base) / 2**20,
        "dataset_mib": x.numel() * 4 / 2**20,
        "layers": [int(p.shape[0]) for p in psi],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/cache/cifar10")
    ap.add_argument("--sizes", default="1000,4000")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--out", default="benchmarks/results/statistics_pass.json")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "IMAGES"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.root, args.batch)))
        return
    runs = []
    for size in (int(s) for s in args.sizes.split(",")):
        for mode in ("streaming", "one_shot", "forward_only"):
            cmd = [sys.executable, __file__, "--root", args.root, "--batch", str(args.batch)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            cmd += ["--child", mode, str(size)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            runs.append(row)

    def pick(mode: str, size: int) -> dict[str, Any]:
        return next(r for r in runs if r["mode"] == mode and r["images"] == size)

    sizes = sorted({r["images"] for r in runs})
    small, large = sizes[0], sizes[-1]
    report = {
        "benchmark": "statistics_pass",
        "teacher": "convnet_d3 (width 128; statistics at the input of its 3 convolutions: 3, 128, 128 channels)",
        "batch": args.batch,
        "threads": 1,
        "runs": runs,
        "summary": {
            "streaming_peak_extra_mib": {str(s): pick("streaming", s)["peak_extra_mib"] for s in sizes},
            "one_shot_peak_extra_mib": {str(s): pick("one_shot", s)["peak_extra_mib"] for s in sizes},
            "streaming_peak_growth_large_over_small": pick("streaming", large)["peak_extra_mib"]
            / pick("streaming", small)["peak_extra_mib"],
            "one_shot_peak_growth_large_over_small": pick("one_shot", large)["peak_extra_mib"]
            / pick("one_shot", small)["peak_extra_mib"],
            "streaming_images_per_cpu_s": {str(s): pick("streaming", s)["images_per_cpu_s"] for s in sizes},
            "forward_only_images_per_cpu_s": {str(s): pick("forward_only", s)["images_per_cpu_s"] for s in sizes},
            "streaming_over_forward_only_cpu_time": {
                str(s): pick("streaming", s)["cpu_seconds"] / pick("forward_only", s)["cpu_seconds"] for s in sizes
            },
        },
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "note": "shared 2-core machine under heavy load: throughput is per CPU-second of the (single-threaded) "
            "process (time.process_time); wall-clock rates (images_per_s) are dominated by other processes",
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
