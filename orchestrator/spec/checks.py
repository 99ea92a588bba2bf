"""Every check of a sweep beyond its field types, before anything runs; each failure one line with its key.

Trials (:mod:`orchestrator.spec.trials`: every value fits its field, every combination builds a
configuration), blocks (their own rules), the scheduler and search algorithm, the dataset root,
every network at every resolution it will see, storage budgets and the data's class sizes.
Nothing here names a method: what a component needs it declares (its entry, its options' types
and rules), and these checks read those declarations.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

from methods.datasets.options import train_images_left
from methods.distill.trial import option_classes
from methods.evaluation.options import EvalSettings
from methods.networks.info import resolve_arch
from methods.parameterizations.options import SetShape, instances_per_class
from methods.registry import DATASETS, NETWORKS, PARAMETERIZATIONS
from orchestrator.errors import SpecError
from orchestrator.spec.messages import key_path
from orchestrator.spec.model import MAX_COMBINATIONS, PREREQUISITE_BLOCKS, SweepBase
from orchestrator.spec.schema import named_kind, resolve_options
from orchestrator.spec.trials import check_hyper, check_trials, needed_prerequisites, where
from orchestrator.storage import time_limit
from orchestrator.storage.uris import refused, uri_problem


def distill_resolution(spec: SweepBase) -> int | None:
    """The resolution sets are distilled at: ``dataset.resolution`` or the dataset's native size (None: unknown)."""
    if spec.dataset.resolution:
        return spec.dataset.resolution
    return DATASETS.get(spec.dataset.name).native_resolution


def arch_problem(arch: str, resolution: int) -> str | None:
    """Why network ``arch`` cannot take ``resolution``-px inputs, or None (its entry's minimum)."""
    actual = resolve_arch(arch, resolution)
    net = NETWORKS.get(actual)
    if net.accepts(resolution):
        return None
    shown = arch if actual == arch else f"{arch} ({actual} at {resolution} px)"
    return f"{shown} needs inputs of at least {net.minimum(resolution)} px, got {resolution} px"


def _resolution_source(spec: SweepBase) -> str:
    if spec.dataset.resolution:
        return "dataset.resolution"
    return f"{spec.dataset.name}'s native size"


def _check_archs(spec: SweepBase, objectives: list[str], params: list[str], needs: dict[str, list[str]]) -> None:
    """Every network × the resolution it will see: evaluation, distillation (any option field that
    names a network), prerequisites."""
    r = distill_resolution(spec)
    ev = spec.evaluation
    for arch in ev.arch_epochs:
        if arch not in ev.archs:
            raise SpecError(
                f"{arch!r} is not one of evaluation.archs ({', '.join(ev.archs)}); add it there or drop it",
                key=key_path("evaluation", "arch_epochs", arch),
            )
    eval_resolutions = ev.resolutions or ([r] if r else [])
    for i, arch in enumerate(ev.archs):
        for res in eval_resolutions:
            problem = arch_problem(arch, res)
            if problem:
                fix = (
                    "evaluate it at a larger evaluation.resolutions"
                    if ev.resolutions
                    else (f"set evaluation.resolutions (the default is {_resolution_source(spec)})")
                )
                raise SpecError(f"{problem}; drop it or {fix}", key=key_path("evaluation", "archs", i))
    if r is None:
        return
    classes = {c for o in objectives for p in params for c in option_classes(o, p).values()}
    for cls in sorted(classes, key=lambda c: c.__name__):
        for field in dataclasses.fields(cls):
            if named_kind(cls, field.name) != "network":
                continue
            given = spec.hyper_values(field.name)
            for i, arch in enumerate(given or [field.default]):
                problem = arch_problem(arch, r)
                if problem:
                    at = where(spec, field.name, i if field.name in spec.search else None)
                    default = "" if given else f" (the default is {field.default})"
                    raise SpecError(
                        f"{problem} ({_resolution_source(spec)}); pick another {field.name}{default}", key=at
                    )
    for name in needs:
        block = spec.prerequisite(name)
        options = type(block).__options__
        for field_name in type(block).__option_fields__:
            if named_kind(options, field_name) == "network":
                problem = arch_problem(getattr(block, field_name), r)
                if problem:
                    raise SpecError(
                        f"{problem} ({_resolution_source(spec)}, where the {name} trains); pick another",
                        key=key_path(name, field_name),
                    )


