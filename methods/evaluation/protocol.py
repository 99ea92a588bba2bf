"""Evaluation protocols: the settings every student of an evaluation trains with, and their names.

A protocol is a preset (:mod:`methods.evaluation.presets`) and the
:class:`~methods.evaluation.options.EvalSettings` values that override it — :class:`Protocol`,
what sweeps and ``ddx evaluate`` hand their evaluation tasks. :meth:`Protocol.settings` resolves
it for a dataset, an IPC (presets whose batch size follows it), a label mode and a network's own
epochs; :meth:`Protocol.name` is the row's ``protocol`` column: the preset's name when nothing
differs from it, else ``custom-<hash>`` of the settings, so rows are ranked together exactly when
their students trained alike (docs/evaluation.md). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from methods.evaluation.options import EvalSettings
from methods.evaluation.presets import preset_values
from methods.records import OptionValues
from methods.registry import PRESETS

_FIELDS = {f.name for f in dataclasses.fields(EvalSettings)}


def build_eval_settings(
    values: Mapping[str, Any] | None = None,
    *,
    preset: str | None = None,
    dataset: str | None = None,
    ipc: int | None = None,
) -> EvalSettings:
    """Settings = preset values (for ``dataset``/``ipc``) updated with ``values``; explicit keys win.

    ``values`` may carry ``preset`` itself (as a sweep's ``evaluation`` block does). Pass only the
    keys that were set explicitly: a key present in ``values`` always overrides the preset.
    Unknown keys raise.
    """
    values = dict(values or {})
    name = values.pop("preset", None) or preset
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown evaluation settings {unknown}; known: {', '.join(sorted(_FIELDS))}")
    base = preset_values(name, dataset, ipc) if name else {}
    merged = {**base, **values}
    if name:
        merged["preset"] = name
    return EvalSettings(**merged)


def settings_from_dict(values: Mapping[str, Any]) -> EvalSettings:
    """The inverse of :meth:`EvalSettings.to_dict` (a full dict; ``preset`` recorded, not re-applied)."""
    return EvalSettings(**dict(values))


# --- protocols in result rows -------------------------------------------------------------------
#: fields that are not part of a protocol's identity: the preset's *name* (the values are
#: compared instead), the label regime (a separate axis: a soft-label protocol's hard-label
#: companion rows — which HLR needs — belong to the same protocol), and settings that change
#: what is measured or how memory is laid out, not what is trained (``track_test``,
#: ``check_every``: only extra test/val checkpoints; ``channels_last``: the same arithmetic)
NOT_PROTOCOL = ("preset", "label_mode", "track_test", "check_every", "channels_last")
#: the settings :func:`augmentation_off` switches off (DD-Ranking's ARS "no augmentation" runs)
AUGMENTATION_FIELDS = {"augment": "none", "soft_augment": "none", "mix": "none"}
CUSTOM = "custom"
NOAUG_SUFFIX = ":noaug"


def student_settings(
    values: Mapping[str, Any], label_mode: str, dataset: str | None = None, ipc: int | None = None
) -> EvalSettings:
    """The settings one student of ``label_mode`` trains with, from a protocol's values.

    ``values`` are :class:`EvalSettings` values (a full dict, or preset + overrides as
    :func:`build_eval_settings` takes them). A hard-label student trains under the DSA
    ``augment`` strategy and cross-entropy; CutMix/Mixup (``mix``) relabel a mixed view with
    the teacher and so exist only for soft labels: a hard-label student of a mixing protocol
    (the ``syn-hard`` run DD-Ranking's HLR needs) gets ``mix: none``. Nothing else changes.
    A preset is resolved for ``dataset`` and ``ipc`` (explicit values win, so resolving a full
    set of values again changes nothing).
    """
    v = dict(values)
    v["label_mode"] = label_mode
    if label_mode == "hard":
        v["mix"] = "none"
    return build_eval_settings(v, dataset=dataset, ipc=ipc)


def protocol_identity(values: Mapping[str, Any], dataset: str | None = None, ipc: int | None = None) -> OptionValues:
    """The values that define a protocol: resolved settings (preset + overrides, for ``dataset``
    and ``ipc``) without :data:`NOT_PROTOCOL`. Two rows are comparable exactly when these agree."""
    # resolved under soft labels, where every field (mix included) is valid; label_mode is not compared
    s = build_eval_settings({**dict(values), "label_mode": "soft"}, dataset=dataset, ipc=ipc)
    return {k: val for k, val in s.to_dict().items() if k not in NOT_PROTOCOL}


def augmentation_off(values: Mapping[str, Any]) -> OptionValues:
    """``values`` with every augmentation switched off (DSA, soft-label crops, CutMix/Mixup)."""
    return {**dict(values), **AUGMENTATION_FIELDS}


def _hash(identity: Mapping[str, Any]) -> str:
    body = json.dumps(dict(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:8]


def protocol_name(values: Mapping[str, Any], dataset: str | None = None, ipc: int | None = None) -> str:
    """The ``protocol`` column of a row evaluated with ``values`` (see docs/evaluation.md).

    * the preset's name when the settings were built from a preset and every value of
      :func:`protocol_identity` equals that preset's (for this dataset and IPC);
    * ``<name>:noaug`` when every augmentation is off (:data:`AUGMENTATION_FIELDS`, DD-Ranking's
      ARS runs) and the settings were built from a preset whose augmentation is not: ``<name>``
      is the name of the same settings with the preset's augmentation restored (the preset's
      name, or ``custom-<hash>``);
    * otherwise ``custom-<8 hex>``: a hash of the identity, so two custom rows share a name
      exactly when their settings agree (``eval_settings`` holds the values).
    """
    ident = protocol_identity(values, dataset, ipc)
    name = dict(values).get("preset")
    if name:
        reference = protocol_identity({"preset": name}, dataset, ipc)
        if ident == reference:
            return str(name)
        augmented = {k: reference[k] for k in AUGMENTATION_FIELDS}
        if all(ident[k] == v for k, v in AUGMENTATION_FIELDS.items()) and augmented != AUGMENTATION_FIELDS:
            return protocol_name({**dict(values), **augmented}, dataset, ipc) + NOAUG_SUFFIX
    return f"{CUSTOM}-{_hash(ident)}"


def settings_json(settings: EvalSettings) -> str:
    """The ``eval_settings`` column: every effective setting as canonical JSON."""
    return json.dumps(settings.to_dict(), sort_keys=True)


def settings_from_json(text: str) -> EvalSettings:
    """The inverse of :func:`settings_json`."""
    return settings_from_dict(json.loads(text))


def protocol_differences(values: Mapping[str, Any], dataset: str | None = None, ipc: int | None = None) -> OptionValues:
    """For settings built from a preset: the identity values that differ from it (what made it custom)."""
    name = dict(values).get("preset")
    if not name or name not in PRESETS:
        return {}
    ident = protocol_identity(values, dataset, ipc)
    ref = protocol_identity({"preset": name}, dataset, ipc)
    return {k: v for k, v in ident.items() if ref.get(k) != v}


@dataclass(frozen=True)
class Protocol:
    """How every student of an evaluation trains: ``preset`` and the settings ``values`` over it
    (``(field, value)`` pairs of :class:`EvalSettings`, never ``preset`` or ``label_mode``: a job's
    label mode is its own). Typed and hashable: it crosses processes as it is."""

    preset: str | None = None
    values: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted({k for k, _ in self.values} - (_FIELDS - {"preset", "label_mode"}))
        if unknown:
            raise ValueError(f"unknown evaluation settings {unknown}; known: {', '.join(sorted(_FIELDS))}")

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Protocol:
        """From a mapping of settings that may carry ``preset`` (and ``label_mode``, dropped)."""
        rest = {k: v for k, v in values.items() if k not in ("preset", "label_mode")}
        return cls(values.get("preset"), tuple(sorted(rest.items())))

    def as_values(self, epochs: int | None = None) -> OptionValues:
        """The settings as :func:`build_eval_settings` reads them (``epochs``: a network's own)."""
        out: OptionValues = dict(self.values)
        if self.preset is not None:
            out["preset"] = self.preset
        if epochs is not None:
            out["epochs"] = epochs
        return out

    def settings(
        self, label_mode: str, dataset: str | None = None, ipc: int | None = None, epochs: int | None = None
    ) -> EvalSettings:
        """What one student of ``label_mode`` trains with (:func:`student_settings`)."""
        return student_settings(self.as_values(epochs), label_mode, dataset, ipc)

    def name(self, dataset: str | None = None, ipc: int | None = None, epochs: int | None = None) -> str:
        """The rows' ``protocol`` column (:func:`protocol_name`)."""
        return protocol_name(self.as_values(epochs), dataset, ipc)

    def without_augmentation(self) -> Protocol:
        """The same protocol with every augmentation off (DD-Ranking's ARS runs)."""
        return Protocol.of(augmentation_off(self.as_values()))


__all__ = [
    "AUGMENTATION_FIELDS",
    "CUSTOM",
    "NOAUG_SUFFIX",
    "NOT_PROTOCOL",
    "Protocol",
    "augmentation_off",
    "build_eval_settings",
    "protocol_differences",
    "protocol_identity",
    "protocol_name",
    "settings_from_dict",
    "settings_from_json",
    "settings_json",
    "student_settings",
]
