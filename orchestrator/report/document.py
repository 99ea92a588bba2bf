"""The report as a format-neutral document: sections of text, tables (strings) and figures (PNG).

Markdown and HTML render the same :class:`Document`, so both carry the same numbers. All
accuracies are shown in % with one decimal, as ``mean ± std`` (sample std over evaluation
seeds); a cell from a single seed shows ``mean (1 seed)`` instead of a made-up ± 0.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from orchestrator.errors import UserError
from orchestrator.report import plots
from orchestrator.report import tables as T
from orchestrator.report.dd_metrics import fmt_points, fmt_score, protocol_note
from orchestrator.report.grids import synthetic_grid

MAX_GRIDS = 24


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Figure:
    name: str  # file stem under figures/
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    anchor: str
    text: list[str] = field(default_factory=list)
    blocks: list[Table | Figure | str] = field(default_factory=list)  # str: a paragraph


@dataclass
class Document:
    title: str
    intro: list[str]
    sections: list[Section]


def pct(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"


def acc(mean: float, std: float, seeds: int) -> str:
    """``"48.9 ± 0.6"`` (in %), ``"48.9 (1 seed)"`` for a single seed, ``"—"`` if missing."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if int(seeds) <= 1:
        return f"{pct(mean)} (1 seed)"
    return f"{pct(mean)} ± {pct(std)}"


def _seeds_note(counts: pd.Series) -> str:
    vals = sorted({int(v) for v in counts.dropna()})
    if not vals:
        return ""
    return f"seeds per cell: {vals[0]}" if len(vals) == 1 else f"seeds per cell: {vals[0]}–{vals[-1]}"


PROTOCOL_TEXT = (
    "Every accuracy is the **final** student's top-1 test accuracy in %, as mean ± sample standard "
    "deviation over evaluation seeds (students trained from scratch on the synthetic set). Configurations "
    "are chosen by **validation** accuracy on a split carved from the real training set, never by test "
    "accuracy. A *max over test epochs* column — the optimistic number much public DD code reports — "
    "appears only where the sweep tracked it (`evaluation.track_test`) and is labelled as such. "
    "Every row records its evaluation **protocol** (a preset name, or `custom-<hash>` when the settings "
    "differ from every preset) and all its settings; tables never mix protocols: each protocol and label "
    "regime gets its own table."
)

SCORES_TEXT = (
    "DD-Ranking's scores (Li et al. 2025), from rows of the entry's protocol only: **HLR** = Acc(full real "
    "data, hard) − Acc(set, hard labels) (lower is better), **IOR** = Acc(set) − Acc(random real subset of the "
    "same size), both in percentage points; **LRS** = (e^α − e^−1)/(e − e^−1) with α = ½·IOR − ½·HLR; **ARS** "
    "the same with β = ½·IOR + ½·IOR without augmentation; scores in %. The terms: Acc(set, hard) is the same "
    "configuration's hard-label rows, the random subset is the `random` objective's entry, the full data the "
    "reference rows (`reference.parquet`), ARS's no-augmentation terms the `<protocol>:noaug` rows. — : that "
    "term's rows are missing (e.g. no `random` baseline, no reference)."
)


def best_section(exp: T.Experiment, summ: pd.DataFrame) -> Section:
    best = T.scored_best(exp, summ)
    has_mot = "max_over_test_mean" in best.columns and best["max_over_test_mean"].notna().any()
    cols = ["objective", "parameterization", "IPC", "network", "res", "chosen configuration"]
    cols += ["candidates", "val acc", "test acc", "HLR (pp)", "IOR (pp)", "LRS", "ARS"]
    if has_mot:
        cols.append("max over test epochs (optimistic, not selected on)")
    sec = Section(
        "Best configuration per method",
        "best",
        [
            "For each objective × parameterization × IPC × network × resolution, the configuration with the "
            "highest validation mean; its test accuracy is what the method scores. One table per label regime "
            "and evaluation protocol.",
            SCORES_TEXT,
        ],
    )
    for (mode, protocol), part in best.groupby(["label_mode", "protocol"], sort=True):
        rows = []
        for _, r in part.iterrows():
            row = [
                str(r["objective"]),
                str(r["parameterization"]),
                str(int(r["ipc"])),
                str(r["eval_arch"]),
                str(int(r["eval_resolution"])),
                f"{r['config']} ({r['trial_key']})",
                str(int(r["candidates"])),
                acc(r["val_mean"], r["val_std"], r["seeds"]),
                acc(r["test_mean"], r["test_std"], r["seeds"]),
                fmt_points(r["hlr"]),
                fmt_points(r["ior"]),
                fmt_score(r["lrs"]),
                fmt_score(r["ars"]),
            ]
            if has_mot:
                row.append(acc(r["max_over_test_mean"], r["max_over_test_std"], r["seeds"]))
            rows.append(row)
        title = f"Best configuration per method, {mode} labels, protocol `{protocol}` (selected on validation)"
        sec.blocks.append(Table(title, cols, rows, _seeds_note(part["seeds"])))
    return sec


