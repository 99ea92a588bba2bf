"""``ddx evaluate``: judge synthetic sets produced anywhere under one named protocol — what it is
asked, and the plan (every set loaded and checked) before anything runs.

Each set (a ``.pt`` of images + labels, an image folder, a ddx synthetic set, or a set as the field
publishes it — DatasetCondensation, mtt-distillation/DATM, DDiF; see
:mod:`methods.evaluation.published_sets`) is evaluated exactly as a sweep trial's set is: by the
one evaluation routine (:mod:`orchestrator.evaluation.sets`), configured by the same
``evaluation:`` block (:mod:`orchestrator.spec.evaluate_file`), its rows in the sweep schema, so
``ddx report`` and ``ddx leaderboard`` read the folder. Alongside every set, under the same
protocol: a **random real subset of the same size** (the same images per class, from the real
training split with ``baseline_seed``; one per distinct IPC, written as DD-Ranking's baseline
objective), **hard-label** students of every set when the protocol's labels are soft
(DD-Ranking's HLR needs Acc(set, hard)), the **full-data reference** unless turned off, and with
``evaluation.ars`` every set again with augmentation off. What the label modes need (a teacher
for soft labels) goes through the prerequisite machinery a sweep uses. Work already in the
results folder (``ok`` rows of the same protocol) is not run again (:mod:`orchestrator.evaluation.external_run`).

Sets in ZCA space are evaluated against real data whitened the same way (``dataset.zca: true``,
their baseline and reference too; default folder ``evaluate-<preset>-zca``): one run holds sets of
one data space. Under a protocol that trains with the set's learned learning rate
(``lr_from_set``) every set must carry one, and the random baseline of an IPC is trained with the
rate of the sets it is compared with (one baseline per distinct rate).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from methods.datasets import DatasetError, cached_dataset
from methods.datasets.options import DatasetOptions
from methods.evaluation.dd_ranking import RANDOM_OBJECTIVE
from methods.evaluation.external_sets import LoadedSet, random_subset_payload
from methods.evaluation.options import LEARNED_LABELS_KEY, LEARNED_LR_KEY, relabelled
from methods.evaluation.protocol import Protocol
from methods.evaluation.published_sets import EXPERIMENT_FORMATS, FORMATS, load_sets
from methods.evaluation.real_training_options import RealTrainSettings
from methods.evaluation.set_spaces import SPACES, SetError
from methods.parameterizations.base import Payload
from methods.prerequisites import dataset_identity
from methods.registry import PRESETS
from orchestrator.errors import UserError
from orchestrator.evaluation.jobs import StudentPlan
from orchestrator.evaluation.tasks import TaskResources
from orchestrator.provenance import versions
from orchestrator.spec.checks import arch_problem
from orchestrator.storage.artifacts import content_key
from orchestrator.storage.locations import is_uri, join
from orchestrator.storage.results import ResultStore, Row
from orchestrator.storage.staging import staged

#: evaluation seeds when neither the command nor the preset says
DEFAULT_SEEDS = 3
#: student networks when neither the command nor the preset says
DEFAULT_ARCHS = ("convnet",)


@dataclass
class EvaluateRequest:
    """Everything ``ddx evaluate`` was asked (also written to ``<out>/evaluate.json``): the sets,
    the validated configuration (:data:`orchestrator.spec.evaluate_file.EvaluateSpec`) and the
    options of the sets themselves."""

    sets: list[str]
    spec: Any  # an EvaluateSpec
    names: list[str] | None = None  # one per set; default the file/folder name
    space: str | None = None  # the sets' space where their files do not say (or to override the format's default)
    baseline_seed: int = 0
    reference: bool = True
    seed: int = 0  # the first evaluation seed
    format: str = "auto"  # how the sets are read (methods.evaluation.published_sets.FORMATS)
    experiment: int | None = None  # DatasetCondensation files: only this experiment (default: each one)
    data_zca: bool = False  # set by plan(): the sets are ZCA-whitened, so is the real data

    @property
    def preset(self) -> str:
        return str(self.spec.evaluation.preset)

    @property
    def out(self) -> str:
        zca = "-zca" if self.data_zca else ""
        return self.spec.out or join(self.spec.storage, f"evaluate-{self.preset}{zca}")

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
        """The real data the sets are evaluated against (ZCA-whitened for ZCA-space sets)."""
        opts = self.spec.dataset.options()
        return replace(opts, zca=True) if self.data_zca and not opts.zca else opts

    def protocol(self) -> Protocol:
        return self.spec.evaluation.protocol()

    def students(self) -> StudentPlan:
        """The block's students, with the preset's networks, seeds and label mode where it gives none."""
        ev, given = self.spec.evaluation, self.spec.evaluation.model_fields_set
        preset = PRESETS.get(self.preset)
        primary = str(preset.settings.get("label_mode", "hard"))  # the protocol's own label regime
        own = (primary, "hard") if primary == "soft" else (primary,)  # hard students too: DD-Ranking's HLR
        modes = tuple(ev.label_mode) if "label_mode" in given else own
        archs = tuple(ev.archs) if "archs" in given else tuple(preset.archs or DEFAULT_ARCHS)
        n = ev.seeds if "seeds" in given else (preset.seeds or DEFAULT_SEEDS)
        return StudentPlan(
            archs=archs,
            seeds=tuple(self.seed + i for i in range(n)),
            label_modes=modes,
            resolutions=tuple(ev.resolutions) if ev.resolutions else None,
            arch_epochs=tuple(sorted(ev.arch_epochs.items())),
        )

    def resources(self) -> TaskResources:
        r = self.spec.resources
        return TaskResources(r.eval_cpus, r.eval_gpus, r.eval_retries)

    def prerequisite_options(self, name: str) -> Any:
        """The options of prerequisite ``name``: its block as given, or its defaults."""
        block = getattr(self.spec, name, None)
        from orchestrator.spec.model import PREREQUISITE_BLOCKS

        return (block or PREREQUISITE_BLOCKS[name]()).options()

    def reference_settings(self) -> RealTrainSettings | None:
        """The full-data reference's training settings (None: no reference rows)."""
        if not self.reference:
            return None
        block = self.spec.evaluation.reference
        return block.options() if block is not None else RealTrainSettings()

    def record(self) -> dict[str, Any]:
        """What ``evaluate.json`` holds."""
        return {
            "sets": self.sets,
            "names": self.names,
            "space": self.space,
            "format": self.format,
            "experiment": self.experiment,
            "data_zca": self.data_zca,
            "baseline_seed": self.baseline_seed,
            "reference": self.reference,
            "seed": self.seed,
            "config": self.spec.model_dump(mode="json", exclude_none=True),
        }


