"""The report's numbers, as data frames computed from the Parquet rows alone.

Every accuracy below comes from :func:`orchestrator.report.aggregate.seed_summary` (mean ± sample
standard deviation over evaluation seeds, final model, ``status == "ok"`` rows only), so
the terminal summary, the report and the leaderboard aggregate identically. The full-data
reference rows (``reference.parquet``) go through the same function.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from methods.networks import resolve_arch
from orchestrator.report.aggregate import seed_summary
from orchestrator.report.dd_metrics import add_scores
from orchestrator.report.experiment import REFERENCE_KEY, REFERENCE_LABEL, Experiment
from orchestrator.storage.results import Row, distinct_references


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def format_value(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def config_labels(rows: pd.DataFrame, swept: list[str]) -> dict[str, str]:
    """trial_key → "objective · parameterization · IPC k · key=value…" (swept keys only)."""
    labels: dict[str, str] = {}
    firsts = rows.drop_duplicates("trial_key")
    for _, r in firsts.iterrows():
        parts = [str(r["objective"]), str(r["parameterization"]), f"IPC {int(r['ipc'])}"]
        for c in swept:
            if c in ("ipc", "objective", "parameterization") or c not in r.index:
                continue
            v = r[c]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            parts.append(f"{c}={format_value(v)}")
        labels[str(r["trial_key"])] = " · ".join(parts)
    # identical labels (e.g. num_samples repeats) are told apart by their distillation seed
    counts = pd.Series(labels).value_counts()
    for key, lab in list(labels.items()):
        if counts[lab] > 1:
            seed = firsts.loc[firsts["trial_key"] == key, "distill_seed"].iloc[0]
            labels[key] = f"{lab} · distill seed {format_value(seed)}"
    return labels


def summary(exp: Experiment) -> pd.DataFrame:
    """Seed summary of the experiment (per protocol), with each configuration's label and distillation resolution."""
    extra = [c for c in exp.swept if c not in ("ipc",)] + ["distill_resolution", "dataset"]
    s = seed_summary(exp.rows, extra=[c for c in extra if c in exp.rows.columns])
    labels = config_labels(exp.rows, exp.swept)
    s.insert(0, "config", s["trial_key"].map(labels))
    return s


def reference_summary(exp: Experiment) -> pd.DataFrame | None:
    """Seed summary of the full-data reference rows (None when the sweep did not ask for them)."""
    if exp.reference is None or exp.reference.empty:
        return None
    ref = distinct_references(exp.reference).copy()  # one row per reference run, wherever it was written
    for c in ("ipc", "parameterization"):
        if c not in ref.columns:
            ref[c] = None
    s = seed_summary(ref)
    if s.empty:
        return s.assign(config=pd.Series(dtype=str))
    s.insert(0, "config", REFERENCE_LABEL)
    return s


ACC_COLUMNS = ["test_mean", "test_std", "val_mean", "val_std", "seeds"]


def cross_architecture(summ: pd.DataFrame, ref: pd.DataFrame | None) -> pd.DataFrame:
    """Long table: one row per (label mode, protocol, resolution, configuration, eval arch), reference rows last.

    Rendered as one matrix per (label mode, protocol, resolution): configurations × networks.
    """
    cols = ["label_mode", "protocol", "eval_resolution", "trial_key", "config", "eval_arch", *ACC_COLUMNS]
    parts = [summ[cols].assign(is_reference=False)]
    if ref is not None and not ref.empty:
        for mode, protocol in summ[["label_mode", "protocol"]].drop_duplicates().itertuples(index=False):
            r = ref[ref["eval_resolution"].isin(summ["eval_resolution"].unique())]
            r = r.assign(label_mode=mode, protocol=protocol, trial_key=REFERENCE_KEY)
            parts.append(r[cols].assign(is_reference=True))
    out = pd.concat(parts, ignore_index=True)
    order = ["label_mode", "protocol", "eval_resolution", "is_reference", "config", "eval_arch"]
    return out.sort_values(order).reset_index(drop=True)


def arch_families(exp: Experiment) -> list[str]:
    """The evaluation archs as named in the spec (``convnet`` stays ``convnet``)."""
    rows = exp.rows
    names = rows["eval_arch_requested"] if "eval_arch_requested" in rows.columns else rows["eval_arch"]
    names = names.fillna(rows["eval_arch"])
    return list(dict.fromkeys(names.tolist()))


