"""Evaluation throughput: the same evaluation jobs run 1 vs 2 Ray tasks at a time, in one run.

The jobs are real ddx evaluations (:func:`orchestrator.evaluation.tasks.run_evaluations`, the
code path a sweep uses): ConvNet-D3 students trained on one random-real CIFAR-10 pixel
set (IPC 10, 32 px) and tested on the validation/test splits, one job per seed. On a local
Ray with ``--cpus`` CPUs, ``eval_cpus = cpus`` lets one task run at a time (with that many
torch threads), ``eval_cpus = cpus / 2`` lets two run side by side (with half the threads
each) — the choice a user makes in ``resources.eval_cpus``. Both modes run the identical
job list after a warm-up that starts the worker processes and loads the data, alternating
(A, B, A, B …) so that drift in the machine's load hits both; the JSON records every
repetition, the machine and its load average.

    python benchmarks/eval_throughput.py --out benchmarks/results/eval_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import ray
import torch

from methods.datasets import DatasetOptions, cached_dataset
from methods.evaluation.protocol import Protocol
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, payload_bytes, synthetic_payload
from orchestrator.evaluation.jobs import EvalJob
from orchestrator.evaluation.tasks import TaskResources, evaluate_remote
from orchestrator.provenance import versions


def make_payload(dataset: dict[str, Any], ipc: int) -> bytes:
    """A random-real pixel set: ``ipc`` seeded real training images per class."""
    data = cached_dataset(DatasetOptions(**dataset))
    shape = SetShape(data.num_classes, ipc, data.channels, data.resolution)
    param = build_parameterization(ParamConfig("pixels", shape))
    g = torch.Generator().manual_seed(0)
    param.init_from_real(torch.cat([data.sample_class(c, ipc, g) for c in range(data.num_classes)]))
    return payload_bytes(synthetic_payload(param))  # what evaluation tasks receive: the saved file


def run_batch(payload_ref: Any, jobs: list[EvalJob], dataset: dict, settings: dict, cpus: float) -> dict[str, Any]:
    """Run ``jobs``, one evaluation task each (one student: no seeds batched), with ``cpus`` CPUs
    per task; wall time and per-job results."""
    resources = TaskResources(cpus, 0.0, 0)
    options = DatasetOptions(**dataset)
    start = time.perf_counter()
    tasks = [
        evaluate_remote.options(**resources.options()).remote(
            payload_ref, [job], options, Protocol.of(settings), resources.threads, False
        )
        for job in jobs
    ]
    results: list[dict[str, Any]] = [row for task in ray.get(tasks) for row in task]
    wall = time.perf_counter() - start
    failed = [r["error"] for r in results if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"evaluation failed: {failed[0]}")
    return {
        "wall_seconds": wall,
        "evaluations": len(results),
        "evaluations_per_minute": 60.0 * len(results) / wall,
        "mean_task_seconds": statistics.fmean(r["eval_seconds"] for r in results),
        "test_acc_mean": statistics.fmean(r["test_acc"] for r in results),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CIFAR10_ROOT", "/work/cache/cifar10"))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=6, help="evaluations per batch (seeds 0…jobs−1)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2, help="repetitions of each mode (alternating)")
    ap.add_argument("--out", default="benchmarks/results/eval_throughput.json")
    args = ap.parse_args()

    dataset = {
        "name": "cifar10",
        "root": args.root,
        "train_per_class": 200,
        "test_per_class": 50,
        "val_per_class": 10,
    }
    settings = {"epochs": args.epochs, "batch_size": 256, "check_every": 10}
    arch, ipc = "convnet_d3", 10
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    payload_ref = ray.put(make_payload(dataset, ipc))
    jobs = [EvalJob(arch, 32, seed, "hard") for seed in range(args.jobs)]
    modes = {"1_parallel_task": float(args.cpus), "2_parallel_tasks": args.cpus / 2}

    # warm-up: start two worker processes and load the dataset in each (not timed)
    warm = {**settings, "epochs": 1}
    run_batch(payload_ref, [EvalJob(arch, 32, s, "hard") for s in range(2)], dataset, warm, args.cpus / 2)

    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for rep in range(args.repeats):
        for mode, cpus in modes.items():
            r = run_batch(payload_ref, jobs, dataset, settings, cpus)
            r["repeat"] = rep
            runs[mode].append(r)
            print(
                f"{mode} rep {rep}: {r['wall_seconds']:.1f} s, {r['evaluations_per_minute']:.2f} evals/min", flush=True
            )
    load_after = os.getloadavg()
    ray.shutdown()

    summary = {}
    for mode, cpus in modes.items():
        walls = [r["wall_seconds"] for r in runs[mode]]
        total = sum(r["evaluations"] for r in runs[mode])
        summary[mode] = {
            "eval_cpus": cpus,
            "torch_threads_per_task": max(1, int(cpus)),
            "evaluations_per_minute": 60.0 * total / sum(walls),
            "wall_seconds_per_batch": walls,
            "runs": runs[mode],
        }
    one, two = summary["1_parallel_task"], summary["2_parallel_tasks"]
    result = {
        "benchmark": "evaluation throughput, 1 vs 2 concurrent Ray evaluation tasks, same jobs",
        "work": {
            "jobs_per_batch": args.jobs,
            "arch": arch,
            "dataset": dataset,
            "ipc": ipc,
            "resolution": 32,
            "label_mode": "hard",
            "settings": settings,
            "synthetic_set": "random real CIFAR-10 images (seed 0)",
        },
        "results": summary,
        "ratio_2_over_1": two["evaluations_per_minute"] / one["evaluations_per_minute"],
        "machine": {
            "cpu_count": os.cpu_count(),
            "ray_cpus": args.cpus,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "note": "shared machine: other processes ran during the benchmark (see load averages)",
        },
        "versions": versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"1 task: {one['evaluations_per_minute']:.2f} evals/min; 2 tasks: {two['evaluations_per_minute']:.2f} "
        f"evals/min; ratio {result['ratio_2_over_1']:.2f} → {out}"
    )


if __name__ == "__main__":
    main()
