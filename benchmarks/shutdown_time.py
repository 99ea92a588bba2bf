"""How long an embedded Ray's shutdown takes, with and without killing its autoscaler monitor first.

Each round starts ``ray.init(address="local")`` (no dashboard, one CPU) in a fresh process twice:
once stopped with a plain ``ray.shutdown()``, once with ddx's
``orchestrator.cluster.runtime.stop_autoscaler_monitor()`` first (the monitor found among the
process's children by its command line, then killed). The two ways alternate, so drift in the
machine's speed hits both alike; each figure is the median over the rounds.

    python benchmarks/shutdown_time.py --rounds 5 --out benchmarks/results/shutdown_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ONE_RUN = """
import json, sys, time
import ray
from orchestrator.cluster import runtime
t0 = time.perf_counter()
ray.init(address="local", include_dashboard=False, num_cpus=1, log_to_driver=False)
t1 = time.perf_counter()
killed = runtime.stop_autoscaler_monitor() if sys.argv[1] == "kill" else None
ray.shutdown()
t2 = time.perf_counter()
print(json.dumps({"init_s": t1 - t0, "shutdown_s": t2 - t1, "monitor_killed": killed, "ray": ray.__version__}))
"""


def one_run(way: str, cache: str) -> dict:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "DDX_CACHE": cache, "PYTHONPATH": path}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, "-c", ONE_RUN, way], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "shutdown_time.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"plain": [], "kill": []}
    with tempfile.TemporaryDirectory() as cache:
        for r in range(args.rounds):
            for way in ("plain", "kill") if r % 2 == 0 else ("kill", "plain"):
                runs[way].append(one_run(way, cache))
                print(way, runs[way][-1], flush=True)
    summary = {
        way: {
            "shutdown_s_median": round(statistics.median(x["shutdown_s"] for x in got), 3),
            "shutdown_s": [round(x["shutdown_s"], 3) for x in got],
            "init_s_median": round(statistics.median(x["init_s"] for x in got), 3),
        }
        for way, got in runs.items()
    }
    result = {
        "ray": runs["plain"][0]["ray"],
        "rounds": args.rounds,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end",
        "monitor_killed": all(x["monitor_killed"] for x in runs["kill"]),
        **summary,
        "saved_s": round(summary["plain"]["shutdown_s_median"] - summary["kill"]["shutdown_s_median"], 3),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