def cross_resolution(exp: Experiment, summ: pd.DataFrame, ref: pd.DataFrame | None) -> pd.DataFrame:
    """DDiF Table 13: accuracy at each resolution, and its drop from the original resolution.

    For a configuration and a network family (``convnet`` follows the resolution), the
    original accuracy ``acc_org`` is the one at the distillation resolution; for every
    evaluated resolution ``diff = acc_org − acc`` and ``ratio = diff / acc_org`` (both as in
    DDiF; lower is better). Empty unless more than one resolution was evaluated.
    """
    columns = [
        "label_mode",
        "protocol",
        "trial_key",
        "config",
        "family",
        "eval_arch",
        "eval_resolution",
        "original_resolution",
        "resize_mode",
        *ACC_COLUMNS,
        "acc_org",
        "diff",
        "ratio",
        "is_reference",
    ]
    if summ["eval_resolution"].nunique() < 2:
        return pd.DataFrame(columns=columns)
    modes = exp.rows.groupby(["trial_key", "eval_resolution"])["resize_mode"].first().to_dict()
    out: list[Row] = []
    resolutions = sorted(summ["eval_resolution"].unique())
    families = arch_families(exp)
    for (mode, protocol, key), group in summ.groupby(["label_mode", "protocol", "trial_key"], sort=True):
        r0 = int(group["distill_resolution"].iloc[0])
        fixed = {"label_mode": mode, "protocol": protocol, "trial_key": key, "config": group["config"].iloc[0]}
        for fam in families:
            for row in _resolution_drop(group, fam, r0, resolutions):
                resize_mode = modes.get((key, row["eval_resolution"]))
                out.append({**fixed, **row, "resize_mode": resize_mode, "is_reference": False})
    if ref is not None and not ref.empty:
        r0s = sorted(int(r) for r in summ["distill_resolution"].unique())
        for mode, protocol in summ[["label_mode", "protocol"]].drop_duplicates().itertuples(index=False):
            fixed = {"label_mode": mode, "protocol": protocol, "trial_key": REFERENCE_KEY, "config": REFERENCE_LABEL}
            for fam in families:
                for r0 in r0s:
                    for row in _resolution_drop(ref, fam, r0, resolutions):
                        resized = "real images resized" if row["eval_resolution"] != r0 else "none"
                        out.append({**fixed, **row, "resize_mode": resized, "is_reference": True})
    if not out:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(out)[columns]


def _resolution_drop(frame: pd.DataFrame, family: str, r0: int, resolutions: list[int]) -> list[Row]:
    """One row per evaluated resolution of ``family`` in ``frame`` (one configuration's summary):
    its accuracies, ``acc_org`` (at ``r0``), ``diff = acc_org − acc`` and ``ratio = diff / acc_org``
    (DDiF Table 13)."""
    org = frame[(frame["eval_resolution"] == r0) & (frame["eval_arch"] == resolve_arch(family, r0))]
    acc_org = float(org["test_mean"].iloc[0]) if len(org) else float("nan")
    rows = []
    for r in resolutions:
        hit = frame[(frame["eval_resolution"] == r) & (frame["eval_arch"] == resolve_arch(family, int(r)))]
        if hit.empty:
            continue
        h = hit.iloc[0]
        diff = acc_org - float(h["test_mean"])
        rows.append(
            {
                "family": family,
                "eval_arch": h["eval_arch"],
                "eval_resolution": int(r),
                "original_resolution": r0,
                **{c: h[c] for c in ACC_COLUMNS},
                "acc_org": acc_org,
                "diff": diff,
                "ratio": diff / acc_org if acc_org else float("nan"),
            }
        )
    return rows


def curve_data(summ: pd.DataFrame, key: str, swept: list[str]) -> pd.DataFrame:
    """Accuracy against one swept hyper-parameter, one line per fixed rest-of-the-setting.

    A line is (objective, parameterization, label mode, eval arch, resolution, the other
    swept values); its points are the values of ``key``, each with its mean ± std over seeds.
    """
    if key not in summ.columns:
        return pd.DataFrame()
    d = summ[summ[key].notna()].copy()
    if d.empty or not all(_is_number(v) for v in d[key]):
        return pd.DataFrame()
    others = [c for c in swept if c != key and c in d.columns]
    line_cols = ["objective", "parameterization", "label_mode", "protocol", "eval_arch", "eval_resolution", *others]

    def line_label(r: pd.Series) -> str:
        parts = [str(r["objective"]), str(r["parameterization"]), str(r["label_mode"]), str(r["protocol"])]
        parts += [f"{c}={format_value(r[c])}" for c in others if not pd.isna(r[c])]
        return " · ".join(parts)

    d["line"] = d.apply(line_label, axis=1)
    d = d.sort_values([*line_cols, key], na_position="last")
    return d[["line", "eval_arch", "eval_resolution", key, *ACC_COLUMNS, "trial_key"]].reset_index(drop=True)


def best_by_validation(summ: pd.DataFrame) -> pd.DataFrame:
    """Per (protocol, label mode, objective, parameterization, IPC, arch, resolution): the configuration
    with the highest **validation** mean, and its test accuracy (how a method is reported)."""
    keys = ["protocol", "label_mode", "objective", "parameterization", "ipc", "eval_arch", "eval_resolution"]
    if summ.empty:
        return pd.DataFrame(columns=[*keys, "config", "trial_key", "candidates", *ACC_COLUMNS])
    ordered = summ.sort_values([*keys, "val_mean", "trial_key"], ascending=[True] * len(keys) + [False, True])
    best = ordered.groupby(keys, sort=True, dropna=False).head(1).copy()
    counts = summ.groupby(keys, dropna=False).size().rename("candidates").reset_index()
    best = best.merge(counts, on=keys, how="left")
    extra = [c for c in ("max_over_test_mean", "max_over_test_std") if c in best.columns]
    extra += [c for c in ("dataset",) if c in best.columns]
    return best[[*keys, "config", "trial_key", "candidates", *ACC_COLUMNS, *extra]].reset_index(drop=True)


