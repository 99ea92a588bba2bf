"""Students in batches: students per minute for K = 1, 2, 4, 8 … seeds of one ConvNet-D3 trained together.

Each configuration (IPC, K, precision) trains K ConvNet-D3 students on a CIFAR-10 set of IPC
real training images per class at 32 px (:func:`methods.evaluation.student_batch.train_students` with
``max_batch = K``, the code path a batched evaluation runs) for a fixed number of optimiser
steps per student, then evaluates each on a small validation/test split. K = 1 is the
one-by-one baseline (a plain module, what ``train_student`` runs), measured in the same run;
``speedup`` = students per minute at K / students per minute at K = 1 (on CPU also per CPU-minute
of the process, ``cpu_speedup``, which the top-level keys use there: the machine is shared, and a
single-threaded process's CPU time is what its work costs). ``step_seconds`` is the steady-state
time of one optimiser step of the whole batch (from step 1 to the last; CPU time on CPU, wall time
with the device synchronised at both ends on CUDA), without set-up and evaluation.

``where_time_goes``: the step time with one 8 px image per student (the same operators as at
32 px — counted — with almost no arithmetic: what remains is the per-step overhead: Python,
dispatch, kernel launches, optimiser, augmentation calls) against the real batch (IPC 10: 100
images, IPC 50: 256) at 32 px, for K = 1 and K = 4, with the operators per step (profiler) and the
step's multiply-accumulates (counted on the meta device). From these, ``gpu_projection``
estimates the gain on a GPU where a step's arithmetic is nearly free and its overhead stays:
see the reasoning recorded in the JSON. ``--parity-epochs`` adds bf16 vs fp32 accuracy of the
same seeds (the GPU check's parity test).

    python benchmarks/student_batching.py --out benchmarks/results/student_batching.json
    python benchmarks/student_batching.py --device cuda --ks 1 2 4 8 16 32 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from methods.datasets import DatasetOptions, RealData, cached_dataset
from methods.evaluation.options import EvalSettings
from methods.evaluation.student_batch import train_students
from methods.networks import build_network

ARCH = "convnet_d3"
BATCH = 256  # dd_standard's evaluation batch


def default_root() -> str:
    """The CIFAR-10 ImageFolder tree: $CIFAR10_ROOT, else the test suite's extraction of the shared tarball."""
    if os.environ.get("CIFAR10_ROOT"):
        return os.environ["CIFAR10_ROOT"]
    cache = Path(os.environ.get("DDX_TEST_CACHE", "/tmp/ddx-test-cache"))
    return str(cache / "cifar10-jpg" / "cifar10")


def load(root: str | None, max_ipc: int, test_per_class: int | None, val_per_class: int) -> tuple[Any, str]:
    """CIFAR-10 (``train_per_class`` enough for ``max_ipc``), or random 32 px images when no tree is found."""
    if root and Path(root, "train").is_dir():
        opts = DatasetOptions(
            name="cifar10",
            root=root,
            train_per_class=max_ipc + val_per_class,
            test_per_class=test_per_class,
            val_per_class=val_per_class,
        )
        return cached_dataset(opts), "cifar10 (real training images as the set)"
    g = torch.Generator().manual_seed(0)
    n_test = 10 * (test_per_class or 100)
    data = RealData(
        name="random",
        train_x=torch.randn(10 * max_ipc, 3, 32, 32, generator=g),
        train_y=torch.arange(10).repeat_interleave(max_ipc),
        val_x=torch.randn(10 * val_per_class, 3, 32, 32, generator=g),
        val_y=torch.arange(10 * val_per_class) % 10,
        test_x=torch.randn(n_test, 3, 32, 32, generator=g),
        test_y=torch.arange(n_test) % 10,
        num_classes=10,
        class_names=[str(c) for c in range(10)],
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
    )
    return data, f"random normal images (no CIFAR-10 tree at {root!r})"