def _check_algorithm(spec: SweepBase) -> None:
    if spec.algorithm == "optuna":
        kinds = {d.kind for d in spec.search.values()}
        if "grid" in kinds and kinds != {"grid"}:
            raise SpecError(
                "optuna runs a grid only when every domain is a grid (GridSampler); use choice for the "
                "others or algorithm: grid",
                key="search",
            )


def _uri_problem(uri: str, timeout: float) -> str | None:
    """Why ``uri`` is not a reachable, existing location (pyarrow filesystems), or None."""
    if (problem := refused(uri, timeout=min(2.0, timeout))) is not None:
        return f"cannot reach {uri!r}: {problem}"  # at once: the S3 client retries a refused connection ~14 s

    def missing() -> bool:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(uri)
        return fs.get_file_info(path).type == pafs.FileType.NotFound

    try:
        if time_limit.within(timeout, missing, name="ddx-uri-probe"):
            return f"{uri!r} does not exist (upload the data or fix the URI)"
    except time_limit.NoAnswer:
        return f"no answer from {uri!r} within {timeout:g} s (check the endpoint and the network)"
    except Exception as err:  # any filesystem or URI error is the user's input
        first = (str(err).strip().splitlines() or [err.__class__.__name__])[0]
        return f"cannot reach {uri!r}: {first}"
    return None


def _check_dataset(spec: SweepBase) -> None:
    ds = spec.dataset
    entry = DATASETS.get(ds.name)
    if entry.needs_root and not ds.root:
        raise SpecError(
            f"dataset {ds.name!r} needs a root folder (or a URI such as s3://bucket/data)", key="dataset.root"
        )
    if not ds.root:
        return
    if "://" in ds.root:
        problem = uri_problem(ds.root) or _uri_problem(ds.root, time_limit.uri_timeout_s())
        if problem:
            raise SpecError(problem, key="dataset.root")
    elif not Path(ds.root).expanduser().exists():
        raise SpecError(f"folder {ds.root!r} does not exist (download the data or fix the path)", key="dataset.root")
    else:  # a local root's layout (a URI root is staged onto each node first; its loader checks it there)
        problem = entry.layout_problem(Path(ds.root).expanduser())
        if problem:
            raise SpecError(f"{problem}; point it at the dataset's folder", key="dataset.root")


def _check_budget(spec: SweepBase, params: list[str]) -> None:
    """Every swept combination of ``ipc`` and parameterization options must fit ≥ 1 instance per class.

    Uses the dataset's known shape (no data is loaded); datasets whose size depends on the files
    (an ``imagefolder`` without ``dataset.resolution``) are checked when the set is built.
    """
    channels = DATASETS.get(spec.dataset.name).channels
    resolution = distill_resolution(spec)
    if resolution is None:
        return
    for pname in params:
        entry = PARAMETERIZATIONS.get(pname)
        declared = [f.name for f in dataclasses.fields(entry.options)]
        keys = [k for k in declared if spec.hyper_values(k)]  # declaration order: the main knob first
        pools = [spec.hyper_values(k) for k in keys]
        if math.prod(len(p) for p in pools) > MAX_COMBINATIONS:
            continue
        for ipc in spec.hyper_values("ipc"):
            for combo in itertools.product(*pools):
                _check_one_budget(spec, pname, int(ipc), dict(zip(keys, combo, strict=True)), channels, resolution)