@dataclass
class Unit:
    """One set to evaluate (a loaded set or a random baseline), its row columns and resolutions;
    ``labels``: what its hard-mode students train on (``hard`` or ``learned_soft``)."""

    key: str
    payload: Payload
    columns: Row
    resolutions: tuple[int, ...]
    labels: str = "hard"

    @property
    def ipc(self) -> int:
        return int(self.payload["config"]["shape"]["ipc"])

    @property
    def objective(self) -> str:
        return str(self.columns["objective"])


@dataclass
class Plan:
    request: EvaluateRequest
    protocol: Protocol
    students: StudentPlan
    units: list[Unit]
    data_summary: str
    resolutions: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the readers assumed, one line each


def _user(err: Exception, **where: str) -> UserError:
    text = str(err).strip().splitlines()
    return UserError(text[-1] if text else type(err).__name__, **where)


def payload_key(payload: Payload) -> str:
    """A content hash of a set: its configuration, every tensor's bytes, and what it carries that
    students train with (learned soft labels and learning rate: the same images with other labels
    are another set)."""
    h = hashlib.sha256(json.dumps(payload["config"], sort_keys=True).encode())
    extra = payload.get("extra", {})
    tensors = {**payload["state"]}
    if extra.get(LEARNED_LABELS_KEY) is not None:
        tensors[f"extra.{LEARNED_LABELS_KEY}"] = extra[LEARNED_LABELS_KEY]
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    if extra.get(LEARNED_LR_KEY) is not None:
        h.update(f"{LEARNED_LR_KEY}={float(extra[LEARNED_LR_KEY])!r}".encode())
    return h.hexdigest()[:16]


