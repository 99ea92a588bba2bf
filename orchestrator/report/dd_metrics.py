"""DD-Ranking's HLR, IOR, LRS and ARS beside each ranked entry, from rows of one protocol.

Which rows feed each term of an entry — a (dataset, IPC, network, resolution, **protocol**,
label mode, objective × parameterization) whose configuration was selected on validation:

* ``Acc(syn, any)``: the entry itself (its test mean over seeds, this label mode);
* ``Acc(syn, hard)``: the **same configuration** (trial key), same network, resolution and
  protocol, ``label_mode: hard`` (for a hard-label entry this is the entry itself);
* ``Acc(rdm, any)``: the ``random`` objective's entry (real images drawn per class, the same
  IPC; a sweep's ``objective: random`` trial or ``ddx evaluate``'s baseline) with the same
  network, resolution, protocol and label mode, itself selected on validation;
* ``Acc(real, hard)``: the full-data reference rows (``reference.parquet``: the network
  trained on the whole real training split under its own real-data settings) of the same
  dataset, network and resolution, one per reference run (a cached run several experiment
  folders hold counts once); if several reference settings exist, the one with the most
  seeds, then the highest validation mean;
* ARS's ``no aug`` terms: the same configuration and the random entry under the protocol
  whose settings are this protocol's with every augmentation switched off
  (:func:`methods.evaluation.presets.without_augmentation`; ``<preset>:noaug``).

A term without its rows leaves the score empty (``nan``); nothing is ever taken from a row of
another protocol. The formulas are :mod:`methods.evaluation.dd_ranking`'s; accuracies are means over
evaluation seeds (final model), so a score is computed from mean accuracies (DD-Ranking
averages per-run scores; for LRS/ARS the two differ by the curvature of e^x only).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from methods.evaluation.dd_ranking import (
    RANDOM_OBJECTIVE,
    augmentation_robust_score,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
)
from methods.evaluation.options import LEARNED_SOFT
from methods.evaluation.protocol import augmentation_off as without_augmentation
from methods.evaluation.protocol import protocol_name, settings_from_json
from orchestrator.storage.results import distinct_references

#: the ``protocol`` of rows written before rows recorded one
UNRECORDED = "unrecorded"
SETTING = ["dataset", "ipc", "eval_arch", "eval_resolution"]
SCORE_COLUMNS = [
    "acc_real_hard",
    "acc_syn_hard",
    "acc_random",
    "hlr",
    "ior",
    "lrs",
    "acc_syn_noaug",
    "acc_random_noaug",
    "ars",
]


def with_protocol(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a ``protocol`` column (``unrecorded`` where rows predate it)."""
    rows = rows.copy()
    if "protocol" not in rows.columns:
        rows["protocol"] = UNRECORDED
    rows["protocol"] = rows["protocol"].fillna(UNRECORDED).astype(str)
    return rows