def make_set(data: Any, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` training images per class (the first ones of each class: a fixed random-real set)."""
    xs, ys = [], []
    for c in range(10):
        idx = (data.train_y == c).nonzero().flatten()[:ipc]
        xs.append(data.train_x[idx])
        ys.append(torch.full((len(idx),), c, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_students(
    x: torch.Tensor,
    y: torch.Tensor,
    data: Any,
    k: int,
    steps: int,
    precision: str,
    device: torch.device,
    seed0: int = 0,
) -> dict[str, Any]:
    """Train K students together for ``steps`` optimiser steps each; wall time, steady step time, accuracies."""
    per_epoch = math.ceil(len(y) / BATCH)
    epochs = max(1, math.ceil(steps / per_epoch))
    total = epochs * per_epoch
    s = EvalSettings(epochs=epochs, batch_size=BATCH, check_every=epochs, precision=precision)  # type: ignore[arg-type]
    marks: dict[int, float] = {}
    calls = 0

    def on_step(step: int, _losses: torch.Tensor) -> None:
        nonlocal calls
        calls += 1
        if calls in (1, total):  # the first step's end and the last's (of the first chunk): the device drained
            sync(device)
            marks[calls] = time.perf_counter() if device.type == "cuda" else time.process_time()

    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    outs = train_students(x, y, data, ARCH, list(range(seed0, seed0 + k)), s, device, max_batch=k, on_step=on_step)
    sync(device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    chunks = sorted({o.batched for o in outs}, reverse=True)
    # the steady step of one batch of K; None when the memory cap split the seeds into smaller batches
    step_seconds = (marks[total] - marks[1]) / (total - 1) if total > 1 and chunks == [k] else None
    return {
        "k": k,
        "batched": [o.batched for o in outs],
        "split_by_memory": chunks != [k],
        "steps_per_student": total,
        "wall_seconds": wall,
        "students_per_minute": 60.0 * k / wall,
        "cpu_seconds": cpu,
        "students_per_cpu_minute": 60.0 * k / cpu,
        "step_seconds": step_seconds,
        "student_steps_per_second": k / step_seconds if step_seconds else None,
        "test_acc": [o.test_acc for o in outs],
    }


def _median_run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeats of one configuration as one row: the median of each rate."""
    keys = ("students_per_minute", "students_per_cpu_minute", "student_steps_per_second")
    return {key: statistics.median(r[key] for r in rows) if all(r[key] for r in rows) else None for key in keys}


def step_macs(batch: int) -> int:
    """Multiply-accumulates of one ConvNet-D3 forward pass on ``batch`` 32 px images (convolutions and the head)."""
    macs = 0

    def count(m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            macs += out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        elif isinstance(m, nn.Linear):
            macs += out.numel() * m.in_features

    with torch.device("meta"):
        net = build_network(ARCH, 3, 10, 32)
        for m in net.modules():
            m.register_forward_hook(count)
        net(torch.empty(batch, 3, 32, 32))
    return macs


def tiny_set(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One image at 8 px: the same operators as a 32 px step (ConvNet-D3 ends on a 1×1 map, DSA runs the
    same ops), with 1/16 of a 32 px image's arithmetic: what remains of the step time is its overhead."""
    x, y = make_set(data, 1)
    return F.interpolate(x[:1], size=(8, 8), mode="bilinear", antialias=True, align_corners=False), y[:1]


def ops_per_step(data: Any, x: torch.Tensor, y: torch.Tensor, k: int, device: torch.device) -> float:
    """Leaf operator calls (≈ kernel launches on a GPU) per optimiser step of K students on ``(x, y)``, from
    the difference of two profiled runs (2 and 22 steps) so that set-up and evaluation cancel."""
    from torch.profiler import ProfilerActivity, profile

    counts = []
    for steps in (2, 22):  # 20 steps: the op group each step picks (a rotation ~300 operators, a flip ~30) averages out
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_students(x, y, data, k, steps, "fp32", device)
        counts.append(sum(1 for e in prof.events() if e.name.startswith("aten::") and not e.cpu_children))
    return (counts[1] - counts[0]) / 20


def where_time_goes(data: Any, ipcs: list[int], ks: list[int], steps: int, device: torch.device) -> list[dict]:
    """Step time of one 8 px image per student (the same operators, almost no arithmetic: the per-step
    overhead) against the real batch (IPC 10: 100 images, IPC 50: 256) at 32 px, for each K."""
    rows = []
    tiny_x, tiny_y = tiny_set(data)
    one_x, one_y = make_set(data, 1)
    ops = {k: ops_per_step(data, one_x[:1], one_y[:1], k, device) for k in ks}  # 32 px, 1 image per student
    tiny = {k: run_students(tiny_x, tiny_y, data, k, steps, "fp32", device)["step_seconds"] for k in ks}
    for ipc in ipcs:
        x, y = make_set(data, ipc)
        batch = min(BATCH, len(y))
        for k in ks:
            real = run_students(x, y, data, k, steps, "fp32", device)["step_seconds"]
            rows.append({
                "ipc": ipc,
                "k": k,
                "batch_per_student": batch,
                "overhead_step_seconds": tiny[k],
                "real_step_seconds": real,
                "overhead_fraction": tiny[k] / real,
                "arithmetic_seconds_per_student_step": (real - tiny[k]) / k,
                "overhead_seconds_per_student_step": tiny[k] / k,
                "train_macs_per_student_step": 3 * step_macs(batch),  # forward + the two backward products
                "leaf_ops_per_step": ops[k],
            })  # fmt: skip
            print(
                f"time split ipc {ipc} K {k}: overhead {tiny[k] * 1e3:.1f} ms, real {real * 1e3:.1f} ms "
                f"({ops[k]:.0f} ops/step)",
                flush=True,
            )
    return rows


def gpu_projection(
    data: Any, ipcs: list[int], ks: list[int], tflops: float, host_seconds_per_op: float, device: torch.device
) -> dict[str, Any]:
    """Projected speed-up of K seeds over one by one on a GPU, from the operators a step issues (counted here)."""
    one_x, one_y = make_set(data, 1)
    ops = {k: ops_per_step(data, one_x[:1], one_y[:1], k, device) for k in ks}
    out: dict[str, Any] = {
        "assumed_gpu_tflops": tflops,
        "assumed_host_seconds_per_operator": host_seconds_per_op,
        "leaf_ops_per_step": {f"k{k}": n for k, n in ops.items()},
        "reasoning": (
            "On a GPU the host issues every operator of a step (Python, dispatch, a kernel launch each) while "
            "the device runs them asynchronously, so a step costs about max(host time, device time). Host time: "
            "the leaf operators a step issues (counted with the profiler on this machine, 20 steps, 1 image per "
            "student: the count does not depend on the device or the batch) x an assumed host cost per operator. "
            "Device time: the step's FLOPs (2 x MACs, counted on the meta device) at an assumed sustained rate. "
            "One by one, K students cost K x max(host_1, F); batched, max(host_K, K x F). Both constants are "
            "assumptions, so this is a projection, not a measurement (benchmarks/gpu_check.sh measures it). On "
            "this CPU a step is bound by arithmetic: even the 8 px step of where_time_goes carries the "
            "per-parameter work (optimiser, weight gradients of 320k parameters per student), which on a GPU "
            "takes microseconds."
        ),
        "by_ipc": {},
        "load_average": os.getloadavg(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for ipc in ipcs:
        flops = 2 * 3 * step_macs(min(BATCH, 10 * ipc)) / (tflops * 1e12)
        one = max(ops[1] * host_seconds_per_op, flops)
        out["by_ipc"][f"ipc{ipc}"] = {
            f"k{k}": {
                "device_seconds_per_student_step": flops,
                "host_seconds_per_step": n * host_seconds_per_op,
                "projected_speedup": k * one / max(n * host_seconds_per_op, k * flops),
            }
            for k, n in ops.items()
        }
    return out


def parity(data: Any, source: str, epochs: int, seeds: int, device: torch.device) -> dict[str, Any]:
    """bf16 vs fp32 test accuracy of the same ``seeds`` students (IPC 10, batched), dd_standard otherwise."""
    x, y = make_set(data, 10)
    res: dict[str, Any] = {"ipc": 10, "epochs": epochs, "seeds": list(range(seeds)), "data": source}
    res["test_images"] = len(data.test_y)
    for precision in ("fp32", "bf16"):
        s = EvalSettings(epochs=epochs, precision=precision, check_every=epochs)  # type: ignore[arg-type]
        start = time.perf_counter()
        outs = train_students(x, y, data, ARCH, list(range(seeds)), s, device, max_batch=seeds)
        res[precision] = {
            "test_acc": [o.test_acc for o in outs],
            "mean": statistics.fmean(o.test_acc for o in outs),
            "batched": [o.batched for o in outs],
            "seconds": time.perf_counter() - start,
        }
        print(f"parity {precision}: {res[precision]['test_acc']}", flush=True)
    res["bf16_minus_fp32_mean_pt"] = 100 * (res["bf16"]["mean"] - res["fp32"]["mean"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=default_root(), help="CIFAR-10 ImageFolder tree (train/, test/)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--ipcs", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=10, help="optimiser steps per student")
    ap.add_argument("--repeats", type=int, default=2, help="runs of every configuration (K order alternating); medians")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    ap.add_argument(
        "--test-per-class", type=int, default=20, help="evaluation images per class (small: the timing is the training)"
    )
    ap.add_argument("--split-ipcs", type=int, nargs="*", default=[10, 50], help="IPCs of the overhead/arithmetic split")
    ap.add_argument("--split-ks", type=int, nargs="*", default=[1, 4])
    ap.add_argument("--gpu-tflops", type=float, default=100.0, help="sustained rate assumed by the GPU projection")
    ap.add_argument("--host-us", type=float, default=10.0, help="host cost per operator assumed by the projection")
    ap.add_argument("--project-ks", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32], help="Ks of the GPU projection")
    ap.add_argument(
        "--projection-only", action="store_true", help="recompute gpu_projection into an existing --out JSON"
    )
    ap.add_argument("--parity-epochs", type=int, default=0, help="bf16 vs fp32 accuracy, 3 seeds at IPC 10 (0: skip)")
    ap.add_argument(
        "--parity-test-per-class",
        type=int,
        default=None,
        help="test images per class for the parity run (default: all)",
    )
    ap.add_argument("--out", default="benchmarks/results/student_batching.json")
    args = ap.parse_args()  # fmt: skip

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if args.projection_only:  # a later, separate run: recorded as such in the JSON
        data, _ = load(args.root, 1, args.test_per_class, 2)
        result = json.loads(Path(args.out).read_text())
        result["gpu_projection"] = gpu_projection(
            data, args.ipcs, args.project_ks, args.gpu_tflops, args.host_us * 1e-6, device
        )
        result["gpu_projection"]["note"] = "computed by a separate --projection-only run (created_at)"
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["gpu_projection"]["by_ipc"], indent=1))
        return
    load_before = os.getloadavg()
    started = time.perf_counter()
    max_ipc = max([*args.ipcs, *args.split_ipcs, 10 if args.parity_epochs else 1])
    data, source = load(args.root, max_ipc, args.test_per_class, 2)
    run_students(*make_set(data, 1), data, min(2, max(args.ks)), 2, "fp32", device)  # warm-up (not recorded)

    runs: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for precision in args.precisions:
            for ipc in args.ipcs:
                x, y = make_set(data, ipc)
                for k in args.ks if rep % 2 == 0 else reversed(args.ks):  # alternate the order: drift hits every K
                    r = run_students(x, y, data, k, args.steps, precision, device)
                    r.update(ipc=ipc, precision=precision, repeat=rep)
                    runs.append(r)
                    print(
                        f"rep {rep} {precision} ipc {ipc:3d} K {k:2d}: {r['students_per_minute']:8.2f} students/min, "
                        f"step {1e3 * (r['step_seconds'] or 0):8.1f} ms",
                        flush=True,
                    )
    table: dict[str, Any] = {}
    for precision in args.precisions:
        for ipc in args.ipcs:
            rows = {
                k: _median_run([r for r in runs if r["ipc"] == ipc and r["precision"] == precision and r["k"] == k])
                for k in args.ks
            }
            base = rows.get(1)
            entry = {}
            for k, r in rows.items():
                entry[f"k{k}"] = {
                    "students_per_minute": r["students_per_minute"],
                    "speedup": r["students_per_minute"] / base["students_per_minute"] if base else None,
                    "students_per_cpu_minute": r["students_per_cpu_minute"],
                    "cpu_speedup": r["students_per_cpu_minute"] / base["students_per_cpu_minute"] if base else None,
                    "step_speedup": (
                        r["student_steps_per_second"] / base["student_steps_per_second"]
                        if base and base["student_steps_per_second"] and r["student_steps_per_second"]
                        else None
                    ),
                }
            table[f"{precision}_ipc{ipc}"] = entry

    split = where_time_goes(data, args.split_ipcs, args.split_ks, args.steps, device) if args.split_ipcs else []
    parity_res = None
    if args.parity_epochs:
        parity_data, parity_source = load(args.root, 10, args.parity_test_per_class, 2)
        parity_res = parity(parity_data, parity_source, args.parity_epochs, 3, device)

    basis = "cpu_speedup" if device.type == "cpu" else "speedup"
    projection = None
    if args.project_ks and device.type == "cpu":
        projection = gpu_projection(data, args.ipcs, args.project_ks, args.gpu_tflops, args.host_us * 1e-6, device)

    def speedup(ipc: int, k: int = 4) -> float | None:
        return table.get(f"{args.precisions[0]}_ipc{ipc}", {}).get(f"k{k}", {}).get(basis)

    result = {
        "benchmark": "students per minute, K seeds of one ConvNet-D3 trained as one vmapped batch vs one by one",
        "speedup_k4_ipc1": speedup(1),
        "speedup_k4_ipc10": speedup(10),
        "speedup_basis": (
            "students per CPU-minute of this single-threaded process (a shared machine: CPU time is what the "
            "work costs; wall-clock speedups are in speedups[…][…]['speedup'])"
            if device.type == "cpu"
            else "students per wall-clock minute, device synchronised"
        ),
        "speedups": table,
        "runs": runs,
        "where_time_goes": split,
        "gpu_projection": projection,
        "parity": parity_res,
        "work": {
            "arch": ARCH,
            "resolution": 32,
            "data": source,
            "batch_size": BATCH,
            "steps_per_student": args.steps,
            "settings": "dd_standard (SGD 0.01, momentum 0.9, wd 5e-4, DSA one op per batch), check at the end only",
            "evaluation": f"{args.test_per_class} test and 2 validation images per class, once per student",
            "ks": args.ks,
            "repeats": args.repeats,
            "ipcs": args.ipcs,
            "precisions": args.precisions,
        },
        "machine": {
            "device": str(device),
            "device_name": (
                torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else platform.processor() or platform.machine()
            ),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "note": "shared machine: other processes may have run during the benchmark (see load averages)",
        },
        "wall_seconds": time.perf_counter() - started,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"K=4 speed-up: IPC 1 {result['speedup_k4_ipc1']}, IPC 10 {result['speedup_k4_ipc10']} → {out}")


if __name__ == "__main__":
    main()