def _check_request(req: EvaluateRequest) -> None:
    if not req.sets:
        raise UserError("give one or more synthetic sets (.pt files, image folders or ddx sets)", key="SET")
    if req.names is not None and len(req.names) != len(req.sets):
        raise UserError(f"{len(req.names)} names for {len(req.sets)} sets", key="--name")
    if req.space is not None and req.space not in SPACES:
        raise UserError(f"must be one of {', '.join(SPACES)}, got {req.space!r}", key="--space")
    if req.format not in FORMATS:
        raise UserError(f"must be one of {', '.join(FORMATS)}, got {req.format!r}", key="--format")
    if req.experiment is not None and req.experiment < 0:
        raise UserError(f"an experiment's index (0, 1, …), got {req.experiment}", key="--experiment")
    students = req.students()
    for mode in students.label_modes:  # the protocol must train every student it asks for
        try:
            req.protocol().settings(mode, req.dataset_options().name)
        except (ValueError, TypeError) as err:
            raise _user(err, key="evaluation") from None


def _check_archs(archs: tuple[str, ...], resolutions: list[int], given: bool) -> None:
    """Every student network × every resolution it will see can be built (the sweep file's check,
    :func:`orchestrator.spec.checks.arch_problem`): a VGG-11 at 8 px failed every row after Ray's start-up."""
    for arch in archs:
        for res in resolutions:
            problem = arch_problem(arch, res)
            if problem:
                fix = "a larger --resolutions" if given else "--resolutions (the default is each set's own)"
                raise UserError(f"{problem}; drop it or pass {fix}", key="--archs")


def _data(req: EvaluateRequest) -> Any:
    try:
        return cached_dataset(staged(req.dataset_options()))
    except (DatasetError, OSError, TypeError) as err:
        raise _user(err, key="--dataset") from None


def _load(req: EvaluateRequest, data: Any) -> list[tuple[str, LoadedSet]]:
    """Every set of the request, with the path it came from (a DatasetCondensation file gives several)."""
    out: list[tuple[str, LoadedSet]] = []
    names: set[str] = set()
    for i, path in enumerate(req.sets):
        try:
            sets = load_sets(path, data, req.format, req.space, req.names[i] if req.names else None, req.experiment)
        except SetError as err:
            raise _user(err, where=path) from None
        for loaded in sets:
            if loaded.name == RANDOM_OBJECTIVE:
                raise UserError(f"the name {RANDOM_OBJECTIVE!r} is the baseline's; pass --name", where=path)
            if loaded.name in names:
                raise UserError(f"two sets are named {loaded.name!r}; pass --name for each set", where=path)
            names.add(loaded.name)
            out.append((path, loaded))
    if req.experiment is not None and not any(s.format in EXPERIMENT_FORMATS for _, s in out):
        raise UserError("applies to DatasetCondensation files (res_*.pt), and none is given", key="--experiment")
    return out


def _data_space(req: EvaluateRequest, loaded: list[tuple[str, LoadedSet]]) -> bool:
    """Whether the sets are ZCA-whitened (then so is the real data); one run holds one data space."""
    whitened = [path for path, s in loaded if s.space == "zca"]
    other = next(((path, s.space) for path, s in loaded if s.space != "zca"), None)
    if whitened and other is not None:
        raise UserError(
            f"a set in {other[1]} space beside ZCA-whitened ones ({whitened[0]}): the real data is whitened for "
            "ZCA sets only; evaluate them in separate runs",
            where=other[0],
        )
    return bool(whitened)


