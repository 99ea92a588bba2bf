"""Neural-field decoding throughput: batched (one ``baddbmm`` per layer) vs a per-field loop.

For each resolution (32², 128², 256²) a set of SIREN fields with DDiF's Table 8 configuration
for that size is decoded (no grad) on the full coordinate grid:

* ``batched``: :func:`methods.parameterizations.siren.decode_fields` — all fields at once;
* ``loop``: the same kernel called once per field (what a per-instance implementation does).

Times are CPU seconds of the (single-threaded) process, which on a shared machine is what the
work costs; wall seconds are recorded too. Reported: instances decoded per second for both,
their ratio, the matrix-product FLOPs of one decode, and the batched rate against the
machine's matmul roofline measured in the same run (a large square fp32 GEMM on the same
thread count, before and after; the faster is used): ``roofline_fraction`` =
(FLOPs per decode / batched seconds) / GEMM FLOP/s. Sines are not counted as FLOPs; narrow
fields are bound by them, so a second bound charges every sine at the ``torch.sin`` rate
measured in the same run (``matmul_plus_sine_bound_fraction``).

``hot_path``: the same comparison for the distillation step's decode (32², 370 fields, forward +
backward), where batching matters most.

On ``--device cuda`` the times are wall seconds with the device synchronised around each call
(CPU time means nothing for GPU kernels), the roofline GEMM runs on the GPU too, and the fields
live there. ``--hot-fields`` shrinks the hot path and ``--fields`` caps the fields per resolution
(tiny runs: ``--resolutions 32 --fields 8 --hot-fields 8 --min-seconds 0.05``).

Run: ``python benchmarks/decode.py`` (JSON to ``benchmarks/results/decode.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from methods.parameterizations.siren import decode_fields, decode_flops, init_siren, layer_shapes

ROOT = Path(__file__).resolve().parent

#: resolution → (width d, sine layers L, fields decoded): DDiF Table 8's field for that size
CASES = {32: (6, 2, 370), 128: (20, 3, 510), 256: (40, 3, 110)}
W0_FIRST, W0 = 30.0, 10.0


DEVICE = torch.device("cpu")


def _clock() -> float:
    """CPU seconds of this process on CPU; wall seconds after draining the device on CUDA."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
        return time.perf_counter()
    return time.process_time()


