"""Wall time of ``ddx validate`` on every shipped sweep file, as whole processes (hyperfine-style).

Each file is validated ``--repeats`` times after one warm-up run (page cache, .pyc), and in the
same run ``python -c pass`` is timed as the floor (interpreter start-up on this machine, which
is shared and noisy: compare each median with the floor's). The shipped sweeps point their
``dataset.root`` at ``../data/cifar10``; they are copied next to a ``data/cifar10`` of empty
``train/`` and ``test/`` class folders (the layout the validator checks) so every one validates
(exit 0 is checked) without the data.

``--compare DIR`` also times another checkout's code (e.g. the commit before a change, exported
with ``git archive``) on the same files in the same run, interleaved with this one, so both see
the same load.

    python benchmarks/validate_time.py [--repeats 7] [--compare DIR [--compare-commit SHA]]

Writes ``benchmarks/results/validate_time.json``: per file median/min/max seconds, the
baseline's, and the machine's load average at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "validate_time.json"
sys.path.insert(0, str(REPO))

from tests.helpers import class_folders  # noqa: E402  (the checkout, on the path above)


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return took, proc.returncode


def _stats(times: list[float]) -> dict[str, float | int]:
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "runs": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", type=Path, default=None, help="another checkout to time on the same files")
    parser.add_argument("--compare-commit", default=None, help="the commit --compare holds (not a git checkout)")
    args = parser.parse_args()
    if args.repeats < 5:
        raise SystemExit("--repeats must be ≥ 5")

    work = Path(tempfile.mkdtemp(prefix="ddx-validate-time-"))
    try:
        class_folders(work / "data" / "cifar10")  # the layout dataset.root must have (no images)
        sweeps = work / "sweeps"
        sweeps.mkdir()
        files = sorted((REPO / "sweeps").glob("*.yaml"))
        for f in files:
            shutil.copy(f, sweeps / f.name)
        codes = {"this": REPO, **({"compare": args.compare.resolve()} if args.compare else {})}
        envs = {k: {**os.environ, "PYTHONPATH": str(v), "COLUMNS": "200"} for k, v in codes.items()}
        # the ddx entry point: `python -m orchestrator` runs the same `orchestrator.cli.main:app` as the script
        ddx = [sys.executable, "-m", "orchestrator", "validate"]
        baseline = [sys.executable, "-c", "pass"]
        load_start = os.getloadavg()
        times: dict[str, dict[str, list[float]]] = {k: {f.name: [] for f in files} for k in codes}
        floor: list[float] = []
        for f in files:  # warm-up: one run of each
            for k in codes:
                _run([*ddx, f.name], sweeps, envs[k])
        _run(baseline, sweeps, envs["this"])
        for _ in range(args.repeats):
            floor.append(_run(baseline, sweeps, envs["this"])[0])
            for f in files:
                for k in codes:  # interleaved, so both codes see the same load
                    times[k][f.name].append(_run([*ddx, f.name], sweeps, envs[k])[0])
        load_end = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "command": "python -m orchestrator validate sweeps/<file> (the ddx entry point), whole process",
        "repeats": args.repeats,
        "baseline_python_c_pass": _stats(floor),
        "files": {name: _stats(t) for name, t in times["this"].items()},
        "median_of_medians_s": round(statistics.median(statistics.median(t) for t in times["this"].values()), 4),
        "max_median_s": round(max(statistics.median(t) for t in times["this"].values()), 4),
        "target_s": 1.5,
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    if args.compare:
        commit = subprocess.run(["git", "-C", str(args.compare), "rev-parse", "HEAD"], capture_output=True, text=True)
        result["compare"] = {
            "code": str(args.compare),
            "commit": commit.stdout.strip() or args.compare_commit,
            "files": {name: _stats(t) for name, t in times["compare"].items()},
            "median_of_medians_s": round(statistics.median(statistics.median(t) for t in times["compare"].values()), 4),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
