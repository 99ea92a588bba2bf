"""Aggregations of result rows that every view shares (CLI table, report, leaderboard)."""

from __future__ import annotations

import pandas as pd

#: what identifies one distilled set's evaluation setting, across seeds
#: (``protocol`` too, where rows record one: rows of different protocols are never averaged together)
GROUP_COLUMNS = [
    "trial_key",
    "objective",
    "parameterization",
    "ipc",
    "eval_arch",
    "eval_resolution",
    "label_mode",
    "protocol",
]


def hyper_columns(df: pd.DataFrame) -> list[str]:
    """Columns that are swept or fixed hyper-parameters (neither schema nor measurement)."""
    from orchestrator.storage.results import CORE_COLUMNS

    skip = set(CORE_COLUMNS) | {"curve"}
    return [c for c in df.columns if c not in skip]


def seed_summary(df: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Mean ± std of val/test accuracy over seeds, per trial × arch × resolution × label mode."""
    ok = df[df["status"] == "ok"]
    keys = list(dict.fromkeys(c for c in GROUP_COLUMNS + (extra or []) if c in ok.columns))
    if ok.empty:
        return pd.DataFrame(columns=[*keys, "seeds", "val_mean", "val_std", "test_mean", "test_std"])
    g = ok.groupby(keys, dropna=False)
    out = g.agg(
        seeds=("seed", "nunique"),
        val_mean=("val_acc", "mean"),
        val_std=("val_acc", "std"),
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", "std"),
    ).reset_index()
    out[["val_std", "test_std"]] = out[["val_std", "test_std"]].fillna(0.0)
    if "max_over_test" in ok.columns and ok["max_over_test"].notna().any():
        # the optimistic "best test epoch" number, only where tracked; never the default metric
        mot = g["max_over_test"].agg(["mean", "std", "count"]).reset_index(drop=True)
        out["max_over_test_mean"] = mot["mean"].to_numpy()
        out["max_over_test_std"] = mot["std"].where(mot["count"] > 1, 0.0).to_numpy()
    return out.sort_values(keys).reset_index(drop=True)