def protocols_section(exp: T.Experiment) -> Section:
    """Which protocols the rows were evaluated under, what defines each, and where several meet."""
    table = T.protocol_table(exp)
    sec = Section(
        "Evaluation protocols",
        "protocols",
        [
            "Each row records its protocol (`protocol`) and every student setting (`eval_settings`). A preset "
            "name means the settings equal that preset's (docs/evaluation.md); `<preset>:noaug` is the preset "
            "with augmentation off; `custom-<hash>` names any other settings (rows with equal settings share "
            "the hash)."
        ],
    )
    protocols = sorted(table["protocol"].astype(str).unique()) if not table.empty else []
    if len(protocols) > 1:
        sec.blocks.append(f"**Note:** {protocol_note(protocols)}.")
    rows = [[str(v) for v in r] for r in table.itertuples(index=False)]
    sec.blocks.append(
        Table(
            "Protocols in this experiment",
            ["protocol", "labels", "rows", "sets", "preset", "differs from the preset in", "settings"],
            rows,
        )
    )
    return sec


def cross_arch_section(summ: pd.DataFrame, ref: pd.DataFrame | None) -> Section:
    long = T.cross_architecture(summ, ref)
    sec = Section(
        "Cross-architecture",
        "cross-architecture",
        [
            "Test accuracy of students of each network trained on the same synthetic set (rows: distilled "
            "sets; the last row, when present, is the full-data upper bound: the network trained on the whole "
            "real training set)."
        ],
    )
    for (mode, protocol, res), block in long.groupby(["label_mode", "protocol", "eval_resolution"], sort=True):
        archs = list(dict.fromkeys(block.sort_values("eval_arch")["eval_arch"]))
        rows = []
        for (is_ref, config, key), g in block.groupby(["is_reference", "config", "trial_key"], sort=True):
            cells = {r["eval_arch"]: acc(r["test_mean"], r["test_std"], r["seeds"]) for _, r in g.iterrows()}
            means = [float(g.loc[g["eval_arch"] == a, "test_mean"].iloc[0]) for a in archs if a in cells]
            avg = pct(sum(means) / len(means)) if len(means) == len(archs) else "—"
            label = config if is_ref else f"{config} ({key})"
            rows.append([label, *[cells.get(a, "—") for a in archs], avg])
        sec.blocks.append(
            Table(
                f"Cross-architecture, {mode} labels, protocol `{protocol}`, {int(res)}px",
                ["distilled set", *archs, "mean over networks"],
                rows,
                _seeds_note(block["seeds"]),
            )
        )
    return sec


def cross_res_section(exp: T.Experiment, summ: pd.DataFrame, ref: pd.DataFrame | None) -> Section:
    sec = Section(
        "Cross-resolution",
        "cross-resolution",
        [
            "Students trained on the synthetic set decoded at each test resolution (pixels: interpolation; "
            "neural fields: the coordinate grid of that resolution), tested on the real test set resized to "
            "match. As in DDiF Table 13, *diff* = acc(original resolution) − acc and *ratio* = diff / "
            "acc(original); lower is better. `convnet` rows use the depth of each resolution (D3@32, D4@64, "
            "D5@128, D6@256, D7@512)."
        ],
    )
    data = T.cross_resolution(exp, summ, ref)
    if data.empty:
        sec.blocks.append("Only one resolution was evaluated; set `evaluation.resolutions` to fill this table.")
        return sec
    for (mode, protocol), block in data.groupby(["label_mode", "protocol"], sort=True):
        rows = []
        block = block.sort_values(["is_reference", "config", "family", "eval_resolution"])
        for _, r in block.iterrows():
            label = r["config"] if r["is_reference"] else f"{r['config']} ({r['trial_key']})"
            rows.append(
                [
                    label,
                    f"{r['family']} → {r['eval_arch']}" if r["family"] != r["eval_arch"] else str(r["eval_arch"]),
                    f"{int(r['original_resolution'])} → {int(r['eval_resolution'])}",
                    str(r["resize_mode"]) if r["resize_mode"] is not None else "—",
                    acc(r["test_mean"], r["test_std"], r["seeds"]),
                    pct(r["diff"]),
                    "—" if pd.isna(r["ratio"]) else f"{float(r['ratio']):.2f}",
                ]
            )
        sec.blocks.append(
            Table(
                f"Cross-resolution, {mode} labels, protocol `{protocol}`",
                ["distilled set", "network", "resolution", "resize", "accuracy", "diff (↓)", "ratio (↓)"],
                rows,
                _seeds_note(block["seeds"]),
            )
        )
    return sec


