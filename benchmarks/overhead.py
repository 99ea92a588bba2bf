"""Orchestration overhead: the same distill + evaluate work run directly in Python and through
``ddx sweep`` (embedded local Ray: Tune trials, distillation tasks, evaluation tasks, Parquet).

Both paths call the same functions (``methods.distill.pipeline.run_distillation`` and
``methods.evaluation.student.train_student``) with the same seeds and thread counts, one piece of work
at a time (the sweep's distillation and evaluation tasks reserve both CPUs). The ``ddx`` time
is the whole command: CLI start, Ray start, the sweep, Parquet, shutdown.

Two numbers come out of one run:

* ``ratio`` = ddx / direct wall time for the toy sweep (``--trials`` trials), the direct loop
  timed in-process with torch and the methods already imported (the definition of every
  earlier run of this benchmark);
* ``fixed_cost_per_trial_s``: what each extra trial costs beyond its work, from the slope
  between a 1-trial and a ``--trials``-trial sweep of identical per-trial work:
  ((ddx_K − ddx_1) − (direct_K − direct_1)) / (K − 1). What is left of ddx_1 − direct_1 is the
  per-invocation start-up (``startup_s``: CLI import, Ray start and stop).

Every ddx run is timed right next to the runs it is compared with, and each figure is the
median over the rounds of that round's own figure (``ratio``: the median of the per-round
ratios): this machine's speed drifts by ±20 % within minutes, which a ratio of two medians
taken minutes apart would carry in full. ``ratio_of_medians`` (the statistic of the runs
before this one) is kept alongside.

``work_seconds`` compares the work alone: the ``--trials`` sweep's distillations and
evaluations as its rows time them (``distill_seconds``, ``eval_seconds``) against the direct
loop's wall time: whether the same computation runs as fast inside a Ray task as in a plain
process, apart from everything around it.

``whole_process`` times the direct loop as a command too (``python`` start, torch and the
methods imported, data, work — a plain loop script, importing no Ray): ddx against what a
researcher's own script costs from the shell, both whole commands.

``ray_floor`` times what any tool that runs this work in Ray workers pays before the work, as a
whole process of its own (``--ray-floor``): Python, Ray's start on these CPUs with ddx's
settings, one worker that imports what ddx's tasks import and loads the dataset (ddx's own
warm-up task, in the trials' runtime environment), then Ray's stop and the same prompt exit as
``ddx``. No CLI, no spec, no Tune, no Parquet. ``floor_ratio`` = (direct_k + floor) / direct_k is
the ratio a tool adding nothing but that floor would get on this work; ``startup_over_floor_s``
= startup_s − floor: what ddx adds on top of it.

``ddx_up`` repeats the ddx runs on the local Ray that ``ddx up --cpus 2`` keeps (started once
before them; ``ddx sweep`` without ``--address`` uses it), each next to a direct run of its
own: what a researcher who runs sweep after sweep on one machine pays. The top-level numbers
are the embedded default's. Every ddx run has a ``$DDX_CACHE`` of the benchmark's own, so a
``ddx up`` of the user's is neither used nor touched.

    python benchmarks/overhead.py --out benchmarks/results/overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_spec(storage: Path, name: str, trials: int, iterations: int, epochs: int) -> dict:
    """``trials`` DM trials of identical work (distinct keys via ``num_samples`` repeats)."""
    return {
        "name": name,
        "storage": str(storage),
        "dataset": {"name": "digits", "resolution": 8},
        "method": {
            "objective": "dm",
            "distill_arch": "convnet_d3",
            "ipc": 2,
            "iterations": iterations,
            "batch_real": 64,
            "checkpoint_every": 0,
        },
        "search": {},
        "num_samples": trials,
        "resources": {"distill_workers": 1, "cpus_per_worker": 2, "eval_cpus": 2, "max_concurrent_trials": 1},
        "evaluation": {"archs": ["convnet_d3", "resnet18"], "seeds": 2, "epochs": epochs},
    }


def direct_plan(spec: dict) -> dict:
    """What the direct loop needs, as JSON: dataset options, each trial's hyper-parameters and seed,
    and each evaluation's student settings (what the sweep's tasks use; computed here, so that
    the loop itself imports no Ray)."""
    from orchestrator.spec.load import parse_spec
    from orchestrator.spec.trials import trial_config

    parsed = parse_spec(spec)
    evals = [
        {
            "arch": arch,
            "seed": parsed.seed + seed,
            "settings": parsed.evaluation.protocol()
            .settings("hard", parsed.dataset.name, epochs=parsed.evaluation.arch_epochs.get(arch))
            .to_dict(),
        }
        for arch in parsed.evaluation.archs
        for seed in range(parsed.evaluation.seeds)
    ]
    trials = [trial_config(parsed, {"repeat": r}) for r in range(parsed.num_samples)]
    return {"dataset": parsed.dataset_options(), "trials": trials, "evals": evals}


def direct_work(plan: dict) -> None:
    """The sweep's work, sequentially in this process (data loading included): torch and the methods only."""
    from methods.context import DistillContext
    from methods.datasets import load_dataset
    from methods.distill.pipeline import run_distillation
    from methods.evaluation.protocol import settings_from_dict
    from methods.evaluation.student import train_student

    data = load_dataset(plan["dataset"])
    for trial in plan["trials"]:
        param, _, _ = run_distillation(trial, data, DistillContext(seed=trial.seed))
        images = param.decode().detach()
        for ev in plan["evals"]:
            train_student(images, param.labels, data, ev["arch"], ev["seed"], settings_from_dict(ev["settings"]))