def timeit(fn: Callable[[], object], min_seconds: float, min_reps: int = 2) -> float:
    """Median CPU seconds of this process per call (≥ ``min_reps`` calls, ≥ ``min_seconds`` in total).

    CPU time (``time.process_time``) rather than wall time: on a shared, oversubscribed machine a
    single-threaded process is descheduled for most of the wall clock, and CPU time is what the
    decode itself costs. Wall time per call is kept in :data:`WALL` for the record.
    """
    fn()  # warm-up
    times: list[float] = []
    walls: list[float] = []
    start = _clock()
    while len(times) < min_reps or _clock() - start < min_seconds:
        t, w = _clock(), time.perf_counter()
        fn()
        times.append(_clock() - t)
        walls.append(time.perf_counter() - w)
    times.sort()
    walls.sort()
    WALL.append(walls[len(walls) // 2])
    return times[len(times) // 2]


WALL: list[float] = []


def gemm_flops(size: int, min_seconds: float) -> float:
    a = torch.randn(size, size, device=DEVICE)
    b = torch.randn(size, size, device=DEVICE)
    sec = timeit(lambda: torch.mm(a, b), min_seconds, min_reps=3)
    return 2.0 * size**3 / sec


def sine_rate(elements: int, min_seconds: float) -> float:
    """Sines per CPU second of ``torch.sin`` on a large contiguous fp32 tensor (the other decode cost)."""
    x = torch.randn(elements, device=DEVICE)
    out = torch.empty_like(x)
    return elements / timeit(lambda: torch.sin(x, out=out), min_seconds, min_reps=3)


def hot_path(min_seconds: float, fields: int | None = None) -> dict[str, float]:
    """The distillation step's decode: 32², 370 fields (CIFAR-10 IPC=1, d=6), forward + backward."""
    width, depth, n_fields = CASES[32]
    n_fields = min(n_fields, fields or n_fields)
    layers = [
        (w.to(DEVICE).requires_grad_(), b.to(DEVICE).requires_grad_())
        for w, b in init_siren(n_fields, 2, width, depth, 3, W0, torch.Generator().manual_seed(0))
    ]

    def batched() -> None:
        decode_fields(layers, [32, 32], W0_FIRST, W0).square().sum().backward()

    def loop() -> None:
        for j in range(n_fields):
            part = [(w[j : j + 1], b[j : j + 1]) for w, b in layers]
            decode_fields(part, [32, 32], W0_FIRST, W0).square().sum().backward()

    tb = timeit(batched, min_seconds)
    tl = timeit(loop, min_seconds)
    return {
        "resolution": 32,
        "fields": n_fields,
        "batched_cpu_seconds": tb,
        "loop_cpu_seconds": tl,
        "batched_over_loop": tl / tb,
        "batched_instances_per_s": n_fields / tb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--gemm-size", type=int, default=1024)
    ap.add_argument("--resolutions", type=int, nargs="+", default=sorted(CASES))
    ap.add_argument("--fields", type=int, default=None, help="at most this many fields per resolution")
    ap.add_argument("--hot-fields", type=int, default=None, help="fields of the hot path (default 370)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "results" / "decode.json"))
    a = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    torch.set_num_threads(a.threads)
    gemm_before = gemm_flops(a.gemm_size, a.min_seconds)
    sines_per_s = sine_rate(1 << 22, a.min_seconds)
    rows = []
    for res in a.resolutions:
        width, depth, n_fields = CASES[res]
        n_fields = min(n_fields, a.fields or n_fields)
        layers = [
            (w.to(DEVICE), b.to(DEVICE))
            for w, b in init_siren(n_fields, 2, width, depth, 3, W0, torch.Generator().manual_seed(0))
        ]
        size = [res, res]
        with torch.no_grad():
            batched = timeit(lambda layers=layers, size=size: decode_fields(layers, size, W0_FIRST, W0), a.min_seconds)

            def loop(layers=layers, size=size, n=n_fields) -> list[torch.Tensor]:
                return [
                    decode_fields([(w[j : j + 1], b[j : j + 1]) for w, b in layers], size, W0_FIRST, W0)
                    for j in range(n)
                ]

            batched_wall = WALL[-1]
            looped = timeit(loop, a.min_seconds)
            looped_wall = WALL[-1]
            diff = float((torch.cat(loop()) - decode_fields(layers, size, W0_FIRST, W0)).abs().max())
        flops = decode_flops(n_fields, res * res, 2, width, depth, 3)
        rows.append(
            {
                "resolution": res,
                "nf_width": width,
                "nf_depth": depth,
                "fields": n_fields,
                "params_per_field": sum(o * (i + 1) for o, i in layer_shapes(2, width, depth, 3)),
                "batched_cpu_seconds": batched,
                "loop_cpu_seconds": looped,
                "batched_wall_seconds": batched_wall,
                "loop_wall_seconds": looped_wall,
                "batched_instances_per_s": n_fields / batched,
                "loop_instances_per_s": n_fields / looped,
                "batched_over_loop": looped / batched,
                "batched_ms_per_instance": 1000 * batched / n_fields,
                "matmul_flops_per_decode": flops,
                "sines_per_decode": n_fields * res * res * width * depth,
                "batched_gflops": flops / batched / 1e9,
                "loop_vs_batched_max_abs_diff": diff,
            }
        )
        print(rows[-1], flush=True)
    hot = hot_path(a.min_seconds, a.hot_fields)
    print(hot, flush=True)
    gemm_after = gemm_flops(a.gemm_size, a.min_seconds)
    gemm = max(gemm_before, gemm_after)
    for r in rows:
        r["roofline_instances_per_s"] = r["fields"] / (r["matmul_flops_per_decode"] / gemm)
        r["roofline_fraction"] = r["batched_gflops"] * 1e9 / gemm
        # a tighter bound that also charges every sine at the measured torch.sin rate
        bound_seconds = r["matmul_flops_per_decode"] / gemm + r["sines_per_decode"] / sines_per_s
        r["matmul_plus_sine_bound_instances_per_s"] = r["fields"] / bound_seconds
        r["matmul_plus_sine_bound_fraction"] = bound_seconds / r["batched_cpu_seconds"]
    out = {
        "benchmark": "decode",
        "threads": a.threads,
        "device": str(DEVICE),
        "device_name": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else None,
        "timing": "wall seconds, device synchronised" if DEVICE.type == "cuda" else "CPU seconds of the process",
        "gemm": {"size": a.gemm_size, "gflops_before": gemm_before / 1e9, "gflops_after": gemm_after / 1e9},
        "sines_per_second": sines_per_s,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_avg": os.getloadavg(),
        },
        "rows": rows,
        "hot_path": hot,
    }
    path = Path(a.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
