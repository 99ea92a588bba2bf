"""``ddx leaderboard``: rank objective × parameterization across any number of sweeps.

For every (dataset, IPC, evaluation network, resolution, label mode, **evaluation protocol**)
the leaderboard keeps,
for each objective × parameterization, the one configuration with the highest
**validation** mean over seeds (a sweep's β grid, widths, learning rates … are candidates),
reports that configuration's **test** mean ± std (final model), and ranks the entries by it.
Each entry is set beside the published numbers of the CFM and DDiF papers for the same
setting (``orchestrator/data/published.csv``, every row citing its source table) with the
difference Δ = ours − published, in percentage points.

Published numbers come from full-scale GPU runs (full training sets, hundreds to
thousands of epochs); a CPU-scale sweep on a subset is not a reproduction, and Δ says
how far from one it is.

Rows of different protocols (the ``protocol`` column: a preset name or ``custom-<hash>``) are
never ranked together: each protocol is its own ranking, and where one setting has rows of
several protocols the output says so. Beside each entry: DD-Ranking's HLR, IOR, LRS and ARS
(:mod:`orchestrator.report.dd_metrics`), computed from rows of the entry's protocol only.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import pandas as pd

from orchestrator.errors import UserError
from orchestrator.evaluation.reference import read_reference
from orchestrator.report.aggregate import seed_summary
from orchestrator.report.dd_metrics import (
    SCORE_COLUMNS,
    add_scores,
    fmt_points,
    fmt_score,
    protocol_note,
    with_label_regime,
    with_protocol,
)
from orchestrator.report.experiment import load_experiment
from orchestrator.report.tables import config_labels
from orchestrator.storage.results import distinct_references, row_key

#: one ranking; ``protocol`` last, so a setting's protocols sit next to each other
SETTING = ["dataset", "eval_resolution", "ipc", "eval_arch", "label_mode"]
GROUP = [*SETTING, "protocol"]
ENTRY = ["objective", "parameterization"]
PUBLISHED_COLUMNS = [
    "paper",
    "table",
    "dataset",
    "distill_resolution",
    "resolution",
    "ipc",
    "arch",
    "label_mode",
    "method",
    "objective",
    "parameterization",
    "resize_mode",
    "acc",
    "std",
    "note",
]


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published-numbers table (accuracies in %); the packaged file unless ``path`` is given."""
    if path is None:
        with resources.files("orchestrator").joinpath("data/published.csv").open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, comment="#", dtype={"table": str})
    else:
        df = pd.read_csv(path, comment="#", dtype={"table": str})
    missing = [c for c in PUBLISHED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"published table lacks columns {missing}")
    return df


def load_rows(paths: list[str]) -> pd.DataFrame:
    """Rows of every experiment (de-duplicated on the row key), with a ``config`` label column."""
    frames = []
    for p in paths:
        exp = load_experiment(p)
        rows = exp.rows.copy()
        labels = config_labels(rows, exp.swept)
        rows["config"] = rows["trial_key"].map(labels)
        rows["source"] = p
        frames.append(rows)
    if not frames:
        raise UserError("give at least one experiment directory or results.parquet")
    rows = pd.concat(frames, ignore_index=True)
    if "created_at" in rows.columns:
        rows = rows.sort_values("created_at")
    rows = rows.drop_duplicates(subset=row_key(rows), keep="last").reset_index(drop=True)
    return with_label_regime(with_protocol(rows))


def load_references(paths: list[str]) -> pd.DataFrame | None:
    """The experiments' full-data reference rows (``reference.parquet``; HLR's real-data term), one per
    reference run: a cached run every folder holds is counted once (:func:`distinct_references`), as
    ``ddx report`` of one folder counts it — or None."""
    refs = []
    for p in paths:
        ref = read_reference(p)
        if ref is not None and not ref.empty:
            refs.append(ref.assign(source=p))
    return with_protocol(distinct_references(pd.concat(refs, ignore_index=True))) if refs else None


