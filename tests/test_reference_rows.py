"""The full-data reference (HLR's ``Acc(real, hard)``) is computed from distinct reference runs: a
cached reference row that two experiment folders both hold counts once."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.evaluation.reference import REFERENCE_FILE
from orchestrator.storage.results import ResultStore, rows_to_table, table_bytes, write_bytes_atomic
from tests.helpers import cli
from tests.test_report import md_tables

PROTOCOL = "dd_standard"
#: one reference run per seed, trained once and cached: the same settings, network, resolution and
#: content key wherever a folder holds it
SETTINGS = '{"epochs": 30, "lr": 0.05}'
REFERENCE_TEST_ACC = {0: 0.80, 1: 0.90}


def _set_rows(key: str, objective: str, accs: list[tuple[float, float]]) -> list[dict]:
    base = {
        "sweep": key, "trial_id": key, "trial_key": key, "objective": objective, "parameterization": "pixels",
        "dataset": "cifar10", "ipc": 10, "distill_resolution": 32, "distill_seed": 0, "config_hash": key,
        "status": "ok", "error": None, "eval_arch": "convnet_d3", "eval_resolution": 32, "label_mode": "hard",
        "protocol": PROTOCOL, "eval_settings": None, "resize_mode": "none",
        "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
    }  # fmt: skip
    return [{**base, "seed": s, "val_acc": v, "test_acc": t} for s, (v, t) in enumerate(accs)]


def _reference_rows(sweep: str, seeds: list[int], cached: bool) -> list[dict]:
    """The rows a sweep writes into its ``reference.parquet`` (its own sweep name and config hash)."""
    return [
        {"sweep": sweep, "trial_key": "reference", "objective": "full_data", "parameterization": "real",
         "dataset": "cifar10", "label_mode": "hard", "protocol": "full_data", "eval_settings": SETTINGS,
         "config_hash": f"hash-{sweep}", "status": "ok", "error": None, "eval_arch": "convnet_d3",
         "eval_arch_requested": "convnet_d3", "eval_resolution": 32, "seed": s, "val_acc": 0.7,
         "test_acc": REFERENCE_TEST_ACC[s], "cached": cached, "reference_key": f"content-key-{s}",
         "created_at": datetime(2026, 1, 2 if cached else 1, tzinfo=timezone.utc)}
        for s in seeds
    ]  # fmt: skip


def _experiment(root: Path, sets: dict[str, list[dict]], reference: list[dict]) -> Path:
    store = ResultStore(str(root))
    for key, rows in sets.items():
        store.write_trial_rows(key, rows)
    store.consolidate()
    write_bytes_atomic(str(root / REFERENCE_FILE), table_bytes(rows_to_table(reference)))
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Folder ``a``: a DM set and its reference over seeds 0 and 1 (trained there); folder ``b``: another
    method's set, whose sweep asked for one reference seed and found seed 0 in the cache."""
    base = tmp_path_factory.mktemp("refs")
    a = _experiment(
        base / "a",
        {"dm-1": _set_rows("dm-1", "dm", [(0.50, 0.50), (0.50, 0.52)])},
        _reference_rows("a", [0, 1], cached=False),
    )
    b = _experiment(
        base / "b",
        {"cfm-1": _set_rows("cfm-1", "cfm", [(0.60, 0.60), (0.60, 0.62)])},
        _reference_rows("b", [0], cached=True),
    )
    return a, b


def _report_hlr(folder: Path, out: Path) -> str:
    res = cli("report", str(folder), "--format", "md", "--out", str(out))
    assert res.exit_code == 0, res.output
    tables = md_tables((out / "report.md").read_text())
    title = f"Best configuration per method, hard labels, protocol `{PROTOCOL}` (selected on validation)"
    return {r["objective"]: r for r in tables[title]}["dm"]["HLR (pp)"]


def test_report_and_leaderboard_give_the_same_hlr_from_a_reference_two_folders_hold(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """Averaged once per folder, seed 0 weighed twice in the leaderboard: HLR moved from the report's."""
    a, b = folders
    full_data = (REFERENCE_TEST_ACC[0] + REFERENCE_TEST_ACC[1]) / 2  # two distinct runs: 0.85
    hlr = full_data - (0.50 + 0.52) / 2  # 0.34
    assert _report_hlr(a, tmp_path / "report") == f"{100 * hlr:+.1f}" == "+34.0"
    out = tmp_path / "board.csv"
    res = cli("leaderboard", str(a), str(b), "--out", str(out))
    assert res.exit_code == 0, res.output
    board = pd.read_csv(out)
    dm = board[board["objective"] == "dm"].iloc[0]
    assert dm["acc_real_hard"] == pytest.approx(full_data)
    assert dm["hlr"] == pytest.approx(hlr)
    cfm = board[board["objective"] == "cfm"].iloc[0]
    assert cfm["hlr"] == pytest.approx(full_data - 0.61)  # folder b's own set: the same two runs


def test_a_reference_run_written_twice_into_one_folder_counts_once(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """Two ``ddx evaluate`` runs into one folder each add the reference rows of their networks; the
    same cached run, written by both (each with its own config hash), is one run of the full-data row."""
    from orchestrator.report.experiment import load_experiment
    from orchestrator.report.tables import reference_summary

    a, _ = folders
    root = _experiment(
        tmp_path / "c",
        {"dm-1": _set_rows("dm-1", "dm", [(0.50, 0.50), (0.50, 0.52)])},
        _reference_rows("c", [0, 1], cached=False) + _reference_rows("c-again", [0], cached=True),
    )
    summary = reference_summary(load_experiment(str(root)))
    assert summary is not None and len(summary) == 1
    row = summary.iloc[0]
    assert row["seeds"] == 2 and row["test_mean"] == pytest.approx(0.85)
    assert row["test_std"] == pytest.approx(pd.Series([0.80, 0.90]).std())
    assert _report_hlr(root, tmp_path / "report") == _report_hlr(a, tmp_path / "report-a") == "+34.0"
