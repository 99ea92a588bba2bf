"""``ddx evaluate``: judge synthetic sets produced anywhere under one named protocol.

Each set (a ``.pt`` of images + labels, an image folder, or a ddx synthetic set; see
:mod:`methods.evaluation.external_sets` for the accepted layouts) is evaluated like a sweep trial's set:
one Ray task per (network × resolution × label mode × seed) — :func:`orchestrator.evaluation.tasks.submit_evaluations`,
the tasks a sweep runs — with the rows in the sweep schema, so ``ddx report`` and ``ddx
leaderboard`` read the folder. Alongside every set, under the same protocol:

* a **random real subset of the same size** (the same images per class, drawn from the real
  training split with ``--baseline-seed``; one per distinct IPC), written as objective
  ``random`` with its seed in ``baseline_seed`` and its images saved like a set;
* **hard-label** students of every set and baseline when the protocol's labels are soft
  (DD-Ranking's HLR needs Acc(set, hard));
* the **full-data reference** (each network trained on the whole real training split,
  ``reference.parquet``, cached in the artifact store) unless ``--no-reference``;
* with ``--ars``, every set and baseline again with augmentation off (``<preset>:noaug``).

Soft-label protocols need a teacher: the sweep's prerequisite machinery trains (or finds in
the artifact store ``<storage>/cache``) the teacher described by the ``--teacher-*`` options.
Work already in the results folder (``ok`` rows of the same protocol) is not run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import ray

from methods.datasets import DatasetError, cached_dataset
from methods.datasets.options import DatasetOptions
from methods.evaluation.external_sets import LoadedSet, SetError, load_set, random_subset_payload
from methods.evaluation.options import LABEL_MODES
from methods.evaluation.presets import (
    build_eval_settings,
    get_preset,
    protocol_name,
    without_augmentation,
)
from methods.evaluation.real_training import RealTrainSettings
from methods.networks import resolve_arch
from methods.options import MAX_RESOLUTION
from methods.parameterizations import payload_bytes
from methods.prerequisites import dataset_identity
from methods.registry import DATASETS, NETWORKS, PREREQUISITES
from methods.teacher.squeeze import SQUEEZE_PRESETS, TeacherOptions
from orchestrator.errors import UserError
from orchestrator.evaluation.reference import ReferenceJob, base_row, finish_references, launch_references
from orchestrator.evaluation.tasks import EvalJob, plan_jobs, protocol_columns, row_key_of, submit_evaluations, wait_one
from orchestrator.provenance import versions
from orchestrator.report.dd_metrics import RANDOM_OBJECTIVE
from orchestrator.spec.checks import arch_problem
from orchestrator.storage.artifacts import ArtifactStore, cache_root, content_key
from orchestrator.storage.locations import is_uri, join, write_bytes_atomic
from orchestrator.storage.results import REQUEST_FILE, ResultStore
from orchestrator.storage.staging import staged
from orchestrator.sweep import prerequisites
from orchestrator.sweep.resume import describe_holder

DEFAULT_SEEDS = 3


@dataclass
class EvaluateRequest:
    """Everything ``ddx evaluate`` was asked (also written to ``<out>/evaluate.json``)."""

    sets: list[str]
    preset: str
    dataset: dict[str, Any]  # DatasetOptions values (as given on the command line)
    out: str  # the results folder (an experiment directory)
    archs: list[str] | None = None  # None: the preset's networks, else ["convnet"]
    resolutions: list[int] | None = None  # None: each set's own resolution
    seeds: int | None = None  # None: the preset's count, else DEFAULT_SEEDS
    seed: int = 0  # the first evaluation seed
    label_modes: list[str] | None = None  # None: the preset's mode, plus hard when it is soft (HLR)
    overrides: dict[str, Any] = field(default_factory=dict)  # EvalSettings values over the preset
    space: str | None = None  # for tensor files without a "space" entry
    names: list[str] | None = None  # one per set; default the file/folder name
    baseline_seed: int = 0
    reference: bool = True
    reference_settings: dict[str, Any] = field(default_factory=dict)  # RealTrainSettings values
    ars: bool = False
    teacher: dict[str, Any] = field(default_factory=dict)  # TeacherOptions values
    cpus: float = 1.0
    gpus: float = 0.0
    retries: int = 1

    @property
    def storage(self) -> str:
        """The folder that holds ``out`` (its ``cache/`` is the artifact store, as for sweeps)."""
        if is_uri(self.out):
            return self.out.rstrip("/").rsplit("/", 1)[0]
        from pathlib import Path

        return str(Path(self.out).resolve().parent)

    @property
    def name(self) -> str:
        return self.out.rstrip("/").rsplit("/", 1)[-1]

    def dataset_options(self) -> DatasetOptions:
        return DatasetOptions(**self.dataset)

    def prerequisite_options(self, name: str) -> Any:
        """The options of prerequisite ``name`` (the teacher's from the ``--teacher-*`` flags)."""
        given = self.teacher if name == "teacher" else {}
        return PREREQUISITES.get(name).options(**given)


@dataclass
class Unit:
    """One set to evaluate (a loaded set or a random baseline) and its row columns."""

    key: str
    payload: dict[str, Any]
    columns: dict[str, Any]
    resolutions: list[int]


@dataclass
class Plan:
    request: EvaluateRequest
    values: dict[str, Any]  # the protocol's EvalSettings values (preset + overrides)
    label_modes: list[str]
    primary: str  # the protocol's own label mode (ARS runs it without augmentation)
    archs: list[str]
    seeds: list[int]
    units: list[Unit]
    data_summary: str


def _user(err: Exception, **where: str) -> UserError:
    text = str(err).strip().splitlines()
    return UserError(text[-1] if text else type(err).__name__, **where)


def payload_key(payload: dict[str, Any]) -> str:
    """A content hash of a set: its configuration and every tensor's bytes."""
    h = hashlib.sha256(json.dumps(payload["config"], sort_keys=True).encode())
    for name in sorted(payload["state"]):
        t = payload["state"][name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def _check_request(req: EvaluateRequest) -> None:
    if not req.sets:
        raise UserError("give one or more synthetic sets (.pt files, image folders or ddx sets)", key="SET")
    try:
        get_preset(req.preset)
    except ValueError as err:
        raise _user(err, key="--preset") from None
    if req.dataset.get("name") not in DATASETS:
        raise UserError(DATASETS.unknown_message(str(req.dataset.get("name"))), key="--dataset")
    for a in req.archs or []:
        if a not in NETWORKS:
            raise UserError(NETWORKS.unknown_message(a), key="--archs")
    for m in req.label_modes or []:
        if m not in LABEL_MODES:
            raise UserError(f"unknown label mode {m!r}; known: {', '.join(LABEL_MODES)}", key="--label-modes")
    if req.names is not None and len(req.names) != len(req.sets):
        raise UserError(f"{len(req.names)} names for {len(req.sets)} sets", key="--name")
    bad = [r for r in req.resolutions or [] if not 1 <= r <= MAX_RESOLUTION]
    if bad:
        raise UserError(f"{bad[0]} px: resolutions must be from 1 to {MAX_RESOLUTION}", key="--resolutions")
    try:
        build_eval_settings({**req.overrides, "label_mode": "soft", "preset": req.preset}, dataset=req.dataset["name"])
    except (ValueError, TypeError) as err:
        raise _user(err, key="--setting") from None
    if "preset" in req.overrides:
        raise UserError("name the protocol with --preset, not as a setting", key="--setting")
    teacher = TeacherOptions(**req.teacher)
    if teacher.arch not in NETWORKS:
        raise UserError(NETWORKS.unknown_message(teacher.arch), key="--teacher-arch")
    if teacher.preset is not None and teacher.preset not in SQUEEZE_PRESETS:
        known = ", ".join(SQUEEZE_PRESETS)
        raise UserError(f"unknown teacher preset {teacher.preset!r}; known: {known}", key="--teacher-preset")


def _check_archs(archs: list[str], resolutions: list[int], given: bool) -> None:
    """Every student network × every resolution it will see can be built (the sweep file's check,
    :func:`orchestrator.spec.arch_problem`): a VGG-11 at 8 px failed every row after Ray's start-up."""
    for arch in archs:
        for res in resolutions:
            problem = arch_problem(arch, res)
            if problem:
                fix = "a larger --resolutions" if given else "--resolutions (the default is each set's own)"
                raise UserError(f"{problem}; drop it or pass {fix}", key="--archs")


def plan(req: EvaluateRequest) -> Plan:
    """Check the request, load the real data and every set; :class:`UserError` for any bad input."""
    _check_request(req)
    try:
        data = cached_dataset(staged(req.dataset_options()))
    except (DatasetError, OSError, TypeError) as err:
        raise _user(err, key="--dataset") from None
    values = {"preset": req.preset, **req.overrides}
    resolved = build_eval_settings({**values}, dataset=data.name)
    primary = resolved.label_mode
    modes = list(req.label_modes or ([primary, "hard"] if primary == "soft" else [primary]))
    p = get_preset(req.preset)
    archs = list(req.archs or (p.archs or ("convnet",)))
    n_seeds = req.seeds or p.seeds or DEFAULT_SEEDS
    seeds = [req.seed + i for i in range(n_seeds)]

    units: list[Unit] = []
    names: list[str] = []
    by_ipc: dict[int, set[int]] = {}
    first_with: dict[int, str] = {}  # IPC → the first set that has it
    for i, path in enumerate(req.sets):
        try:
            loaded = load_set(path, data, req.space, req.names[i] if req.names else None)
        except SetError as err:
            raise _user(err, where=path) from None
        if loaded.name == RANDOM_OBJECTIVE:
            raise UserError(f"the name {RANDOM_OBJECTIVE!r} is the baseline's; pass --name", where=path)
        if loaded.name in names:
            raise UserError(f"two sets are named {loaded.name!r}; pass --name for each set", where=path)
        names.append(loaded.name)
        resolutions = list(req.resolutions or [loaded.resolution])
        by_ipc.setdefault(loaded.ipc, set()).update(resolutions)
        first_with.setdefault(loaded.ipc, path)
        units.append(_set_unit(loaded, resolutions, req))
    _check_archs(archs, sorted({r for res in by_ipc.values() for r in res}), given=bool(req.resolutions))
    for ipc, res in sorted(by_ipc.items()):
        try:
            payload = random_subset_payload(data, ipc, req.baseline_seed)
        except SetError as err:  # the set is larger than the real data it is compared with
            why = f"{err}; the random-real baseline at this set's IPC cannot be drawn"
            raise UserError(why, where=first_with[ipc]) from None
        units.append(_baseline_unit(payload, ipc, sorted(res), req))
    return Plan(req, values, modes, primary, archs, seeds, units, data.summary())


def _common(req: EvaluateRequest, key: str, payload: dict[str, Any]) -> dict[str, Any]:
    shape = payload["config"]["shape"]
    from methods.parameterizations import from_payload

    param = from_payload(payload)
    return {
        "sweep": req.name,
        "trial_id": "evaluate",
        "trial_key": key,
        "parameterization": payload["config"]["name"],
        "dataset": req.dataset["name"],
        "ipc": int(shape["ipc"]),
        "budget_scalars": int(param.config.shape.budget_scalars),
        "instances_per_class": int(param.per_class),
        "distill_arch": None,
        "distill_resolution": int(shape["resolution"]),
        "distill_workers": None,
        "distill_seconds": None,
        "config_hash": key,
        "synthetic_path": ResultStore(req.out).synthetic_path(key),
        **versions(),
    }


def _set_unit(loaded: LoadedSet, resolutions: list[int], req: EvaluateRequest) -> Unit:
    key = payload_key(loaded.payload)
    cols = {
        **_common(req, key, loaded.payload),
        "objective": loaded.name,
        "distill_seed": None,
        "set_source": loaded.source,
        "set_format": loaded.format,
        "set_space": loaded.space,
        "baseline_seed": None,
    }
    return Unit(key, loaded.payload, cols, resolutions)


def _baseline_unit(payload: dict[str, Any], ipc: int, resolutions: list[int], req: EvaluateRequest) -> Unit:
    key = (
        "random-"
        + content_key(
            {"random_subset": dataset_identity(req.dataset_options()), "ipc": ipc, "seed": req.baseline_seed}
        )[:12]
    )
    cols = {
        **_common(req, key, payload),
        "objective": RANDOM_OBJECTIVE,
        "distill_seed": req.baseline_seed,
        "set_source": f"random real subset of the training split ({ipc} per class, seed {req.baseline_seed})",
        "set_format": "random",
        "set_space": "normalized",
        "baseline_seed": req.baseline_seed,
    }
    return Unit(key, payload, cols, resolutions)


@dataclass
class Outcome:
    experiment: str
    rows: pd.DataFrame
    reference: pd.DataFrame | None
    failed: int


def run(p: Plan, log: Callable[[str], None] = print) -> Outcome:
    """Evaluate every unit of the plan on the connected Ray cluster; write the results folder."""
    req = p.request
    store = ResultStore(req.out)
    artifacts = ArtifactStore(cache_root(req.storage))
    write_bytes_atomic(join(req.out, REQUEST_FILE), json.dumps(asdict(req), indent=2, default=str).encode())
    set_bytes = {u.key: payload_bytes(u.payload) for u in p.units}  # what the tasks load
    for u in p.units:  # each set's file next to its rows (ddx report draws them; reproducible inputs)
        write_bytes_atomic(store.synthetic_path(u.key), set_bytes[u.key])

    variants: list[tuple[dict[str, Any], list[str]]] = [(p.values, p.label_modes)]
    if req.ars:
        variants.append((without_augmentation(p.values), [p.primary]))
    dataset = req.dataset_options()
    names = prerequisites.needed((), [m for _, modes in variants for m in modes])
    produced = prerequisites.Prerequisites()
    prerequisite_cols: dict[str, Any] = {}
    if names:
        log(f"{', '.join(names)}: finding or producing (the label modes need {'it' if len(names) == 1 else 'them'})")
        produced = prerequisites.ensure(
            {n: req.prerequisite_options(n) for n in names},
            dataset,
            artifacts,
            prerequisites.Resources(req.cpus, req.gpus, req.retries),
        )
        prerequisite_cols = produced.row_fields(artifacts)

    references = None
    if req.reference:
        ref_settings = RealTrainSettings(**req.reference_settings)
        resolutions = sorted({r for u in p.units for r in u.resolutions})
        jobs = [ReferenceJob(a, r, s) for a in p.archs for r in resolutions for s in p.seeds]
        config = content_key(
            {"evaluate": req.name, "dataset": dataset_identity(dataset), "settings": asdict(ref_settings)}
        )
        references = launch_references(
            jobs,
            dataset,
            ref_settings,
            artifacts.root,
            req.cpus,
            req.gpus,
            req.retries,
            req.out,
            base_row(req.name, req.dataset["name"], config, ref_settings),
        )

    rows: dict[str, list[dict[str, Any]]] = {}
    pending: dict[ray.ObjectRef, tuple[Unit, dict[str, Any], EvalJob]] = {}
    total = finished = 0

    def launch(u: Unit) -> int:
        """Submit the unit's evaluations that its row file does not hold yet; how many."""
        existing = [r for r in store.read_trial_rows(u.key) if r.get("status") == "ok"]
        rows[u.key] = existing
        set_ref = ray.put(set_bytes[u.key])
        ipc = int(u.payload["config"]["shape"]["ipc"])
        submitted = 0
        for values, modes in variants:
            protocol = protocol_name(values, req.dataset["name"], ipc)
            done = {row_key_of(r) for r in existing if r.get("protocol") == protocol}
            jobs = [j for j in plan_jobs(p.archs, u.resolutions, p.seeds, modes) if j.key not in done]
            launched = submit_evaluations(
                set_ref,
                jobs,
                dataset,
                values,
                req.cpus,
                req.gpus,
                req.retries,
                produced,
                artifacts.root,
            )
            submitted += len(launched)
            pending.update({ref: (u, values, job) for ref, job in launched.items()})
        return submitted

    def drain() -> None:
        """Write each evaluation's row as it finishes, until none is pending."""
        nonlocal finished
        while pending:
            for (u, values, job), result in wait_one(pending, job_of=lambda v: v[2]):
                ipc = int(u.payload["config"]["shape"]["ipc"])
                cols = protocol_columns(values, job.label_mode, req.dataset["name"], ipc)
                row = {**u.columns, **prerequisite_cols, **result, **cols, **job.columns()}
                rows[u.key].append(row)
                store.write_trial_rows(u.key, rows[u.key])
                finished += 1
                ok = result["status"] == "ok"
                acc = f"test {result['test_acc']:.3f}" if ok else f"failed: {result.get('error')}"
                net = f"{resolve_arch(job.arch, job.resolution)}@{job.resolution}"
                log(
                    f"[{finished}/{total}] {u.columns['objective']} · {cols['protocol']} · "
                    f"{job.label_mode} · {net} seed {job.seed}: {acc}"
                )

    # each set's row file is this process's while it evaluates that set: a second ddx evaluate
    # into the same folder (the default --out of a preset is shared) evaluating the same set — a
    # random baseline of the same IPC, say — waits for it, then runs only what is still missing
    waiting: list[Unit] = []
    with contextlib.ExitStack() as held:
        for u in p.units:
            lock = store.rows_lock(u.key)
            if lock.try_acquire():
                held.callback(lock.release)
                total += launch(u)
            else:
                waiting.append(u)
                log(
                    f"{u.columns['objective']}: another ddx evaluate is evaluating it into this folder "
                    f"({describe_holder(lock.holder() or {})}); its evaluations run once that one has "
                    "written its rows, and only those still missing"
                )
        later = f" (and what is missing of {len(waiting)} held by another ddx evaluate, after it)" if waiting else ""
        log(f"{len(p.units)} sets ({p.data_summary}): {total} evaluations to run{later}")
        drain()
        for u in waiting:
            held.enter_context(store.rows_lock(u.key))  # waits for the other run's hold
            missing = launch(u)
            total += missing
            log(f"{u.columns['objective']}: {missing} evaluations still missing after the other ddx evaluate")
            drain()
    reference = finish_references(references) if references is not None else None
    df = store.consolidate()
    failed = int((df["status"] != "ok").sum()) if not df.empty else 0
    if reference is not None:
        failed += int((reference["status"] != "ok").sum())
    return Outcome(req.out, df, reference, failed)


__all__ = ["REQUEST_FILE", "EvaluateRequest", "Outcome", "Plan", "payload_key", "plan", "run"]
