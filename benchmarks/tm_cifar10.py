"""CPU-scale CIFAR-10 evidence for trajectory matching: random vs DM vs TM (pixels) vs TM (neural fields), IPC 1.

What it does (JSON to ``benchmarks/results/tm_cifar10.json``):

1. **data**: a seeded CIFAR-10 subset (``train_per_class`` images per class, of which
   ``val_per_class`` are carved off as the validation split; ``test_per_class`` test images
   per class), ZCA-whitened as MTT/DDiF do for CIFAR: the [0, 1] pixels, fitted on the training
   split only (``--zca-space normalized``: normalise first, ddx's former space).
   Every set is distilled from, and every student evaluated on, this same data.
2. **experts**: ``num_experts`` ConvNet-D3 trajectories produced through the ``experts``
   prerequisite (:class:`methods.tm.experts.Experts`, the object a sweep's ``experts:`` block
   builds) and cached in a :class:`methods.artifacts.LocalArtifactCache` under the same
   content identity a sweep uses, so a re-run trains none.
3. **sets** (all IPC 1 = 3,072 scalars per class), through the same pipeline a sweep trial
   runs (:func:`methods.distill.pipeline.run_distillation`):

   * ``random``: one real image per class (the seeded initialisation every other set starts from);
   * ``dm``: distribution matching on pixels;
   * ``tm_pixels``: trajectory matching on pixels (MTT: SGD lr 1000, momentum 0.5 on images,
     learnable step size α);
   * ``tm_field``: trajectory matching on DDiF neural fields at equal storage (SIREN d=6,
     L=2: 81 scalars, 37 fields per class; Adam at DDiF Table 9's TM lr for CIFAR-10 IPC 1, 1e-3).

   Each run saves a checkpoint every ``checkpoint_every`` iterations (resumable).
4. **validation selection**: the tuned knob is the distillation length — every checkpoint of a
   set is scored by one student (seed ``SELECT_SEED``) on the **validation** split, and the
   checkpoint with the best validation accuracy is the set that is reported.
5. **evaluation**: ConvNet-D3 students trained from scratch on the selected set, hard labels,
   DSA, SGD momentum 0.9, weight decay 5e-4, lr ×0.1 at half-way (the ``dd_standard`` recipe),
   the same number of optimiser steps for every set (``--student-steps``; batch
   ``min(--eval-batch, set size)``), ``--seeds`` seeds; test accuracy of the final student.
   Learning rate: TM sets use their learned α (``lr_from_set``, MTT's protocol); random and DM
   use 0.01 (dd_standard).

Run (hours on a shared 2-core machine; everything is cached, an interrupted run resumes)::

    nice -n 10 python benchmarks/tm_cifar10.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from methods.artifacts import LocalArtifactCache, content_key, default_cache_dir
from methods.context import DistillContext
from methods.datasets import DatasetOptions, RealData, cached_dataset
from methods.datasets.options import ZCA_SPACES
from methods.distill.loop import resolve_optim
from methods.distill.pipeline import make_components, run_distillation
from methods.distill.trial import TrialConfig
from methods.evaluation.student import EvalSettings, train_student
from methods.tm.experts import Experts, load_expert
from methods.tm.options import ExpertOptions

ROOT = Path(__file__).resolve().parent
#: the student seed that scores checkpoints on the validation split (the reported seeds are 0 … seeds−1)
SELECT_SEED = 1000


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CIFAR10_ROOT", "/work/cache/cifar10"))
    ap.add_argument("--train-per-class", type=int, default=250)
    ap.add_argument("--val-per-class", type=int, default=50)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--num-experts", type=int, default=8)
    ap.add_argument("--expert-epochs-trained", type=int, default=6)
    ap.add_argument("--expert-batch", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=200, help="distillation iterations of dm and tm")
    ap.add_argument("--checkpoint-every", type=int, default=50, help="the validation-selection grid")
    ap.add_argument("--syn-steps", type=int, default=10)
    ap.add_argument("--expert-epochs", type=int, default=2)
    ap.add_argument("--max-start-epoch", type=int, default=5)
    ap.add_argument("--field-batch-syn", type=int, default=37)
    ap.add_argument("--dm-batch-real", type=int, default=64)
    ap.add_argument("--warmup-iterations", type=int, default=5000, help="neural-field warm-up (DDiF: 5000)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--student-steps", type=int, default=300)
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sets", default="random,dm,tm_pixels,tm_field")
    ap.add_argument("--zca-space", default="pixels", choices=ZCA_SPACES,
                    help="what ZCA whitens: pixels (MTT) or normalized (ddx before it matched MTT)")  # fmt: skip
    ap.add_argument("--out", default=str(ROOT / "results" / "tm_cifar10.json"))
    return ap.parse_args()


def mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def expert_options(a: argparse.Namespace) -> ExpertOptions:
    """The ``experts`` prerequisite's options (a sweep's ``experts:`` block)."""
    return ExpertOptions(num_experts=a.num_experts, train_epochs=a.expert_epochs_trained, batch_size=a.expert_batch)


def set_specs(a: argparse.Namespace, dataset: DatasetOptions) -> dict[str, TrialConfig]:
    """The typed configuration of every set (what a sweep trial with these hyper-parameters receives)."""
    common = {"iterations": a.iterations, "checkpoint_every": a.checkpoint_every, "progress_every": 1}
    tm = {
        "syn_steps": a.syn_steps,
        "expert_epochs": a.expert_epochs,
        "max_start_epoch": a.max_start_epoch,
        "tm_gradient": "unrolled",
    }
    experts = {"experts": expert_options(a)}
    return {
        "random": TrialConfig.build("random", 1, dataset, iterations=0),
        "dm": TrialConfig.build("dm", 1, dataset, **common, batch_real=a.dm_batch_real),
        # MTT CIFAR-10 IPC 1: whole set per inner step, lr_lr 1e-7 (TMOptions defaults), images SGD 1000
        "tm_pixels": TrialConfig.build("tm", 1, dataset, prerequisites=experts, **common, **tm),
        # DDiF Table 9(c) CIFAR-10 IPC 1: lr_lr 1e-5, field lr 1e-3 (Adam, the neural field's TM default)
        "tm_field": TrialConfig.build(
            "tm",
            1,
            dataset,
            parameterization="neural_field",
            prerequisites=experts,
            **common,
            **tm,
            nf_width=6,
            nf_depth=2,
            warmup_iterations=a.warmup_iterations,
            batch_syn=a.field_batch_syn,
            syn_lr_lr=1e-5,
        ),
    }


def hyper(config: TrialConfig) -> dict[str, Any]:
    """A set's flat hyper-parameters as the result JSON holds them (every option, defaults included)."""
    return json.loads(json.dumps(config.columns(), default=str))


