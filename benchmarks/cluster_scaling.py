"""Cluster scaling: the same evaluation-bound sweep on one 1-CPU node vs two 1-CPU nodes.

Both clusters are real Ray clusters on this machine, built as in the cluster tests
(:mod:`tests.cluster`): a head node (1 CPU, the ``ddx_driver`` resource) alone, or the head
plus a worker node (1 CPU) in its own mount namespace with its own cache (no shared disk).
Storage is a local S3 server (moto) for both. The sweep is launched as a user would (``ddx
sweep SPEC --address HEAD --storage s3://…``) and timed from start to exit; it is
evaluation-bound: a tiny DM distillation (digits) followed by many evaluation tasks of one
CPU each, which the second node can share. Runs alternate (one node, two nodes, …) so that a
change in the machine's load hits both. Writes the wall times, their ratio (``speedup``), the
evaluation phase of each run and the machine's load.

    python benchmarks/cluster_scaling.py --out benchmarks/results/cluster_scaling.json

Needs root (``unshare``/``mount``) like the cluster tests.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.storage.locations import join, read_bytes  # noqa: E402
from tests.cluster import BIN, CLUSTER_ENV, LocalCluster, S3Server, isolation_available  # noqa: E402


def make_spec(name: str, seeds: int, epochs: int, ipc: int, iterations: int) -> dict:
    return {
        "name": name,
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"objective": "dm", "ipc": ipc, "iterations": iterations, "batch_real": 32},
        "resources": {"distill_workers": 1, "cpus_per_worker": 1, "eval_cpus": 1, "max_concurrent_trials": 1},
        "evaluation": {"archs": ["convnet_d3"], "seeds": seeds, "epochs": epochs, "batch_size": 64},
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


PROBE = """
import time, torch
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1))
x = torch.randn(64, 1, 8, 8)
start = time.perf_counter()
for _ in range({steps}):
    net(x).sum().backward()
print(time.perf_counter() - start)
"""


def parallel_ceiling(steps: int = 300) -> dict:
    """What this machine gives two single-threaded processes right now: the same fixed piece of
    student-like work (conv forward + backward) run alone, then twice at once. ``ceiling`` =
    2 × alone / together (2.0 on two idle cores; less when other jobs hold the CPUs)."""
    import subprocess

    code = PROBE.format(steps=steps)

    def run(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL) for _ in range(n)]
        for p in procs:
            p.wait()
        return time.perf_counter() - start

    alone, together = run(1), run(2)
    return {"alone_s": round(alone, 2), "two_at_once_s": round(together, 2), "ceiling": round(2 * alone / together, 3)}


def run_once(nodes: int, spec: dict, storage: str, work: Path) -> dict:
    """Start a cluster of ``nodes`` 1-CPU nodes, run the sweep, stop the cluster; timings."""
    import pandas as pd

    cluster = LocalCluster()
    try:
        cluster.start_head(cpus=1, resources={"ddx_driver": 1000})
        for i in range(1, nodes):
            cluster.add_worker(f"ddx-w{i}")
        path = work / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        args = [str(BIN / "ddx"), "sweep", str(path), "--address", cluster.address, "--storage", storage]
        before = load()
        start = time.perf_counter()
        rc, out = cluster.run(args, work / f"{spec['name']}.log", timeout=3600)
        wall = time.perf_counter() - start
        if rc != 0:
            raise RuntimeError(f"sweep failed (rc {rc}):\n{out[-4000:]}")
        rows = pd.read_parquet(io.BytesIO(read_bytes(join(storage, spec["name"], "results.parquet"))))
    finally:
        cluster.shutdown()
    ends = pd.to_datetime(rows["created_at"])
    starts = ends - pd.to_timedelta(rows["eval_seconds"], unit="s")
    return {
        "nodes": nodes,
        "wall_s": round(wall, 2),
        "evaluation_phase_s": round((ends.max() - starts.min()).total_seconds(), 2),
        "distill_s": round(float(rows["distill_seconds"].iloc[0]), 2),
        "eval_task_s_mean": round(float(rows["eval_seconds"].mean()), 2),
        "rows_per_host": {str(k): int(v) for k, v in rows["hostname"].value_counts().items()},
        "eval_task_s_mean_per_host": {
            str(k): round(float(v), 2) for k, v in rows.groupby("hostname")["eval_seconds"].mean().items()
        },
        "rows_ok": int((rows["status"] == "ok").sum()),
        "load_before": before,
        "load_after": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cluster_scaling.json")
    parser.add_argument("--seeds", type=int, default=16, help="evaluation tasks (one per seed)")
    parser.add_argument("--epochs", type=int, default=600, help="student epochs per evaluation")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=5, help="DM iterations (the tiny distillation)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each layout (alternating; medians reported)")
    args = parser.parse_args()
    reason = isolation_available()
    if reason:
        sys.exit(f"cannot build the cluster here: {reason}")
    os.environ.update(CLUSTER_ENV)  # no token auth (state API), dummy S3 credentials
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the clusters on `kill`

    work = Path(tempfile_dir())
    server = S3Server(work / "s3.log")
    storage = join(server.bucket("bench"), "ddx")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    try:
        for r in range(args.repeats):
            for nodes in (1, 2) if r % 2 == 0 else (2, 1):
                spec = make_spec(f"scale_n{nodes}_r{r}", args.seeds, args.epochs, args.ipc, args.iterations)
                ceiling = parallel_ceiling()
                result = run_once(nodes, spec, storage, work)
                result["machine_parallel_ceiling"] = ceiling
                print(json.dumps(result), flush=True)
                runs[nodes].append(result)
    finally:
        server.stop()
    one = statistics.median(r["wall_s"] for r in runs[1])
    two = statistics.median(r["wall_s"] for r in runs[2])
    eval_one = statistics.median(r["evaluation_phase_s"] for r in runs[1])
    eval_two = statistics.median(r["evaluation_phase_s"] for r in runs[2])
    loads = [x for rs in runs.values() for r in rs for x in (r["load_before"][0], r["load_after"][0])]
    ceilings = [r["machine_parallel_ceiling"]["ceiling"] for rs in runs.values() for r in rs]
    out = {
        "benchmark": "the same evaluation-bound ddx sweep on one 1-CPU Ray node vs two 1-CPU nodes (no shared disk)",
        "speedup": round(one / two, 3),
        "wall_one_node_s": one,
        "wall_two_nodes_s": two,
        "evaluation_phase_speedup": round(eval_one / eval_two, 3),
        "evaluation_phase_one_node_s": eval_one,
        "evaluation_phase_two_nodes_s": eval_two,
        "settings": {
            "sweep": make_spec("scale", args.seeds, args.epochs, args.ipc, args.iterations),
            "repeats": args.repeats,
            "storage": "moto S3 server on 127.0.0.1",
            "nodes": "ray start --block per node, 1 CPU each; worker in its own mount namespace",
            "timed": "ddx sweep subprocess, start to exit (Ray connect, Tune, distillation, evaluations, Parquet)",
        },
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "max_load_1min_seen": max(loads),
            "parallel_ceiling_median": statistics.median(ceilings),
            "parallel_ceiling_note": "2 x (time of a fixed single-threaded job alone) / (time of two at once), "
            "measured before each run: the most any 2-process layout could gain on this machine then",
            "note": "a shared 2-core machine: other jobs' load takes CPU time from both layouts",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("speedup", "wall_one_node_s", "wall_two_nodes_s")}))


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="ddx-scaling-")


if __name__ == "__main__":
    main()
