"""What ``ddx evaluate`` is asked: the sweep file's own blocks, read the same way.

An evaluation configuration holds ``dataset:``, ``evaluation:`` (the same block a sweep file
has: its ``preset`` names the protocol), ``resources:`` (``eval_cpus``/``eval_gpus``/
``eval_retries``), the prerequisite blocks the label modes need (``teacher:`` for soft labels, a
plugin's …), and where the results go (``storage``, ``out``). It comes from an evaluation YAML
(``--config``), the command's shortcut flags and ``--set KEY.PATH=VALUE`` — each written into
that one structure, then validated by the same models as a sweep file, so every setting has
one name, one type and one message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, create_model, field_validator

from orchestrator.errors import SpecError
from orchestrator.spec.messages import describe_error, key_path
from orchestrator.spec.model import (
    EMPTY_LOCATION,
    PREREQUISITE_BLOCKS,
    DatasetBlock,
    Evaluation,
    Resources,
    check_location,
)
from orchestrator.spec.schema import Strict
from orchestrator.spec.yaml_input import Document, parse_value, read_yaml
from orchestrator.storage.uris import uri_problem


class EvaluateBase(Strict):
    """The keys of an evaluation configuration other than the prerequisite blocks."""

    storage: str = "./ddx_results"  # where the results folder goes (without ``out``)
    out: str | None = None  # the results folder (default: <storage>/evaluate-<preset>)
    dataset: DatasetBlock  # type: ignore[valid-type]
    evaluation: Evaluation = Field(default_factory=Evaluation)  # type: ignore[valid-type]
    resources: Resources = Field(default_factory=Resources)

    @field_validator("storage", "out")
    @classmethod
    def _location(cls, v: str | None) -> str | None:
        return v if v is None else check_location(v)


#: a whole evaluation configuration: :class:`EvaluateBase` plus one optional block per prerequisite
EvaluateSpec = create_model(
    "EvaluateSpec",
    __base__=EvaluateBase,
    __module__=__name__,
    __doc__="What ddx evaluate is asked (docs/evaluation.md).",
    **{name: (block | None, None) for name, block in PREREQUISITE_BLOCKS.items()},  # type: ignore[dict-item]
)


def set_path(data: Document, path: str, value: Any, where: str = "--set") -> None:
    """Write ``value`` at the dotted key ``path`` of ``data`` (``evaluation.reference.epochs``)."""
    keys = [k for k in path.split(".") if k]
    if not keys or any(not k.replace("_", "").isalnum() for k in keys):
        raise SpecError(
            f"expected KEY.PATH=VALUE with a dotted key (e.g. evaluation.epochs=10), got {path!r}", key=where
        )
    node = data
    for k in keys[:-1]:
        child = node.get(k)
        if child is None or child is True:
            child = {}
        if not isinstance(child, dict):
            raise SpecError(f"{key_path(*keys[: keys.index(k) + 1])} is not a block of keys", key=where)
        node[k] = child
        node = child
    node[keys[-1]] = value


def parse_set(pair: str) -> tuple[str, Any]:
    """``KEY.PATH=VALUE`` → (path, value); VALUE is YAML, read as a sweep file's values are."""
    if "=" not in pair:
        raise SpecError(f"expected KEY.PATH=VALUE, got {pair!r}", key="--set")
    path, text = pair.split("=", 1)
    try:
        return path.strip(), parse_value(text)
    except SpecError as err:
        raise SpecError(err.message, key=f"--set {path.strip()}") from None


def parse_evaluate(data: Document, where: str = "ddx evaluate") -> Any:
    """Validate an evaluation configuration; one :class:`SpecError` (key path, fix) for any mistake."""
    ev = data.get("evaluation")
    if not isinstance(ev, dict) or not ev.get("preset"):
        raise SpecError("required: name the protocol (--preset, or evaluation.preset)", key="evaluation.preset")
    for key in ("out", "storage"):
        if isinstance(data.get(key), str) and not data[key].strip():
            raise SpecError(EMPTY_LOCATION, key=f"--{key}")
    try:
        spec = EvaluateSpec.model_validate(data)
    except ValidationError as err:
        loc, msg = describe_error(err.errors()[0], EvaluateSpec)
        raise SpecError(msg, where=where, key=key_path(*loc) or None) from None
    root = spec.dataset.root
    if root and (problem := uri_problem(root)) is not None:  # a URI root is read on every node: judge it now
        raise SpecError(problem, where=where, key="dataset.root")
    return spec


def load_evaluate(config: Path | None) -> Document:
    """The data of an evaluation YAML (safe, duplicate keys refused), or an empty configuration."""
    if config is None:
        return {}
    data = read_yaml(config)
    if not isinstance(data, dict):
        raise SpecError("the file must hold a mapping of keys (dataset, evaluation, …)", where=str(config))
    return dict(data)


__all__ = ["EvaluateBase", "EvaluateSpec", "load_evaluate", "parse_evaluate", "parse_set", "set_path"]