def run_direct(spec: dict, threads: int) -> float:
    """Wall time of :func:`direct_work` in this process, after its imports: the methods, and what
    the methods import only when first used (``torch._dynamo`` by the first optimizer, torchvision
    by the first ResNet), so the clock holds the same work as in every earlier run."""
    import torch._dynamo
    import torchvision  # noqa: F401

    torch.set_num_threads(threads)
    plan = direct_plan(spec)
    start = time.perf_counter()
    direct_work(plan)
    return time.perf_counter() - start


def plain_loop(plan_file: Path) -> None:
    """:func:`direct_work` as a script of its own (``--plain-loop PLAN``)."""
    torch.set_num_threads(2)
    direct_work(pickle.loads(plan_file.read_bytes()))


def run_plain_loop(spec: dict, workdir: Path) -> float:
    """Wall time of the plain loop as a whole process (``python benchmarks/overhead.py --plain-loop``)."""
    plan_file = workdir / f"{spec['name']}.plan.pickle"  # typed options: pickled, not JSON
    plan_file.write_bytes(pickle.dumps(direct_plan(spec)))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--plain-loop", str(plan_file)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return elapsed


def ray_floor(dataset_file: Path) -> None:
    """The floor as a script of its own (``--ray-floor DATASET``): an embedded Ray as ``ddx sweep``
    starts it, ddx's warm-up task on it (reserving both CPUs, in the trials' runtime environment),
    Ray's stop, the prompt exit of :func:`orchestrator.cli.main.run`."""
    import ray

    from orchestrator.cluster import runtime
    from orchestrator.sweep import warm_up

    runtime.connect(None)
    ray.get(warm_up.start(pickle.loads(dataset_file.read_bytes()), 2, warm_up.trial_task_env() or {}))
    runtime.shutdown()
    sys.stdout.flush()
    os._exit(0)