def plan(req: EvaluateRequest) -> Plan:
    """Check the request, load the real data and every set; :class:`UserError` for any bad input."""
    _check_request(req)
    data = _data(req)
    loaded = _load(req, data)
    if _data_space(req, loaded) and not req.data_zca:
        req.data_zca = True
        data = _data(req)  # the baselines are drawn from the whitened data
    students = req.students()
    protocol = req.protocol()
    uses_lr = any(protocol.settings(m, data.name).lr_from_set for m in students.label_modes)
    units: list[Unit] = []
    notes: list[str] = []
    relabels = any(relabelled(m) for m in students.label_modes)
    by_ipc: dict[tuple[int, float | None], set[int]] = {}
    first_with: dict[tuple[int, float | None], str] = {}  # (IPC, learned lr) → the first set that has it
    for path, s in loaded:
        notes += [f"{s.name}: {note}" for note in s.notes]
        if s.layout and not relabels:
            notes.append(
                f"{s.name}: {s.layout} recovered images are relabelled by a teacher in their own evaluation; this "
                "protocol trains on class labels (a soft-label preset relabels: sre2l_soft, sre2l_imagenet, cfm_code)"
            )
        if uses_lr and s.learned_lr is None:
            raise UserError(
                "the protocol trains with the set's learned learning rate (evaluation.lr_from_set) but this set "
                "carries none; drop lr_from_set or give a set that learned one (MTT/DATM syn_lr_best.pt, a tm set)",
                where=path,
            )
        resolutions = tuple(students.resolutions or (s.resolution,))
        key = (s.ipc, s.learned_lr if uses_lr else None)
        by_ipc.setdefault(key, set()).update(resolutions)
        first_with.setdefault(key, path)
        units.append(_set_unit(s, resolutions, req))
    every = sorted({r for res in by_ipc.values() for r in res})
    _check_archs(students.archs, every, given=bool(students.resolutions))
    for (ipc, lr), res in sorted(by_ipc.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0)):
        try:
            payload = random_subset_payload(data, ipc, req.baseline_seed, lr)
        except SetError as err:  # the set is larger than the real data it is compared with
            why = f"{err}; the random-real baseline at this set's IPC cannot be drawn"
            raise UserError(why, where=first_with[(ipc, lr)]) from None
        units.append(_baseline_unit(payload, ipc, lr, tuple(sorted(res)), req))
    return Plan(req, protocol, students, units, data.summary(), every, notes)


def _common(req: EvaluateRequest, key: str, payload: Payload) -> Row:
    shape = payload["config"]["shape"]
    from methods.parameterizations import from_payload

    param = from_payload(payload)
    return {
        "sweep": req.name,
        "trial_id": "evaluate",
        "trial_key": key,
        "parameterization": payload["config"]["name"],
        "dataset": req.dataset_options().name,
        "ipc": int(shape["ipc"]),
        "budget_scalars": int(param.config.shape.budget_scalars),
        "instances_per_class": int(param.per_class),
        "distill_resolution": int(shape["resolution"]),
        "distill_workers": None,
        "distill_seconds": None,
        "config_hash": key,
        "synthetic_path": ResultStore(req.out).synthetic_path(key),
        **versions(),
    }


def _set_unit(loaded: LoadedSet, resolutions: tuple[int, ...], req: EvaluateRequest) -> Unit:
    key = payload_key(loaded.payload)
    cols = {
        **_common(req, key, loaded.payload),
        "objective": loaded.name,
        "distill_seed": None,
        "set_source": loaded.source,
        "set_format": loaded.format,
        "set_space": loaded.space,
        "set_lr": loaded.learned_lr,
        "baseline_seed": None,
    }
    return Unit(key, loaded.payload, cols, resolutions, loaded.labels)


def _baseline_unit(
    payload: Payload, ipc: int, lr: float | None, resolutions: tuple[int, ...], req: EvaluateRequest
) -> Unit:
    identity: dict[str, Any] = {
        "random_subset": dataset_identity(req.dataset_options()),
        "ipc": ipc,
        "seed": req.baseline_seed,
    }
    if lr is not None:  # trained with the learned rate of the sets it is compared with
        identity["lr"] = lr
    key = "random-" + content_key(identity)[:12]
    with_lr = f", trained with learned lr {lr:g}" if lr is not None else ""
    cols = {
        **_common(req, key, payload),
        "objective": RANDOM_OBJECTIVE,
        "distill_seed": req.baseline_seed,
        "set_source": f"random real subset of the training split ({ipc} per class, seed {req.baseline_seed}{with_lr})",
        "set_format": RANDOM_OBJECTIVE,
        "set_space": "zca" if req.data_zca else "normalized",
        "set_lr": lr,
        "baseline_seed": req.baseline_seed,
    }
    return Unit(key, payload, cols, resolutions)


__all__ = ["DEFAULT_ARCHS", "DEFAULT_SEEDS", "EvaluateRequest", "Plan", "Unit", "payload_key", "plan"]
