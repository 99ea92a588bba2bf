"""A row records what ran: SRe²L's ``sre2l_stats: auto`` resolves to ``bn`` or ``conv`` by the
teacher, and the rows say which (they said ``auto``: the orchestrator kept an allow-list of
objective row fields; now every row field an objective reports lands in the rows)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.helpers import ddx, write_spec


def test_sre2l_rows_record_the_statistics_source_that_ran(tmp_path: Path) -> None:
    spec = {
        "name": "sre2l_rows",
        "storage": str(tmp_path / "store"),
        "dataset": {"name": "digits", "resolution": 8, "train_per_class": 20},
        "method": {"objective": "sre2l", "ipc": 1, "iterations_per_batch": 2, "stat_batch": 64},
        "search": {"sre2l_stats": {"grid": ["auto", "conv"]}},
        "teacher": {"arch": "convnet_bn_d2", "epochs": 1},  # a BatchNorm teacher: auto → bn
        "evaluation": {"archs": ["convnet_d1"], "seeds": 1, "epochs": 1, "batch_size": 64},
        "resources": {"max_concurrent_trials": 2},
    }
    proc = ddx("sweep", str(write_spec(tmp_path / "s.yaml", spec)), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = pd.read_parquet(tmp_path / "store" / "sre2l_rows" / "results.parquet")
    assert sorted(rows["sre2l_stats"]) == ["bn", "conv"]  # auto ran as bn, conv as conv
    assert (rows["status"] == "ok").all() and rows["bn_weight"].eq(0.01).all()
    assert set(rows["teacher_arch"]) == {"convnet_bn_d2"}