def train_experts(
    a: argparse.Namespace, dataset: DatasetOptions, data: RealData, store: LocalArtifactCache
) -> tuple[list[Path], list[dict[str, Any]]]:
    """Every expert through the ``experts`` prerequisite, produced once per content (cached)."""
    prereq = Experts(expert_options(a))
    paths, info = [], []
    for unit in range(prereq.units()):
        description = prereq.describe(dataset, unit)
        cached = store.find("experts", description) is not None
        t0 = time.perf_counter()
        path = store.get_or_create(
            "experts", description, lambda tmp, u=unit: prereq.produce(data, u, tmp, torch.device("cpu"))
        )
        meta = load_expert(path)["meta"]
        paths.append(path)
        info.append({
            "unit": unit, "key": path.stem, "cached": cached, "val_acc": meta["val_acc"],
            "train_seconds": meta["seconds"], "wall_seconds_this_run": time.perf_counter() - t0,
            "bytes": path.stat().st_size,
        })  # fmt: skip
        how = "cached" if cached else f"{meta['seconds']:.0f}s"
        print(f"expert {unit}: val {meta['val_acc']:.4f} ({how})", flush=True)
    return paths, info


class SetRun:
    """One set's distillation with resumable checkpoints under ``<cache>/tm_bench/<label>-<key>/``."""

    def __init__(self, label: str, config: TrialConfig, experts: list[str]) -> None:
        self.label, self.config = label, config
        # the config's identity holds the dataset's (zca_space included) and the experts' options
        key = content_key({"config": config.identity(), "experts": experts if config.objective_name == "tm" else []})
        self.dir = default_cache_dir() / "tm_bench" / f"{label}-{key}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def checkpoint_path(self, done: int) -> Path:
        return self.dir / f"ckpt-{done:06d}.pt"

    def checkpoints(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("ckpt-*.pt"))

    def run(self, data: RealData, needs: dict[str, Any], cache: LocalArtifactCache) -> dict[str, Any]:
        """Distil (resuming from the latest state) unless the final checkpoint exists; return timing info."""
        info_path = self.dir / "info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {"sessions": []}
        total = self.config.loop.iterations
        if total in self.checkpoints():
            return info
        latest = self.dir / "latest.pt"
        resume = torch.load(latest, map_location="cpu", weights_only=True) if latest.exists() else None
        times: list[float] = []
        last = [time.perf_counter()]

        def progress(item: dict[str, Any]) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            if item["step"] % 10 == 0 or item["step"] <= 3:
                print(f"  {self.label} step {item['step']}/{item['total_steps']} loss {item['loss']:.4f} "
                      f"({times[-1]:.1f}s/it)", flush=True)  # fmt: skip

        def on_checkpoint(state: dict[str, Any]) -> None:
            self.save_point(state["done"], state["param"], state["objective"])
            torch.save(state, self.dir / ".latest.tmp")
            os.replace(self.dir / ".latest.tmp", latest)

        ctx = DistillContext(seed=0, progress=progress, cache=cache)
        t0 = time.perf_counter()
        param, objective, summary = run_distillation(self.config, data, ctx, needs, resume, on_checkpoint)
        wall = time.perf_counter() - t0
        self.save_point(total, param.state_dict(), objective.state_dict())
        latest.unlink(missing_ok=True)
        c = make_components(self.config, data)
        optim = resolve_optim(c.objective, c.param, c.settings)
        info["sessions"].append({
            "resumed_from": int(resume["done"]) if resume else 0, "wall_seconds": wall,
            "distill_seconds": summary["distill_seconds"], "final_loss": summary["loss"],
            "seconds_per_iteration_median": statistics.median(times) if times else None,
            "loadavg_end": os.getloadavg(),
        })  # fmt: skip
        info["optimizer"] = {"name": optim.optimizer, "lr": optim.lr, "momentum": optim.momentum}
        info["warmup_mse_mean"] = float(param.warmup_mse.mean()) if getattr(param, "warmup_mse", None) is not None \
            else None  # fmt: skip
        info_path.write_text(json.dumps(info, indent=2))
        return info

    def save_point(self, done: int, param_state: dict[str, Any], objective_state: dict[str, Any]) -> None:
        path = self.checkpoint_path(done)
        torch.save({"param": param_state, "objective": objective_state}, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)

    def images_at(self, done: int, data: RealData) -> tuple[torch.Tensor, torch.Tensor, float | None, int]:
        """Decoded images, labels, learned α (TM) and instances per class of checkpoint ``done``."""
        saved = torch.load(self.checkpoint_path(done), map_location="cpu", weights_only=True)
        param = make_components(self.config, data).param
        param.load_state_dict(saved["param"])
        with torch.no_grad():
            images = param.decode().detach()
        lr = saved["objective"].get("syn_lr")
        return images, param.labels.clone(), (float(lr) if lr is not None else None), param.per_class


