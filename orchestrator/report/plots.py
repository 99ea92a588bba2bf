"""Report figures (matplotlib, Agg backend): accuracy against each swept hyper-parameter."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from orchestrator.report.tables import format_value


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def curve_figure(data: pd.DataFrame, key: str) -> bytes:
    """One panel per (eval arch, resolution); one line per setting; error bars = std over seeds.

    ``data`` is :func:`orchestrator.report.tables.curve_data`'s frame (accuracies in [0, 1],
    plotted in %).
    """
    panels = list(data.groupby(["eval_arch", "eval_resolution"], sort=True))
    n = len(panels)
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    xs = data[key].astype(float)
    log = bool((xs > 0).all() and xs.max() / xs.min() >= 10)
    colors = {line: f"C{i % 10}" for i, line in enumerate(sorted(data["line"].unique()))}
    for ax, ((arch, res), panel) in zip(axes.flat, panels, strict=False):
        for line, d in panel.groupby("line", sort=True):
            d = d.sort_values(key)
            ax.errorbar(
                d[key].astype(float),
                100 * d["test_mean"],
                yerr=100 * d["test_std"],
                marker="o",
                capsize=3,
                color=colors[line],
            )
        ax.set_title(f"{arch} @ {res}px")
        ax.set_xlabel(key)
        ax.set_ylabel("test accuracy (%)")
        if log:
            ax.set_xscale("log")
        ticks = sorted(set(panel[key].astype(float)))
        if len(ticks) <= 8:
            ax.set_xticks(ticks, [format_value(t) for t in ticks])
            ax.minorticks_off()
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, marker="o", label=line) for line, c in colors.items()]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.suptitle(f"test accuracy vs {key} (final model; mean ± std over seeds)")
    return _png(fig)
