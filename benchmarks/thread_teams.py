"""Why every ddx task computes on one thread per process (:mod:`orchestrator.cluster.compute_thread`).

A pooled Ray worker runs evaluation tasks on its main thread; the streaming distillation
used to run its body on a helper thread beside the generator. This times the same 50 DM
steps on digits (2 torch threads) in a fresh process after a little tensor work on the main
thread, three ways:

* ``main``: the steps on the main thread too (one OpenMP team);
* ``second_thread``: the steps on a new thread (the old layout: two teams in one process);
* ``compute_thread``: the earlier work and the steps both on the compute thread (the new layout).

Runs alternate (``--repeats`` of each); medians and ``ratio`` = second_thread / compute_thread.

    python benchmarks/thread_teams.py --out benchmarks/results/thread_teams.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = ("main", "second_thread", "compute_thread")


def one_run(mode: str, iterations: int) -> float:
    """Seconds of ``iterations`` DM steps, laid out as ``mode`` says (in this fresh process)."""
    import torch

    from methods.context import DistillContext
    from methods.datasets import DatasetOptions, load_dataset
    from methods.distill.pipeline import run_distillation
    from methods.distill.trial import TrialConfig
    from orchestrator.cluster.compute_thread import on_compute_thread

    hp = {"objective": "dm", "distill_arch": "convnet_d3", "ipc": 2, "iterations": iterations, "batch_real": 64}

    def earlier_work() -> object:  # what an evaluation task did on this thread before
        torch.set_num_threads(2)
        data = load_dataset(DatasetOptions(name="digits", resolution=8))
        x = torch.randn(256, 256)
        (x @ x).sum()
        return data

    def steps(data: object) -> float:
        torch.set_num_threads(2)
        start = time.perf_counter()
        run_distillation(
            TrialConfig.build(**hp, dataset=DatasetOptions(name="digits", resolution=8)), data, DistillContext(seed=0)
        )
        return time.perf_counter() - start

    if mode == "compute_thread":
        return on_compute_thread(lambda: steps(earlier_work()))()
    data = earlier_work()
    if mode == "main":
        return steps(data)
    out: list[float] = []
    t = threading.Thread(target=lambda: out.append(steps(data)))
    t.start()
    t.join()
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "thread_teams.json")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # internal: one run in this process
    args = ap.parse_args()
    if args.mode:
        print(one_run(args.mode, args.iterations))
        return
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            cmd = [sys.executable, __file__, "--mode", mode, "--iterations", str(args.iterations)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            times[mode].append(float(proc.stdout.strip().splitlines()[-1]))
    med = {m: statistics.median(v) for m, v in times.items()}
    result = {
        "benchmark": "thread_teams",
        "ratio": med["second_thread"] / med["compute_thread"],
        "median_seconds": med,
        "all_seconds": times,
        "work": {"objective": "dm", "dataset": "digits", "iterations": args.iterations, "torch_threads": 2},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
