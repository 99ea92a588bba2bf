"""CPU-scale CIFAR-10 experiment: random vs SRe²L vs CFM at IPC=10, plus CFM's loss ablation.

Squeeze → recover → relabel, one protocol for every set:

1. **squeeze**: a teacher (default: BatchNorm ConvNet-D3, width 128 — ``convnet_bn_d3``, the
   CFM reference code's CIFAR teacher) trained on a seeded CIFAR-10 subset, cached in the
   artifact cache under the same description a sweep would use (methods.teacher.squeeze.Teacher);
2. **recover**: ``random`` (real images, no optimisation), ``sre2l`` (Eq. 4; with a BN teacher
   ``sre2l_stats: auto`` matches the BN running statistics, the original SRe²L) and ``cfm``
   (Eq. 16–21) — plus CFM's Table 5 ablation (filter only; filter + signal) — with the same
   teacher, initialisation, optimiser, augmentation and iterations per batch;
3. **relabel/evaluate**: a student (default ConvNet-D3, the paper's ConvNet-128) trained from
   scratch on each set with the teacher's temperature-scaled soft labels under an evaluation
   protocol preset (default ``cfm_paper``: Adam 1e-3, cosine, T = 30, random crop + flip
   applied jointly, the teacher relabelling the augmented view), with ``--eval-epochs`` and
   ``--eval-batch`` overriding the preset's 1000 epochs / batch 64 for CPU scale; several
   seeds; the final model's test accuracy is reported (no selection happens on test).

Run (``--sets selected``: the validation-selected recover settings; a few CPU-hours)::

    nice -n 10 python benchmarks/cfm_cifar10.py --sets selected --out benchmarks/results/cfm_cifar10_bn.json

Everything runs with one thread; synthetic sets, evaluations and the teacher are cached under
``$DDX_CACHE``, so an interrupted run resumes, and several processes given disjoint ``--sets``
(sharing ``$DDX_CACHE``) can split the work; a final run with every set then only reads caches.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from methods.artifacts import LocalArtifactCache, content_key, default_cache_dir
from methods.context import DistillContext
from methods.datasets import DatasetOptions, cached_dataset
from methods.distill.pipeline import run_distillation
from methods.distill.trial import TrialConfig
from methods.evaluation.protocol import build_eval_settings
from methods.evaluation.real_training import load_network
from methods.evaluation.student import train_student
from methods.prerequisites import build_prerequisite
from methods.registry import PRESETS
from methods.teacher.options import TeacherOptions

#: (label, hyper-parameters) of every synthetic set; the last two are CFM's Table 5 ablation
SETS: list[tuple[str, dict[str, Any]]] = [
    ("random", {"objective": "random"}),
    ("sre2l", {"objective": "sre2l"}),
    ("cfm", {"objective": "cfm"}),
    ("cfm_filter_only", {"objective": "cfm", "use_signal": False, "use_ce": False}),
    ("cfm_filter_signal", {"objective": "cfm", "use_ce": False}),
]

#: recover settings tried on the validation split (one seed each, ``--sets`` names them); the
#: shared knobs (crop, lr) are tried for SRe²L too, so both get the same selection budget
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("cfm_beta1", {"objective": "cfm", "beta": 1.0}),
    ("cfm_beta0.01", {"objective": "cfm", "beta": 0.01}),
    ("cfm_crop0.5", {"objective": "cfm", "crop_min_scale": 0.5}),
    ("cfm_lr0.05", {"objective": "cfm", "lr_images": 0.05}),
    ("sre2l_crop0.5", {"objective": "sre2l", "crop_min_scale": 0.5}),
    ("sre2l_lr0.05", {"objective": "sre2l", "lr_images": 0.05}),
    # second round: the two knobs that helped both methods on validation, combined
    ("cfm_crop0.5_lr0.05", {"objective": "cfm", "crop_min_scale": 0.5, "lr_images": 0.05}),
    ("sre2l_crop0.5_lr0.05", {"objective": "sre2l", "crop_min_scale": 0.5, "lr_images": 0.05}),
]

#: the validation-selected recover settings (best val accuracy for both SRe²L and CFM:
#: crop_min_scale 0.5, lr 0.05), evaluated like SETS, with CFM's ablation at those settings
SELECTED = {"crop_min_scale": 0.5, "lr_images": 0.05}
SELECTED_SETS: list[tuple[str, dict[str, Any]]] = [
    ("random", {"objective": "random"}),
    ("sre2l_crop0.5_lr0.05", {"objective": "sre2l", **SELECTED}),
    ("cfm_crop0.5_lr0.05", {"objective": "cfm", **SELECTED}),
    ("cfm_crop0.5_lr0.05_filter_only", {"objective": "cfm", "use_signal": False, "use_ce": False, **SELECTED}),
    ("cfm_crop0.5_lr0.05_filter_signal", {"objective": "cfm", "use_ce": False, **SELECTED}),
]


T_START = time.perf_counter()


def log(message: str) -> None:
    """A progress line with the elapsed wall time (the run is long; logs go to a file)."""
    print(f"[{time.strftime('%H:%M:%S')} +{(time.perf_counter() - T_START) / 60:.1f} min] {message}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/cache/cifar10")
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--val-per-class", type=int, default=30)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--teacher-arch", default="convnet_bn_d3")
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--student", default="convnet_d3")
    ap.add_argument("--preset", default="cfm_paper", choices=PRESETS.names())
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations-per-batch", type=int, default=100)
    ap.add_argument("--eval-epochs", type=int, default=80)
    ap.add_argument("--eval-batch", type=int, default=50)
    ap.add_argument("--temperature", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sets", default=",".join(s for s, _ in SETS), help="'selected' = the validation-selected sets")
    ap.add_argument("--out", default="benchmarks/results/cfm_cifar10.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")

    opts = DatasetOptions(
        name="cifar10",
        root=args.root,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class,
    )
    # the cache keys below hash this dict: options added to DatasetOptions later (ZCA) are left
    # out while at their defaults, so teachers, sets and students cached before they existed are
    # found again (the data they describe is the same)
    later = {f.name: f.default for f in fields(DatasetOptions) if f.name in ("zca", "zca_eps")}
    dataset = {k: v for k, v in asdict(opts).items() if not (k in later and v == later[k])}
    data = cached_dataset(opts)
    log(data.summary())

    # 1. squeeze ------------------------------------------------------------------------
    prereq = build_prerequisite("teacher", TeacherOptions(arch=args.teacher_arch, epochs=args.teacher_epochs))
    t_settings = prereq.options.settings()
    description = prereq.describe(dataset, 0)  # the identity a sweep's teacher artifact has
    t0 = time.perf_counter()
    path = LocalArtifactCache(default_cache_dir()).get_or_create(
        "teacher", description, lambda tmp: prereq.produce(data, 0, tmp, device)
    )
    teacher, meta = load_network(path)
    log(
        f"teacher {args.teacher_arch} {path} val {meta['val_acc']:.4f} test {meta['test_acc']:.4f} "
        f"({time.perf_counter() - t0:.0f}s)"
    )

    # the preset's values, with the CPU-scale overrides written out (the rows' protocol rule:
    # overriding a preset value makes the protocol 'custom', methods/protocols.protocol_name)
    overrides = {"epochs": args.eval_epochs, "batch_size": args.eval_batch, "temperature": args.temperature}
    settings = build_eval_settings(overrides, preset=args.preset, dataset="cifar10", ipc=args.ipc)
    if settings.label_mode != "soft":
        raise SystemExit(f"--preset {args.preset} is a hard-label protocol; this experiment relabels with a teacher")
    log(f"evaluation settings: {settings.to_dict()}")
    # as for the dataset: settings added to EvalSettings later (lr_from_set) are left out of the
    # students' cache key while at their defaults
    settings_identity = {k: v for k, v in settings.to_dict().items() if not (k == "lr_from_set" and v is False)}
    wanted = {s for s, _ in SELECTED_SETS} if args.sets == "selected" else set(args.sets.split(","))
    ctx = DistillContext(seed=0, device=device, cache=LocalArtifactCache(default_cache_dir()))
    results: dict[str, Any] = {}
    known = dict(SETS + VARIANTS + SELECTED_SETS)
    unknown = wanted - set(known) - {"none"}
    if unknown:
        raise SystemExit(f"unknown --sets {sorted(unknown)}; known: {', '.join(known)}")
    for label in [lbl for lbl in known if lbl in wanted]:
        hp = known[label]
        # 2. recover (cached per set) ---------------------------------------------------
        full = {"ipc": args.ipc, "iterations_per_batch": args.iterations_per_batch, **hp}
        set_key = content_key({"dataset": dataset, "teacher": path.name, "hp": full, "seed": 0})
        syn = default_cache_dir() / "benchmark_sets" / f"{label}-{set_key}.pt"
        if syn.exists():
            saved = torch.load(syn, map_location="cpu", weights_only=True)
        else:
            start = time.perf_counter()
            trial = TrialConfig.build(**full, dataset=DatasetOptions(**dataset))
            param, objective, summary = run_distillation(trial, data, ctx, {"teacher": teacher})
            seconds = time.perf_counter() - start
            with torch.no_grad():
                images = param.decode().detach().cpu()
            saved = {
                "images": images,
                "labels": param.labels.cpu(),
                "seconds": seconds,
                "final_loss": summary["loss"],
                "row_fields": objective.row_fields(),
                "last_terms": getattr(objective, "last_terms", {}),
            }
            syn.parent.mkdir(parents=True, exist_ok=True)
            torch.save(saved, syn)
        log(f"{label}: recovered in {saved['seconds']:.0f}s {saved['last_terms']}")

        # 3. relabel / evaluate (cached per set and seed) -------------------------------
        runs = []
        for seed in range(args.seeds):
            key = content_key(
                {
                    "set": set_key,
                    "seed": seed,
                    "settings": settings_identity,
                    "teacher": path.name,
                    "student": args.student,
                }
            )
            done = default_cache_dir() / "benchmark_evals" / f"{label}-{key}.json"
            if done.exists():
                run = json.loads(done.read_text())
            else:
                images, labels = saved["images"], saved["labels"]
                out = train_student(images, labels, data, args.student, seed, settings, device, teacher=teacher)
                run = {"seed": seed, "test_acc": out.test_acc, "val_acc": out.val_acc, "seconds": out.train_seconds}
                done.parent.mkdir(parents=True, exist_ok=True)
                done.write_text(json.dumps(run))
            runs.append(run)
            log(f"  {label} seed {seed}: test {run['test_acc']:.4f} val {run['val_acc']:.4f} ({run['seconds']:.0f}s)")
        tests = [r["test_acc"] for r in runs]
        results[label] = {
            "hp": full,
            "row_fields": saved["row_fields"],
            "recover_wall_seconds": saved["seconds"],
            "final_loss_terms": saved["last_terms"],
            "test_acc_mean": statistics.mean(tests),
            "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
            "val_acc_mean": statistics.mean(r["val_acc"] for r in runs),
            "runs": runs,
        }
        log(f"{label}: {100 * results[label]['test_acc_mean']:.2f} ± {100 * results[label]['test_acc_std']:.2f}")
        report = {
            "benchmark": "cfm_cifar10",
            "dataset": dataset,
            "data": data.summary(),
            "teacher": {
                "arch": args.teacher_arch,
                "settings": asdict(t_settings),
                **{k: meta[k] for k in ("val_acc", "test_acc")},
            },
            "recover": {
                "ipc": args.ipc,
                "iterations_per_batch": args.iterations_per_batch,
                "optimizer": "adam 0.25 (0.5, 0.9) cosine",
            },
            "evaluation": {
                "student": args.student,
                "seeds": args.seeds,
                "based_on_preset": args.preset,
                "overrides": overrides,
                **settings.to_dict(),
            },
            "wall_seconds_this_invocation": time.perf_counter() - T_START,
            # measured when each piece ran (cached pieces keep their original timing): teacher
            # training + every recover + every student, one thread each
            "compute_seconds": {
                "teacher": float(meta.get("seconds", float("nan"))),
                "recover": sum(r["recover_wall_seconds"] for r in results.values()),
                "evaluate": sum(run["seconds"] for r in results.values() for run in r["runs"]),
            },
            "results": results,
            "baseline_ratios": {
                f"{k}_over_random": results[k]["test_acc_mean"] / results["random"]["test_acc_mean"]
                for k in results
                if k != "random" and "random" in results
            },
            "machine": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "threads": 1,
                "cpu": platform.processor(),
            },
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