def run_ray_floor(spec: dict, workdir: Path) -> float:
    """Wall time of :func:`ray_floor` as a whole process (the benchmark's own ``$DDX_CACHE``)."""
    from orchestrator.spec.load import parse_spec

    dataset_file = workdir / "floor_dataset.pickle"
    dataset_file.write_bytes(pickle.dumps(parse_spec(spec).dataset_options()))
    env = {**os.environ, "DDX_CACHE": str(workdir / "cache")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--ray-floor", str(dataset_file)], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return elapsed


def ddx_command(args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """``ddx ARGS`` in ``workdir``, with the benchmark's own ``$DDX_CACHE`` (``workdir/cache``)."""
    from tests.helpers import ddx

    return ddx(*args, cwd=workdir, timeout=1800, env={"DDX_CACHE": str(workdir / "cache")})


def run_ddx(spec: dict, workdir: Path, where: str = "embedded local Ray") -> float:
    """Wall time of ``ddx sweep --fresh`` as a whole process; ``where`` must be the Ray it says it
    ran on (the embedded one, or the one ``ddx up`` keeps)."""
    path = workdir / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    proc = ddx_command(["sweep", str(path), "--fresh"], workdir)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or f"running on {where}" not in proc.stdout:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return elapsed


def ddx_work_seconds(spec: dict) -> float:
    """The work inside the last ``ddx sweep`` of ``spec``, as its rows time it: each trial's
    distillation (``distill_seconds``, once per trial) plus every evaluation (``eval_seconds``)."""
    from orchestrator.storage.results import read_results

    rows = read_results(str(Path(spec["storage"]) / spec["name"]))
    return float(rows.groupby("trial_id")["distill_seconds"].first().sum() + rows["eval_seconds"].sum())


def paired(times: dict[str, list[float]], k: int, one: str, many: str, base: str) -> dict[str, float]:
    """Ratio, fixed cost per extra trial and per-invocation start-up of the ``one``/``many`` ddx runs
    against the ``base`` runs of the same rounds (``direct``: in-process loop; ``plain``: the loop
    as a whole process), each the median over rounds of that round's figure."""
    rounds = list(zip(times[f"{base}_1"], times[one], times[f"{base}_k"], times[many], strict=True))
    fixed = [((m - o) - (bk - b1)) / (k - 1) for b1, o, bk, m in rounds]
    return {
        "fixed_cost_per_trial_s": statistics.median(fixed),
        "ratio": statistics.median(m / bk for _, _, bk, m in rounds),
        "startup_s": statistics.median(o - b1 - f for (b1, o, _, _), f in zip(rounds, fixed, strict=True)),
        "ratio_of_medians": statistics.median(times[many]) / statistics.median(times[f"{base}_k"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2, help="rounds (each figure is the median over rounds)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "overhead.json")
    ap.add_argument("--no-up", action="store_true", help="skip the runs on the local Ray of `ddx up`")
    ap.add_argument("--plain-loop", type=Path, help=argparse.SUPPRESS)  # internal: run the plain loop of a plan
    ap.add_argument("--ray-floor", type=Path, help=argparse.SUPPRESS)  # internal: the floor of a dataset
    args = ap.parse_args()
    if args.plain_loop is not None:
        plain_loop(args.plain_loop)
        return
    if args.ray_floor is not None:
        ray_floor(args.ray_floor)
        return
    keys = ("direct_1", "direct_k", "plain_1", "plain_k", "ddx_1", "ddx_k", "ddx_k_work", "floor")
    times: dict[str, list[float]] = {k: [] for k in keys}
    with tempfile.TemporaryDirectory(prefix="ddx-overhead-") as tmp:
        workdir = Path(tmp)
        one = make_spec(workdir / "store", "overhead_1", 1, args.iterations, args.epochs)
        many = make_spec(workdir / "store", "overhead_k", args.trials, args.iterations, args.epochs)
        for _ in range(args.repeats):  # each ddx run between the baselines it is compared with
            times["direct_1"].append(run_direct(one, threads=2))
            times["ddx_1"].append(run_ddx(one, workdir))
            times["plain_1"].append(run_plain_loop(one, workdir))
            times["direct_k"].append(run_direct(many, threads=2))
            times["ddx_k"].append(run_ddx(many, workdir))
            times["ddx_k_work"].append(ddx_work_seconds(many))
            times["plain_k"].append(run_plain_loop(many, workdir))
            times["floor"].append(run_ray_floor(one, workdir))
        if not args.no_up:
            up = ddx_command(["up", "--cpus", "2"], workdir)
            if up.returncode != 0:
                raise RuntimeError(up.stdout + up.stderr)
            try:
                for key in ("wdirect_1", "up_1", "wdirect_k", "up_k"):
                    times[key] = []
                for _ in range(args.repeats):
                    times["wdirect_1"].append(run_direct(one, threads=2))
                    times["up_1"].append(run_ddx(one, workdir, where="the local Ray of `ddx up`"))
                    times["wdirect_k"].append(run_direct(many, threads=2))
                    times["up_k"].append(run_ddx(many, workdir, where="the local Ray of `ddx up`"))
            finally:
                ddx_command(["down"], workdir)
    med = {k: statistics.median(v) for k, v in times.items()}
    k = args.trials
    headline = paired(times, k, "ddx_1", "ddx_k", base="direct")
    result = {
        "benchmark": "overhead",
        **headline,
        "ray_floor": {
            "floor_s": med["floor"],
            "floor_ratio": (med["direct_k"] + med["floor"]) / med["direct_k"],
            "startup_over_floor_s": headline["startup_s"] - med["floor"],
        },
        "work_seconds": {
            "direct_k": med["direct_k"],
            "ddx_k": med["ddx_k_work"],
            "ratio": statistics.median(w / d for w, d in zip(times["ddx_k_work"], times["direct_k"], strict=True)),
        },
        "whole_process": paired(times, k, "ddx_1", "ddx_k", base="plain"),
        **({} if args.no_up else {"ddx_up": paired(times, k, "up_1", "up_k", base="wdirect")}),
        "work": {
            "dataset": "digits",
            "trials": k,
            "dm_iterations": args.iterations,
            "evaluations_per_trial": 4,
            "eval_epochs": args.epochs,
            "archs": ["convnet_d3", "resnet18"],
        },
        "median_seconds": med,
        "all_seconds": times,
        "notes": "direct: one process, 2 torch threads, sequential, timed after its imports; plain: the same loop "
        "as a whole `python` process (imports torch and the methods, no Ray); ddx: `ddx sweep --fresh` as a whole "
        "process on an embedded local Ray (2 CPUs), one trial at a time, distillation task and evaluation tasks "
        "reserving both CPUs (the same sequential work); fixed cost per trial from the 1-trial vs K-trial slope. "
        "floor: python + embedded Ray start + ddx's warm-up task (imports, dataset) + stop, as a whole process. "
        "Each round runs direct_1, ddx_1, plain_1, direct_k, ddx_k, plain_k, floor; every figure is the median over "
        "rounds of the round's own figure. ddx_up: the same ddx runs on the local Ray of `ddx up --cpus 2` (started "
        "once before them, used by `ddx sweep` without --address), each after a direct run (wdirect_*) of its own.",
        "machine": {
            "cpus": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_at_end": list(os.getloadavg()),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
