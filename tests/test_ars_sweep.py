"""DD-Ranking's ARS from a sweep: ``evaluation.ars: true`` evaluates every set again with augmentation off
(``<protocol>:noaug`` rows), and ``ddx report`` fills the ARS column from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from test_report import md_tables

from methods.evaluation.dd_ranking import augmentation_robust_score, improvement_over_random
from tests.helpers import ddx, tiny_digits_spec, write_spec

pytestmark = pytest.mark.timeout(900)


def test_a_sweep_with_ars_writes_noaug_rows_and_the_report_scores_them(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    spec = tiny_digits_spec(
        storage,
        name="ars",
        search={"objective": {"grid": ["random", "dm"]}, "ipc": {"grid": [1]}},
        evaluation={"preset": "dd_standard", "archs": ["convnet_d1"], "seeds": 1, "epochs": 2, "ars": True},
    )
    del spec["method"]["objective"]  # the search names it
    proc = ddx("sweep", str(write_spec(tmp_path / "ars.yaml", spec)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = pd.read_parquet(storage / "ars" / "results.parquet")
    assert (rows["status"] == "ok").all()
    protocol = next(p for p in rows["protocol"] if not p.endswith(":noaug"))
    assert protocol.startswith("custom-")  # dd_standard with 2 epochs
    # every set twice: under the protocol and under the same protocol with augmentation off
    assert sorted(rows.groupby(["objective", "protocol"]).size().items()) == [
        (("dm", protocol), 1), (("dm", f"{protocol}:noaug"), 1),
        (("random", protocol), 1), (("random", f"{protocol}:noaug"), 1),
    ]  # fmt: skip
    noaug = rows[rows["protocol"] == f"{protocol}:noaug"]
    for text in noaug["eval_settings"]:
        settings = json.loads(text)
        assert (settings["augment"], settings["epochs"], settings["label_mode"]) == ("none", 2, "hard")
    assert set(rows["label_source"]) == {"hard"}

    rep = ddx("report", str(storage / "ars"), "--format", "md", "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:]
    tables = md_tables((tmp_path / "report" / "report.md").read_text())
    title = f"Best configuration per method, hard labels, protocol `{protocol}` (selected on validation)"
    best = {r["objective"]: r for r in tables[title]}

    def acc(objective: str, name: str) -> float:
        return float(rows[(rows["objective"] == objective) & (rows["protocol"] == name)]["test_acc"].mean())

    ior = improvement_over_random(acc("dm", protocol), acc("random", protocol))
    ior_noaug = improvement_over_random(acc("dm", f"{protocol}:noaug"), acc("random", f"{protocol}:noaug"))
    ars = augmentation_robust_score(ior, ior_noaug)
    assert not math.isnan(ars)
    assert best["dm"]["ARS"] == f"{100 * ars:.1f}"  # filled, and from the :noaug rows
    assert best["random"]["ARS"] == f"{100 * augmentation_robust_score(0.0, 0.0):.1f}"