def scored_best(exp: Experiment, summ: pd.DataFrame) -> pd.DataFrame:
    """:func:`best_by_validation` with DD-Ranking's scores (:func:`orchestrator.report.dd_metrics.add_scores`)."""
    best = best_by_validation(summ)
    if "dataset" not in best.columns:
        best["dataset"] = exp.rows["dataset"].iloc[0] if len(exp.rows) else None
    return add_scores(best, summ, exp.rows, exp.reference)


def protocol_table(exp: Experiment) -> pd.DataFrame:
    """One row per (protocol, label mode): rows, sets, and the settings that define the protocol."""
    from methods.evaluation.protocol import protocol_differences, protocol_identity, settings_from_json

    cols = ["protocol", "label_mode", "rows", "sets", "preset", "differs_from_preset", "settings"]
    out = []
    rows = exp.rows
    for (protocol, mode), g in rows.groupby(["protocol", "label_mode"], sort=True, dropna=False):
        text = (
            g["eval_settings"].dropna().iloc[0] if "eval_settings" in g and g["eval_settings"].notna().any() else None
        )
        preset, diff, shown = "—", "—", "not recorded"
        if text:
            try:
                values = settings_from_json(str(text)).to_dict()
                dataset, ipc = str(g["dataset"].iloc[0]), int(g["ipc"].iloc[0])
                ident = protocol_identity(values, dataset, ipc)
                preset = values.get("preset") or "—"
                d = protocol_differences(values, dataset, ipc)
                diff = ", ".join(f"{k}={v}" for k, v in d.items()) if d else ("none" if preset != "—" else "—")
                shown = ", ".join(f"{k}={v}" for k, v in ident.items())
            except (ValueError, TypeError):
                pass
        out.append([protocol, mode, len(g), g["trial_key"].nunique(), preset, diff, shown])
    return pd.DataFrame(out, columns=cols)


def failures(exp: Experiment) -> pd.DataFrame:
    """Every failed evaluation (and reference) row with its error."""
    cols = ["trial_key", "objective", "eval_arch", "eval_resolution", "label_mode", "seed", "error"]
    parts = [exp.rows[exp.rows["status"] != "ok"]]
    if exp.reference is not None:
        parts.append(exp.reference[exp.reference["status"] != "ok"])
    bad = pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)
    return bad[cols]


def _distinct(series: pd.Series) -> str:
    vals = [str(v) for v in series.dropna().unique()]
    return ", ".join(sorted(vals)) if vals else "—"


def provenance(exp: Experiment) -> list[tuple[str, str]]:
    """(item, value) pairs: config hashes, versions, devices, wall times, row counts."""
    rows = exp.rows
    trials = rows.drop_duplicates("trial_key")
    ok = rows[rows["status"] == "ok"]
    items: list[tuple[str, str]] = [
        ("source", exp.source),
        ("sweep", _distinct(rows["sweep"])),
        ("dataset", _distinct(rows["dataset"])),
        ("trials (config hashes)", f"{len(trials)}: {', '.join(sorted(trials['config_hash'].astype(str)))}"),
        ("evaluation rows", f"{len(rows)} ({len(ok)} ok, {len(rows) - len(ok)} failed)"),
    ]
    for col, name in (
        ("code_version", "code version"),
        ("ddx_version", "ddx"),
        ("torch_version", "torch"),
        ("ray_version", "ray"),
    ):
        if col in rows.columns:
            items.append((name, _distinct(rows[col])))
    if "device" in rows.columns:
        devices = ok["device"].fillna("?").value_counts()
        items.append(("evaluation devices", ", ".join(f"{d} ({n} runs)" for d, n in devices.items()) or "—"))
    if "distill_seconds" in rows.columns:
        ds = trials["distill_seconds"].astype(float)
        items.append(
            ("distillation wall time", f"{ds.sum():.1f} s total over {len(trials)} trials (max {ds.max():.1f} s)")
        )
    if "eval_seconds" in rows.columns:
        es = ok["eval_seconds"].astype(float)
        items.append(("evaluation wall time", f"{es.sum():.1f} s total, {es.mean():.1f} s mean per run"))
    if "created_at" in rows.columns and rows["created_at"].notna().any():
        items.append(("rows written", f"{rows['created_at'].min()} → {rows['created_at'].max()}"))
    if exp.reference is not None and not exp.reference.empty:
        ref = exp.reference
        ref_ok = ref[ref["status"] == "ok"]
        cached = int(ref_ok["cached"].sum()) if "cached" in ref_ok.columns else 0
        items.append(
            (
                "full-data reference",
                f"{len(ref)} runs ({len(ref_ok)} ok, {cached} from cache), "
                f"{float(ref_ok.get('train_seconds', pd.Series(dtype=float)).sum()):.1f} s training",
            )
        )
    return items
