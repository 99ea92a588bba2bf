"""Orchestration overhead: the same distill + evaluate work run directly in Python and
through ``ddx sweep`` (local Ray: Tune trials, Train workers, evaluation tasks, Parquet).

Both paths call the same functions (``methods.pipeline.run_distillation`` and
``methods.evaluate.train_student``) with the same seeds and thread counts. The ``ddx``
time includes starting Ray. Writes JSON with the wall times and the ratio ddx / direct.

    python benchmarks/overhead.py --out benchmarks/results/overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_spec(storage: Path, ipcs: list[int], iterations: int, epochs: int, eval_cpus: int) -> dict:
    return {
        "name": f"overhead_cpu{eval_cpus}",
        "storage": str(storage),
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"objective": "dm", "distill_arch": "convnet_d3", "iterations": iterations, "batch_real": 64},
        "search": {"ipc": {"grid": ipcs}},
        "resources": {"distill_workers": 1, "cpus_per_worker": 2, "eval_cpus": eval_cpus, "max_concurrent_trials": 1},
        "evaluation": {"archs": ["convnet_d3", "resnet18"], "seeds": 2, "epochs": epochs},
    }


def run_direct(spec: dict, threads: int) -> float:
    """The sweep's work, sequentially in this process."""
    from methods.context import DistillContext
    from methods.datasets import DatasetOptions, load_dataset
    from methods.evaluate import train_student
    from methods.pipeline import run_distillation
    from orchestrator.evaluation import student_settings
    from orchestrator.search_space import trial_hyper
    from orchestrator.spec import parse_spec
    from orchestrator.trial import eval_settings

    torch.set_num_threads(threads)
    parsed = parse_spec(spec)
    start = time.perf_counter()
    data = load_dataset(DatasetOptions(**parsed.dataset.model_dump()))
    settings = student_settings(eval_settings(parsed), "hard")  # what the sweep's evaluation tasks use
    for ipc in spec["search"]["ipc"]["grid"]:
        hp = trial_hyper(parsed, {"ipc": ipc, "repeat": 0})
        param, _, _ = run_distillation(hp, data, DistillContext(seed=parsed.seed))
        images = param.decode().detach()
        for arch in parsed.evaluation.archs:
            for seed in range(parsed.evaluation.seeds):
                train_student(images, param.labels, data, arch, parsed.seed + seed, settings)
    return time.perf_counter() - start


def run_ddx(spec: dict, workdir: Path) -> float:
    path = workdir / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", str(path), "--fresh"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ipcs", type=int, nargs="+", default=[1, 2, 5])
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "overhead.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddx-overhead-") as tmp:
        workdir = Path(tmp)
        serial = make_spec(workdir / "store", args.ipcs, args.iterations, args.epochs, eval_cpus=2)
        parallel = make_spec(workdir / "store", args.ipcs, args.iterations, args.epochs, eval_cpus=1)
        direct = run_direct(serial, threads=2)
        ddx_serial = run_ddx(serial, workdir)
        ddx_parallel = run_ddx(parallel, workdir)
    trials = len(args.ipcs)
    evals = trials * 2 * 2
    result = {
        "benchmark": "overhead",
        "work": {
            "dataset": "digits",
            "trials": trials,
            "dm_iterations": args.iterations,
            "evaluations": evals,
            "eval_epochs": args.epochs,
        },
        "direct_seconds": direct,
        "ddx_seconds_one_task_at_a_time": ddx_serial,
        "ddx_seconds_two_parallel_tasks": ddx_parallel,
        "overhead_ratio": ddx_serial / direct,
        # the extra wall time per trial: Ray start-up shared out, Tune's trial actor, the Train run's
        # controller/worker/helper processes, evaluation task processes, Parquet writes
        "extra_seconds_per_trial": (ddx_serial - direct) / trials,
        "parallel_ratio": ddx_parallel / direct,
        "notes": "direct: one process, 2 torch threads; ddx: embedded local Ray on 2 CPUs, Train worker with "
        "2 CPUs, evaluation tasks with 2 CPUs (one at a time) or 1 CPU (two at a time); ddx times "
        "include Ray start-up and Parquet writes.",
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
