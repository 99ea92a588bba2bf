"""Quality check of the foundation: DM vs the random-real baseline on digits (and optionally
CIFAR-10), same evaluation protocol, several seeds.

Reads the hyper-parameters of ``sweeps/quickstart.yaml`` (or ``--spec``) so the numbers are
the quickstart's, evaluates ConvNet-D3 students on each distilled set with ``--seeds``
seeds, and writes mean ± std (sample std) per (objective, IPC) and DM − random.

    python benchmarks/dm_vs_random.py --out benchmarks/results/dm_vs_random_digits.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from methods.context import DistillContext  # noqa: E402
from methods.datasets import load_dataset  # noqa: E402
from methods.distill.pipeline import run_distillation  # noqa: E402
from methods.distill.trial import TrialConfig, option_classes  # noqa: E402
from methods.evaluation.student import train_student  # noqa: E402
from methods.options import field_names  # noqa: E402
from orchestrator.spec.load import load_spec  # noqa: E402
from orchestrator.spec.trials import trial_values  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=REPO / "sweeps" / "quickstart.yaml")
    ap.add_argument("--root", help="dataset root override (for CIFAR-10 specs)")
    ap.add_argument("--ipcs", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--arch", default="convnet_d3")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "dm_vs_random_digits.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    opts = spec.dataset_options()
    if args.root:
        opts = dataclasses.replace(opts, root=args.root)
    data = load_dataset(opts)
    settings = spec.evaluation.protocol().settings("hard", spec.dataset.name)  # what the sweep's students use
    cells = []
    for ipc in args.ipcs:
        for objective in ("random", "dm"):
            # the IPC is this benchmark's, whether the spec sweeps it or fixes it in `method`
            values = {**trial_values(spec, {}), "objective": objective, "ipc": ipc}
            read = {k for c in option_classes(objective, "pixels").values() for k in field_names(c)}
            trial = TrialConfig.build(**{k: v for k, v in values.items() if k in read}, dataset=opts, seed=spec.seed)
            start = time.perf_counter()
            param, _, summary = run_distillation(trial, data, DistillContext(seed=spec.seed))
            images = param.decode().detach()
            accs = [
                train_student(images, param.labels, data, args.arch, spec.seed + s, settings).test_acc
                for s in range(args.seeds)
            ]
            cells.append(
                {
                    "objective": objective,
                    "ipc": ipc,
                    "arch": args.arch,
                    "test_acc": accs,
                    "mean": statistics.mean(accs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "distill_seconds": summary["distill_seconds"],
                    "seconds": time.perf_counter() - start,
                }
            )
            print(json.dumps(cells[-1]), flush=True)
    by = {(c["objective"], c["ipc"]): c for c in cells}
    result = {
        "benchmark": "dm_vs_random",
        "spec": str(args.spec.relative_to(REPO)) if args.spec.is_relative_to(REPO) else str(args.spec),
        "dataset": data.summary(),
        "protocol": "final student's test accuracy; ConvNet students trained on the decoded set; sample std",
        "hyper": {k: v for k, v in spec.method.items()},
        "evaluation": {"epochs": settings.epochs, "augment": settings.augment, "seeds": args.seeds},
        "cells": cells,
        "dm_minus_random": {str(ipc): by[("dm", ipc)]["mean"] - by[("random", ipc)]["mean"] for ipc in args.ipcs},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["dm_minus_random"]))


if __name__ == "__main__":
    main()