def with_label_regime(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` whose students trained on a set's **learned soft labels** (``label_source:
    learned_soft``, DATM) shown under their own label regime: ``label_mode`` becomes ``learned_soft``.

    Every view groups by ``label_mode`` and ``protocol``, so such rows are never ranked or averaged
    with class-label (``hard``) or teacher-relabelled (``soft``) rows of the same protocol, and
    DD-Ranking's terms find no partner of another regime (their IOR/HLR stay empty: no random
    baseline carries learned soft labels)."""
    if "label_source" not in rows.columns:
        return rows
    learned = rows["label_source"] == LEARNED_SOFT
    if not learned.any():
        return rows
    rows = rows.copy()
    rows.loc[learned, "label_mode"] = LEARNED_SOFT
    return rows


def noaug_protocols(rows: pd.DataFrame) -> dict[tuple[str, int, str], str]:
    """(dataset, ipc, protocol) → the name of that protocol without augmentation (from ``eval_settings``)."""
    out: dict[tuple[str, int, str], str] = {}
    if "eval_settings" not in rows.columns:
        return out
    firsts = rows.dropna(subset=["eval_settings"]).drop_duplicates(["dataset", "ipc", "protocol"])
    for _, r in firsts.iterrows():
        try:
            values = settings_from_json(str(r["eval_settings"])).to_dict()
            name = protocol_name(without_augmentation(values), str(r["dataset"]), int(r["ipc"]))
        except (ValueError, TypeError):
            continue
        out[(str(r["dataset"]), int(r["ipc"]), str(r["protocol"]))] = name
    return out


def _best(cands: pd.DataFrame) -> pd.Series | None:
    """The candidate with the highest validation mean (ties: more seeds, then trial key)."""
    if cands.empty:
        return None
    order = cands.sort_values(["val_mean", "seeds", "trial_key"], ascending=[False, False, True])
    return order.iloc[0]


def reference_accuracy(ref: pd.DataFrame | None) -> dict[tuple[str, str, int], float]:
    """(dataset, eval_arch, eval_resolution) → the full-data reference's test mean over distinct
    reference runs (:func:`~orchestrator.storage.results.distinct_references`; see the module doc)."""
    ref = distinct_references(ref)
    if ref is None or ref.empty:
        return {}
    keys = ["dataset", "eval_arch", "eval_resolution"]
    ok = ref[ref["status"] == "ok"]
    if ok.empty:
        return {}
    group = [*keys, "eval_settings"] if "eval_settings" in ok.columns else keys
    ok = ok.assign(eval_settings=ok.get("eval_settings", pd.Series("", index=ok.index)).fillna(""))
    s = (
        ok.groupby(group, dropna=False)
        .agg(seeds=("seed", "nunique"), val_mean=("val_acc", "mean"), test_mean=("test_acc", "mean"))
        .reset_index()
        .sort_values(["seeds", "val_mean"], ascending=[False, False])
    )
    out: dict[tuple[str, str, int], float] = {}
    for _, r in s.iterrows():
        out.setdefault((str(r["dataset"]), str(r["eval_arch"]), int(r["eval_resolution"])), float(r["test_mean"]))
    return out


def add_scores(best: pd.DataFrame, summ: pd.DataFrame, rows: pd.DataFrame, ref: pd.DataFrame | None) -> pd.DataFrame:
    """``best`` (one val-selected entry per setting × protocol × label mode × method, with
    ``trial_key`` and ``test_mean``) with :data:`SCORE_COLUMNS` added.

    ``summ``: the seed summary of every configuration (``orchestrator.report.aggregate.seed_summary`` with
    ``dataset`` and ``protocol`` among its keys); ``rows``: the raw rows (for ``eval_settings``);
    ``ref``: the full-data reference rows (or None).
    """
    best = best.copy()
    if best.empty:
        for c in SCORE_COLUMNS:
            best[c] = pd.Series(dtype=float)
        return best
    real = reference_accuracy(ref)
    noaug = noaug_protocols(rows)
    values: dict[str, list[float]] = {c: [] for c in SCORE_COLUMNS}

    def pick(r: pd.Series, protocol: str, label_mode: str, baseline: bool) -> pd.Series | None:
        m = (summ["protocol"] == protocol) & (summ["label_mode"] == label_mode)
        for c in SETTING:
            m &= summ[c] == r[c]
        if baseline:
            return _best(summ[m & (summ["objective"] == RANDOM_OBJECTIVE)])
        hit = summ[m & (summ["trial_key"] == r["trial_key"])]
        return None if hit.empty else hit.iloc[0]

    def mean_of(x: pd.Series | None) -> float:
        return math.nan if x is None else float(x["test_mean"])

    for _, r in best.iterrows():
        protocol, mode = str(r["protocol"]), str(r["label_mode"])
        acc_syn = float(r["test_mean"])
        acc_real = real.get((str(r["dataset"]), str(r["eval_arch"]), int(r["eval_resolution"])), math.nan)
        acc_syn_hard = acc_syn if mode == "hard" else mean_of(pick(r, protocol, "hard", baseline=False))
        acc_random = mean_of(pick(r, protocol, mode, baseline=True))
        hlr = hard_label_recovery(acc_real, acc_syn_hard)
        ior = improvement_over_random(acc_syn, acc_random)
        partner = noaug.get((str(r["dataset"]), int(r["ipc"]), protocol))
        if partner is not None and partner != protocol:
            acc_syn_na = mean_of(pick(r, partner, mode, baseline=False))
            acc_random_na = mean_of(pick(r, partner, mode, baseline=True))
        else:
            acc_syn_na = acc_random_na = math.nan
        ars = augmentation_robust_score(ior, improvement_over_random(acc_syn_na, acc_random_na))
        for c, v in zip(
            SCORE_COLUMNS,
            (
                acc_real,
                acc_syn_hard,
                acc_random,
                hlr,
                ior,
                label_robust_score(hlr, ior),
                acc_syn_na,
                acc_random_na,
                ars,
            ),
            strict=True,
        ):
            values[c].append(v)
    for c, v in values.items():
        best[c] = v
    return best


def protocol_note(protocols: list[str]) -> str:
    """The sentence shown where rows of several protocols meet one setting."""
    names = ", ".join(f"`{p}`" for p in sorted(set(protocols)))
    return (
        f"rows of {len(set(protocols))} evaluation protocols ({names}) meet here; each protocol is ranked "
        "separately, never together with another (accuracies under different protocols are not comparable)"
    )


def fmt_points(v: Any) -> str:
    """A difference of accuracies in percentage points (``+3.2``), or ``—``."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):+.1f}"


def fmt_score(v: Any) -> str:
    """A score in [0, 1] shown in % (``57.3``), or ``—``."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"


__all__ = [
    "RANDOM_OBJECTIVE",
    "SCORE_COLUMNS",
    "UNRECORDED",
    "add_scores",
    "fmt_points",
    "fmt_score",
    "noaug_protocols",
    "protocol_note",
    "reference_accuracy",
    "with_label_regime",
    "with_protocol",
]