def student(
    images: torch.Tensor, labels: torch.Tensor, set_lr: float | None, data: RealData, seed: int, a: argparse.Namespace
) -> dict[str, Any]:
    n = images.shape[0]
    batch = min(a.eval_batch, n)
    steps_per_epoch = -(-n // batch)
    epochs = max(1, round(a.student_steps / steps_per_epoch))
    # one validation check, at the end (check_every only sets how often the curve is sampled: same model)
    settings = EvalSettings(epochs=epochs, batch_size=batch, lr_from_set=set_lr is not None, check_every=epochs)
    out = train_student(images, labels, data, "convnet_d3", seed, settings, set_lr=set_lr)
    return {
        "seed": seed, "val_acc": out.val_acc, "test_acc": out.test_acc, "lr": out.lr, "epochs": epochs,
        "steps": epochs * steps_per_epoch, "batch_size": batch, "train_seconds": out.train_seconds,
    }  # fmt: skip


def main() -> None:
    a = parse()
    torch.set_num_threads(a.threads)
    started = time.time()
    out_path = Path(a.out)
    config = {k: v for k, v in vars(a).items() if k not in ("out", "threads", "root", "sets")}
    result: dict[str, Any] = {"benchmark": "tm_cifar10", "config": config, "sets": {}}
    eval_config = {k: config[k] for k in ("seeds", "student_steps", "eval_batch")}
    if out_path.exists():  # keep finished sets whose settings did not change (the rest is cached on disk)
        old = json.loads(out_path.read_text())
        result["sets"] = {k: v for k, v in old.get("sets", {}).items() if v.get("eval") == eval_config}
        result["runs"] = old.get("runs", [])

    def write() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        tmp.replace(out_path)

    dataset = DatasetOptions(
        name="cifar10", root=a.root, train_per_class=a.train_per_class, val_per_class=a.val_per_class,
        test_per_class=a.test_per_class, zca=True, zca_space=a.zca_space,
    )  # fmt: skip
    t0 = time.perf_counter()
    data = cached_dataset(dataset)
    print(data.summary(), f"({time.perf_counter() - t0:.0f}s)", flush=True)
    result["data"] = {"summary": data.summary(), "train": len(data.train_y), "val": len(data.val_y),
                      "test": len(data.test_y), "zca": data.zca}  # fmt: skip
    store = LocalArtifactCache(default_cache_dir() / "artifacts")

    # experts -------------------------------------------------------------------------------
    specs = set_specs(a, dataset)
    wanted = [s for s in a.sets.split(",") if s]
    experts: list[Path] = []
    if any(specs[s].objective_name == "tm" for s in wanted):
        t0 = time.perf_counter()
        experts, expert_info = train_experts(a, dataset, data, store)
        result["experts"] = {
            "options": asdict(expert_options(a)),
            "per_expert": expert_info,
            "wall_seconds_this_run": time.perf_counter() - t0,
            "train_seconds_total": sum(e["train_seconds"] for e in expert_info),
            "val_acc_mean": statistics.fmean(e["val_acc"] for e in expert_info),
        }  # fmt: skip
        write()
    prereq = Experts(expert_options(a))

    # sets: distil → select on validation → evaluate -----------------------------------------
    for label in wanted:
        config = specs[label]
        hp = hyper(config)
        run = SetRun(label, config, [p.stem for p in experts])
        needs = {"experts": prereq.load(experts, torch.device("cpu"))} if config.objective_name == "tm" else {}
        t0 = time.perf_counter()
        info = run.run(data, needs, store)
        entry = result["sets"].get(label, {})
        if entry.get("hyper") != hp or entry.get("experts") != [p.stem for p in experts]:
            entry = {"hyper": hp, "experts": [p.stem for p in experts], "eval": eval_config, "selection": {},
                     "final": []}  # fmt: skip
        result["sets"][label] = entry
        entry.update({"distill": info, "distill_dir": str(run.dir)})
        grid = [c for c in run.checkpoints() if c > 0] or [0]
        for done in grid:
            if str(done) in entry["selection"]:
                continue
            images, labels, lr, per_class = run.images_at(done, data)
            entry["selection"][str(done)] = student(images, labels, lr, data, SELECT_SEED, a)
            print(f"  {label} @ {done}: val {entry['selection'][str(done)]['val_acc']:.4f} (lr {lr})", flush=True)
            write()
        chosen = max(grid, key=lambda d: (entry["selection"][str(d)]["val_acc"], -d))
        entry["selected_iteration"] = chosen
        images, labels, lr, per_class = run.images_at(chosen, data)
        entry["instances_per_class"] = per_class
        entry["learned_lr"] = lr
        done_seeds = {r["seed"] for r in entry["final"] if r["iteration"] == chosen}
        entry["final"] = [r for r in entry["final"] if r["iteration"] == chosen]
        for seed in range(a.seeds):
            if seed in done_seeds:
                continue
            row = {"iteration": chosen, **student(images, labels, lr, data, seed, a)}
            entry["final"].append(row)
            print(f"  {label} seed {seed}: test {row['test_acc']:.4f} val {row['val_acc']:.4f}", flush=True)
            write()
        entry["test_acc"] = mean_std([r["test_acc"] for r in entry["final"]])
        entry["val_acc"] = mean_std([r["val_acc"] for r in entry["final"]])
        entry["wall_seconds_this_run"] = time.perf_counter() - t0
        print(f"{label}: test {100 * entry['test_acc']['mean']:.2f} ± {100 * entry['test_acc']['std']:.2f} "
              f"(iteration {chosen})", flush=True)  # fmt: skip
        write()

    acc = {k: v["test_acc"]["mean"] for k, v in result["sets"].items() if "test_acc" in v}
    checks = {}
    if {"tm_pixels", "dm", "random"} <= acc.keys():
        checks["tm_pixels > dm > random"] = acc["tm_pixels"] > acc["dm"] > acc["random"]
    if {"tm_field", "tm_pixels"} <= acc.keys():
        checks["tm_field > tm_pixels"] = acc["tm_field"] > acc["tm_pixels"]
    result["test_acc_mean"] = acc
    result["orderings"] = checks
    result["machine"] = {
        "python": platform.python_version(), "torch": torch.__version__, "threads": a.threads,
        "cpu_count": os.cpu_count(), "loadavg_end": os.getloadavg(),
    }  # fmt: skip
    runs = result.setdefault("runs", [])
    runs.append({"started": started, "wall_seconds": time.time() - started, "sets": wanted})
    write()
    print(json.dumps({"test_acc_mean": acc, "orderings": checks}, indent=2))


if __name__ == "__main__":
    main()
