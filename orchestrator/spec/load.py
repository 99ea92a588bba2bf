"""Reading a sweep file: YAML → the spec model → every check; one line (file, key path, fix) per mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from methods.registry import PRESETS
from orchestrator.errors import SpecError
from orchestrator.spec.checks import validate_spec
from orchestrator.spec.messages import describe_error, key_path, show
from orchestrator.spec.model import DatasetBlock, SweepBase, SweepSpec
from orchestrator.spec.yaml_input import Document


def apply_eval_preset(data: Document) -> None:
    """``evaluation.preset`` fills every evaluation key the file does not give (:mod:`methods.evaluation.presets`).

    Values for the sweep's dataset (and its ``ipc`` when fixed) are taken; the preset's student
    networks and seeds fill ``archs``/``seeds`` when it fixes them.
    """
    ev = data.get("evaluation")
    if not isinstance(ev, dict) or not isinstance(ev.get("preset"), str) or ev["preset"] not in PRESETS:
        return  # no preset, or an unknown one (the field check names the known presets)
    from methods.evaluation.presets import preset_values

    preset = PRESETS.get(ev["preset"])
    ds = data.get("dataset")
    dataset = ds.get("name", DatasetBlock.model_fields["name"].default) if isinstance(ds, dict) else None
    method = data.get("method")
    ipc = method.get("ipc") if isinstance(method, dict) else None
    fixed_ipc = ipc if isinstance(ipc, int) and not isinstance(ipc, bool) else None
    by_ipc = preset.batch_size_by_ipc.get(dataset, {}) if isinstance(dataset, str) else {}
    if by_ipc and fixed_ipc is None and "batch_size" not in ev:
        table = ", ".join(f"ipc {k}: {v}" for k, v in by_ipc.items())
        raise SpecError(
            f"preset {preset.name!r} sets the batch size per IPC on {dataset} ({table}) but ipc is not fixed; "
            "set evaluation.batch_size or run one sweep per ipc (method.ipc)",
            key="evaluation.preset",
        )
    values = preset_values(preset.name, dataset if isinstance(dataset, str) else None, fixed_ipc)
    filled = {k: v for k, v in values.items() if k not in ev}
    if preset.archs is not None and "archs" not in ev:
        filled["archs"] = list(preset.archs)
    if preset.seeds is not None and "seeds" not in ev:
        filled["seeds"] = preset.seeds
    data["evaluation"] = {**ev, **filled}


def _resolve_root(data: Document, base_dir: Path) -> None:
    """A relative local ``dataset.root`` is relative to the spec file's folder (made absolute here)."""
    ds = data.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("root"), str) and ds["root"] and "://" not in ds["root"]:
        root = Path(ds["root"]).expanduser()
        if not root.is_absolute():
            data["dataset"] = {**ds, "root": str((base_dir / root).resolve())}


def parse_spec(data: Any, where: str = "<spec>", base_dir: str | Path | None = None) -> SweepBase:
    """Validate an already-parsed YAML document.

    ``base_dir``: the folder a relative ``dataset.root`` is relative to (:func:`load_spec`
    passes the spec file's folder; None: the current directory).
    """
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"{type(data).__name__} {show(data)}"
        raise SpecError(
            f"the file must hold a mapping of keys (name, dataset, method, search, …), not {got}", where=where
        )
    data = dict(data)
    if base_dir is not None:
        _resolve_root(data, Path(base_dir))
    try:
        apply_eval_preset(data)
        spec = SweepSpec.model_validate(data)
    except SpecError as err:
        raise SpecError(err.message, where=where, key=err.key) from None
    except ValidationError as err:
        loc, msg = describe_error(err.errors()[0], SweepSpec)
        raise SpecError(msg, where=where, key=key_path(*loc) or None) from None
    try:
        validate_spec(spec)
    except SpecError as err:
        raise SpecError(err.message, where=where, key=err.key) from None
    return spec


def load_spec(path: str | Path) -> SweepBase:
    """Read a sweep file (safe YAML, duplicate keys rejected) and validate it; raises :class:`SpecError`.

    A relative ``dataset.root`` is resolved against the file's folder.
    """
    from orchestrator.spec.yaml_input import read_yaml

    path = Path(path)
    data = read_yaml(path)
    return parse_spec(data, where=str(path), base_dir=path.resolve().parent)


__all__ = ["apply_eval_preset", "load_spec", "parse_spec"]
