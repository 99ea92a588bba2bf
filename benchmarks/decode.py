"""Neural-field decoding throughput: batched (one ``baddbmm`` per layer) vs a per-field loop.

For each resolution (32², 128², 256²) a set of SIREN fields with DDiF's Table 8 configuration
for that size is decoded (no grad) on the full coordinate grid:

* ``batched``: :func:`methods.parameterizations.siren.decode_fields` — all fields at once;
* ``loop``: the same kernel called once per field (what a per-instance implementation does).

Reported: instances decoded per second for both, their ratio, the matrix-product FLOPs of one
decode, and the batched rate against the machine's matmul roofline measured in the same run
(a large square fp32 GEMM on the same thread count): ``roofline_fraction`` =
(FLOPs per decode / batched seconds) / GEMM FLOP/s. Sines are not counted as FLOPs, so the
fraction is a lower bound of how close the decode is to matmul speed.

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


def timeit(fn: Callable[[], object], min_seconds: float, min_reps: int = 2) -> float:
    """Median seconds per call over at least ``min_reps`` calls and ``min_seconds`` in total."""
    fn()  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def gemm_flops(size: int, min_seconds: float) -> float:
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    sec = timeit(lambda: torch.mm(a, b), min_seconds, min_reps=3)
    return 2.0 * size**3 / sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--gemm-size", type=int, default=1024)
    ap.add_argument("--resolutions", type=int, nargs="+", default=sorted(CASES))
    ap.add_argument("--out", default=str(ROOT / "results" / "decode.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gemm_before = gemm_flops(a.gemm_size, a.min_seconds)
    rows = []
    for res in a.resolutions:
        width, depth, n_fields = CASES[res]
        layers = init_siren(n_fields, 2, width, depth, 3, W0, torch.Generator().manual_seed(0))
        size = [res, res]
        with torch.no_grad():
            batched = timeit(lambda layers=layers, size=size: decode_fields(layers, size, W0_FIRST, W0), a.min_seconds)

            def loop(layers=layers, size=size, n=n_fields) -> list[torch.Tensor]:
                return [
                    decode_fields([(w[j : j + 1], b[j : j + 1]) for w, b in layers], size, W0_FIRST, W0)
                    for j in range(n)
                ]

            looped = timeit(loop, a.min_seconds)
            diff = float((torch.cat(loop()) - decode_fields(layers, size, W0_FIRST, W0)).abs().max())
        flops = decode_flops(n_fields, res * res, 2, width, depth, 3)
        rows.append(
            {
                "resolution": res,
                "nf_width": width,
                "nf_depth": depth,
                "fields": n_fields,
                "params_per_field": sum(o * (i + 1) for o, i in layer_shapes(2, width, depth, 3)),
                "batched_seconds": batched,
                "loop_seconds": looped,
                "batched_instances_per_s": n_fields / batched,
                "loop_instances_per_s": n_fields / looped,
                "batched_over_loop": looped / batched,
                "batched_ms_per_instance": 1000 * batched / n_fields,
                "matmul_flops_per_decode": flops,
                "batched_gflops": flops / batched / 1e9,
                "loop_vs_batched_max_abs_diff": diff,
            }
        )
        print(rows[-1], flush=True)
    gemm_after = gemm_flops(a.gemm_size, a.min_seconds)
    gemm = max(gemm_before, gemm_after)
    for r in rows:
        r["roofline_instances_per_s"] = r["fields"] / (r["matmul_flops_per_decode"] / gemm)
        r["roofline_fraction"] = r["batched_gflops"] * 1e9 / gemm
    out = {
        "benchmark": "decode",
        "threads": a.threads,
        "gemm": {"size": a.gemm_size, "gflops_before": gemm_before / 1e9, "gflops_after": gemm_after / 1e9},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_avg": os.getloadavg(),
        },
        "rows": rows,
    }
    path = Path(a.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
