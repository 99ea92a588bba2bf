"""What the warm-up saves: a one-trial ``ddx sweep`` with and without the record of the trials' runtime
environment (``$DDX_CACHE/trial-env.json``, :mod:`orchestrator.sweep.warm_up`).

``warm``: the record is there (written by an unmeasured first run), so the sweep starts the warm-up as
soon as Ray is up and the trial's first distillation reuses the warmed worker. ``cold``: the record is
deleted before each run (as on a machine's first sweep), so no warm-up starts and the first task starts
a fresh worker. ``--base DIR`` adds a third way: the same sweep run from another checkout (say, the
commit before a change), with a cache of its own, also primed. The ways alternate within each round
(the machine's speed drifts); each figure is the median over the rounds of a whole ``ddx sweep --fresh``.

    python benchmarks/warm_up_reuse.py --rounds 3 --out benchmarks/results/warm_up_reuse.json
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
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.overhead import make_spec  # noqa: E402


def run_sweep(spec_file: Path, repo: Path, cache: Path) -> float:
    """Wall time of ``ddx sweep SPEC --fresh`` (``python -m orchestrator``) run from ``repo``."""
    path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "DDX_CACHE": str(cache), "PYTHONPATH": path, "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", str(spec_file), "--fresh"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "running on embedded local Ray" not in proc.stdout:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--base", type=Path, help="another checkout to time the same sweep from")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "warm_up_reuse.json")
    args = ap.parse_args()
    ways = {"warm": REPO, "cold": REPO, **({"base": args.base.resolve()} if args.base else {})}
    times: dict[str, list[float]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory(prefix="ddx-warm-up-") as tmp:
        work = Path(tmp)
        spec_file = work / "one.yaml"
        spec_file.write_text(yaml.safe_dump(make_spec(work / "store", "one", 1, args.iterations, args.epochs)))
        caches = {w: work / f"cache-{w}" for w in ways}
        for way in ("warm", "base"):
            if way in ways:
                run_sweep(spec_file, ways[way], caches[way])  # primes the record (and the page cache)
        assert (caches["warm"] / "trial-env.json").exists(), "the first sweep recorded no trial environment"
        order = list(ways)
        for r in range(args.rounds):
            for way in order[r % len(order) :] + order[: r % len(order)]:
                if way == "cold":
                    (caches[way] / "trial-env.json").unlink(missing_ok=True)
                times[way].append(run_sweep(spec_file, ways[way], caches[way]))
                print(way, round(times[way][-1], 2), flush=True)
    med = {w: statistics.median(t) for w, t in times.items()}
    result = {
        "benchmark": "warm_up_reuse",
        "median_seconds": med,
        "warm_saves_s": med["cold"] - med["warm"],
        "all_seconds": times,
        "work": {"dataset": "digits", "trials": 1, "dm_iterations": args.iterations, "eval_epochs": args.epochs},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_end": os.getloadavg()},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