def curves_section(exp: T.Experiment, summ: pd.DataFrame) -> Section:
    sec = Section(
        "Hyper-parameter curves",
        "curves",
        [
            "Test accuracy against every swept hyper-parameter (β, widths, depths, IPC …); error bars are the "
            "standard deviation over evaluation seeds."
        ],
    )
    drawn = 0
    for key in exp.swept:
        data = T.curve_data(summ, key, exp.swept)
        if data.empty:
            continue
        drawn += 1
        sec.blocks.append(Figure(f"curve_{key}", plots.curve_figure(data, key), f"test accuracy vs {key}"))
        rows = [
            [
                str(r["line"]),
                f"{r['eval_arch']} @ {int(r['eval_resolution'])}",
                T.format_value(r[key]),
                acc(r["test_mean"], r["test_std"], r["seeds"]),
                acc(r["val_mean"], r["val_std"], r["seeds"]),
            ]
            for _, r in data.iterrows()
        ]
        sec.blocks.append(Table(f"Data: accuracy vs {key}", ["setting", "network", key, "test acc", "val acc"], rows))
    if not drawn:
        sec.blocks.append("No numeric hyper-parameter takes more than one value in this sweep.")
    return sec


def images_section(exp: T.Experiment) -> Section:
    sec = Section(
        "Synthetic images",
        "images",
        [
            "Each distilled set decoded at its distillation resolution, one row per class (up to 10 classes "
            "and 10 instances shown)."
        ],
    )
    trials = exp.rows.drop_duplicates("trial_key").sort_values(["objective", "parameterization", "ipc", "trial_key"])
    labels = T.config_labels(exp.rows, exp.swept)
    for n, (_, r) in enumerate(trials.iterrows()):
        key = str(r["trial_key"])
        if n >= MAX_GRIDS:
            sec.blocks.append(f"… and {len(trials) - MAX_GRIDS} more sets (not shown).")
            break
        path = str(r.get("synthetic_path") or "")
        try:
            grid = synthetic_grid(path)
        except (UserError, OSError, RuntimeError, KeyError, ValueError) as err:  # the report goes on without it
            why = err.message if isinstance(err, UserError) else str(err)
            sec.blocks.append(f"{labels[key]} ({key}): synthetic set not readable at `{path}` ({why}).")
            continue
        caption = (
            f"{labels[key]} ({key}): {int(r['instances_per_class'])} instance(s) per class, "
            f"{grid.resolution}px; {grid.note}"
        )
        sec.blocks.append(Figure(f"synthetic_{key}", grid.png(), caption))
    return sec


def failures_section(exp: T.Experiment) -> Section:
    bad = T.failures(exp)
    sec = Section("Failed runs", "failures")
    if bad.empty:
        sec.blocks.append("None: every evaluation finished.")
        return sec
    rows = [
        [T.format_value(r[c]) for c in ("trial_key", "objective", "eval_arch", "eval_resolution", "label_mode", "seed")]
        + [str(r["error"])]
        for _, r in bad.iterrows()
    ]
    sec.blocks.append(
        Table(
            "Failed runs (after retries; excluded from every mean)",
            ["trial", "objective", "network", "res", "labels", "seed", "error"],
            rows,
        )
    )
    return sec


def provenance_section(exp: T.Experiment) -> Section:
    items = T.provenance(exp)
    return Section("Provenance", "provenance", [], [Table("Provenance", ["item", "value"], [[a, b] for a, b in items])])


def build_document(exp: T.Experiment) -> Document:
    """Every section of the report, computed from the experiment's Parquet rows."""
    summ = T.summary(exp)
    ref = T.reference_summary(exp)
    name = ", ".join(sorted(exp.rows["sweep"].dropna().astype(str).unique())) or "experiment"
    return Document(
        f"ddx report: {name}",
        [PROTOCOL_TEXT],
        [
            best_section(exp, summ),
            protocols_section(exp),
            cross_arch_section(summ, ref),
            cross_res_section(exp, summ, ref),
            curves_section(exp, summ),
            images_section(exp),
            failures_section(exp),
            provenance_section(exp),
        ],
    )