def _check_one_budget(
    spec: SweepBase, pname: str, ipc: int, chosen: dict[str, Any], channels: int, resolution: int
) -> None:
    entry = PARAMETERIZATIONS.get(pname)
    shape = SetShape(num_classes=1, ipc=ipc, channels=channels, resolution=resolution)

    def need_of(values: dict[str, Any]) -> int:
        return entry.scalars(shape, resolve_options(entry.options, values))

    try:
        need = need_of(chosen)
    except ValueError as err:  # an option the parameterization rejects
        raise SpecError(str(err), key=where(spec, next(iter(chosen), "parameterization"))) from None
    if instances_per_class(shape, need) >= 1:
        return
    sizing = [k for k in chosen if need_of({x: v for x, v in chosen.items() if x != k}) != need]
    blame = (sizing or list(chosen) or ["ipc"])[0]
    values = ", ".join(f"{k}={chosen[k]}" for k in sizing)
    raise SpecError(
        f"{pname}{' with ' + values if values else ''} fits 0 instances per class at ipc={ipc} on "
        f"{spec.dataset.name} ({channels}×{resolution}×{resolution}: {shape.budget_scalars} scalars per class; "
        f"one instance needs {need}); raise ipc or shrink the instance",
        key=where(spec, blame),
    )


def _check_ipc_fits_data(spec: SweepBase) -> None:
    """No swept ``ipc`` asks for more images per class than the training split keeps (a set that
    large distils nothing); datasets whose size depends on the files are checked when loaded."""
    ds = DATASETS.get(spec.dataset.name)
    if ds.smallest_class is None:
        return
    left = train_images_left(ds.smallest_class, spec.dataset_options(), ds.test_split)
    for index, ipc in enumerate(spec.hyper_values("ipc")):
        if int(ipc) > left:
            raise SpecError(
                f"ipc {ipc} is more than the {max(left, 0)} training images per class that {ds.name} keeps (its "
                f"smallest class, after the dataset block's carves and limits); use ipc ≤ {max(left, 0)}",
                key=where(spec, "ipc", index if "ipc" in spec.search else None),
            )


def _check_block_rules(spec: SweepBase) -> None:
    """The rules an option dataclass checks across its fields (``__post_init__``), for each block."""
    ev = spec.evaluation
    fields = {k: getattr(ev, k) for k in type(ev).__option_fields__}
    for mode in ev.label_modes:
        try:
            resolve_options(EvalSettings, {**fields, "label_mode": mode})
        except (ValueError, TypeError) as err:
            raise SpecError(f"{err} (label_mode {mode})", key="evaluation") from None
    blocks = [("evaluation.reference", ev.reference)] + [(p, getattr(spec, p, None)) for p in PREREQUISITE_BLOCKS]
    for at, block in blocks:
        if block is not None:
            try:
                block.options()
            except (ValueError, TypeError) as err:
                raise SpecError(str(err), key=at) from None


def _check_scheduler(spec: SweepBase) -> None:
    """An early-stopping scheduler reads probe accuracies: every trial must report them."""
    if spec.scheduler is None:
        return
    probes = spec.hyper_values("probe_every")
    if not probes or any(not isinstance(v, int) or v <= 0 for v in probes):
        raise SpecError(
            f"{spec.scheduler.name} stops trials on their probe accuracy; set method.probe_every to a positive "
            "number of distillation steps (e.g. 100), or remove the scheduler",
            key="scheduler",
        )


def validate_spec(spec: SweepBase) -> None:
    """Every check beyond field types; raises :class:`SpecError` with the key path."""
    objectives, params = check_hyper(spec)
    _check_block_rules(spec)
    check_trials(spec)
    _check_scheduler(spec)
    _check_algorithm(spec)
    _check_dataset(spec)
    _check_archs(spec, objectives, params, needed_prerequisites(spec))
    _check_budget(spec, params)
    _check_ipc_fits_data(spec)


__all__ = ["arch_problem", "distill_resolution", "validate_spec"]