def _fmt_pub(r: pd.Series) -> str:
    std = "" if pd.isna(r["std"]) else f" ± {float(r['std']):.1f}"
    return f"{float(r['acc']):.1f}{std} [{r['paper']} T{r['table']}]"


def match_published(entry: pd.Series, published: pd.DataFrame) -> pd.DataFrame:
    """Published rows for the same dataset, IPC, network, resolution, label mode, objective and
    parameterization (a published row without a resolution matches any; one with a resize mode
    matches only evaluations resized that way)."""
    p = published
    m = (
        (p["dataset"] == entry["dataset"])
        & (p["ipc"] == int(entry["ipc"]))
        & (p["arch"] == entry["eval_arch"])
        & (p["label_mode"] == entry["label_mode"])
        & (p["objective"] == entry["objective"])
        & (p["parameterization"] == entry["parameterization"])
        & (p["resolution"].isna() | (p["resolution"] == int(entry["eval_resolution"])))
    )
    mode = entry.get("resize_mode")
    if isinstance(mode, str) and mode not in ("", "none"):
        m &= p["resize_mode"].isna() | (p["resize_mode"] == mode)
    else:
        m &= p["resize_mode"].isna()
    return p[m]


def leaderboard(
    rows: pd.DataFrame, published: pd.DataFrame | None = None, reference: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per (setting, protocol, objective × parameterization): its validation-selected
    configuration, test accuracy, rank within the setting and protocol, DD-Ranking's scores, and the
    published numbers with Δ (in points). ``reference``: full-data rows (:func:`load_references`)."""
    rows = with_protocol(rows)
    extra = ["dataset", "protocol", "distill_resolution", "config", "sweep"]
    summ = seed_summary(rows, extra=[c for c in extra if c in rows.columns])
    if summ.empty:
        return pd.DataFrame()
    modes = rows.groupby(["trial_key", "eval_resolution"])["resize_mode"].first()
    summ["resize_mode"] = [modes.get((k, r)) for k, r in zip(summ["trial_key"], summ["eval_resolution"], strict=True)]
    keys = GROUP + ENTRY
    ordered = summ.sort_values(
        [*keys, "val_mean", "seeds", "trial_key"], ascending=[True] * len(keys) + [False] * 2 + [True]
    )
    best = ordered.groupby(keys, sort=True, dropna=False).head(1).copy()
    counts = summ.groupby(keys, dropna=False).size().rename("candidates").reset_index()
    best = best.merge(counts, on=keys, how="left")
    best["rank"] = best.groupby(GROUP, dropna=False)["test_mean"].rank(method="min", ascending=False).astype(int)
    pub_text, pub_acc, delta = [], [], []
    for _, r in best.iterrows():
        hits = match_published(r, published) if published is not None else pd.DataFrame()
        if len(hits):
            pub_text.append("; ".join(_fmt_pub(h) for _, h in hits.iterrows()))
            first = float(hits["acc"].iloc[0])
            pub_acc.append(first)
            delta.append(100 * float(r["test_mean"]) - first)
        else:
            pub_text.append("")
            pub_acc.append(math.nan)
            delta.append(math.nan)
    best["published"] = pub_text
    best["published_acc"] = pub_acc
    best["delta"] = delta
    best = add_scores(best, summ, rows, reference)
    protocols = best.groupby(SETTING, dropna=False)["protocol"].transform("nunique")
    best["protocols_in_setting"] = protocols.astype(int)
    cols = [
        *GROUP,
        "rank",
        *ENTRY,
        "test_mean",
        "test_std",
        "val_mean",
        "val_std",
        "seeds",
        *SCORE_COLUMNS,
        "protocols_in_setting",
        "candidates",
        "config",
        "trial_key",
        "sweep",
        "published",
        "published_acc",
        "delta",
    ]
    best = best.sort_values([*GROUP, "rank", *ENTRY]).reset_index(drop=True)
    return best[[c for c in cols if c in best.columns]]


def _acc(mean: float, std: float, seeds: int) -> str:
    if pd.isna(mean):
        return "—"
    return f"{100 * mean:.1f} (1 seed)" if int(seeds) <= 1 else f"{100 * mean:.1f} ± {100 * std:.1f}"


def display_rows(board: pd.DataFrame) -> list[dict[str, str]]:
    """The leaderboard as strings (what the terminal and Markdown show)."""
    out = []
    for _, r in board.iterrows():
        out.append(
            {
                "setting": f"{r['dataset']} · IPC {int(r['ipc'])} · {r['eval_arch']} @ {int(r['eval_resolution'])}px "
                f"· {r['label_mode']}",
                "protocol": str(r["protocol"]),
                "rank": str(int(r["rank"])),
                "method": f"{r['objective']} × {r['parameterization']}",
                "test acc": _acc(r["test_mean"], r["test_std"], r["seeds"]),
                "val acc": _acc(r["val_mean"], r["val_std"], r["seeds"]),
                "HLR (pp)": fmt_points(r["hlr"]),
                "IOR (pp)": fmt_points(r["ior"]),
                "LRS": fmt_score(r["lrs"]),
                "ARS": fmt_score(r["ars"]),
                "configs": str(int(r["candidates"])),
                "chosen (by val)": f"{r['config']} ({r['trial_key']})",
                "published": r["published"] or "—",
                "Δ (pp)": "—" if pd.isna(r["delta"]) else f"{r['delta']:+.1f}",
            }
        )
    return out


def protocol_notes(board: pd.DataFrame) -> list[str]:
    """One line per setting whose rows come from several protocols (ranked separately)."""
    notes = []
    if board.empty:
        return notes
    for key, g in board.groupby(SETTING, sort=True, dropna=False):
        if g["protocol"].nunique() > 1:
            d = dict(zip(SETTING, key, strict=True))
            where = f"{d['dataset']} · IPC {int(d['ipc'])} · {d['eval_arch']} @ {int(d['eval_resolution'])}px"
            notes.append(f"{where} · {d['label_mode']}: {protocol_note(list(g['protocol']))}.")
    return notes


SCORES_TEXT = (
    "HLR = Acc(full real data, hard) − Acc(set, hard), IOR = Acc(set) − Acc(random real subset of the same "
    "size), both in percentage points under the entry's protocol; LRS = (e^α − e^−1)/(e − e^−1) with "
    "α = ½·IOR − ½·HLR, ARS the same with β = ½·(IOR with augmentation) + ½·(IOR without), in % "
    "(DD-Ranking, Li et al. 2025; docs/evaluation.md says which rows feed each term). — : a term's rows are missing."
)


def to_markdown(board: pd.DataFrame) -> str:
    lines = [
        "# ddx leaderboard",
        "",
        "Per setting and evaluation protocol, each objective × parameterization is represented by its "
        "configuration with the best **validation** accuracy; entries are ranked by that configuration's "
        "**test** accuracy (final model, mean ± std over seeds). Published numbers: CFM and DDiF papers "
        "(table cited); Δ = ours − published. " + SCORES_TEXT,
        "",
    ]
    if board.empty:
        return "\n".join([*lines, "No successful evaluation rows."]) + "\n"
    notes = protocol_notes(board)
    if notes:
        lines += ["**Several protocols:**", "", *[f"- {n}" for n in notes], ""]
    for (mode, protocol), part in board.groupby(["label_mode", "protocol"], sort=True):
        rows = display_rows(part)
        lines += [f"## {mode} labels · protocol `{protocol}`", ""]
        cols = [c for c in rows[0] if c != "protocol"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for r in rows:
            lines.append("| " + " | ".join(r[c].replace("|", "\\|") for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)
