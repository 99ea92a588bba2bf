"""Rows record their protocol; rankings never mix protocols; DD-Ranking's scores from hand-made rows."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from methods.evaluation.dd_ranking import (
    augmentation_robust_score,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
)
from methods.evaluation.protocol import Protocol, protocol_name, settings_from_json, student_settings
from methods.evaluation.protocol import augmentation_off as without_augmentation
from methods.registry import PRESETS
from orchestrator.evaluation.jobs import EvalJob
from orchestrator.evaluation.reference import REFERENCE_FILE
from orchestrator.evaluation.tasks import protocol_columns
from orchestrator.report.leaderboard import leaderboard, load_references, load_rows, to_markdown
from orchestrator.report.write import write_report
from orchestrator.storage.results import ResultStore, rows_to_table, table_bytes, write_bytes_atomic


def f(x: float) -> float:
    """DD-Ranking's normalisation, written out independently of methods.evaluation.dd_ranking."""
    return float((np.exp(x) - np.exp(-1.0)) / (np.exp(1.0) - np.exp(-1.0)))


# --- protocol names and the row round trip ---------------------------------------------------------
def _columns(values: dict, mode: str) -> dict:
    """The protocol columns a row of ``mode`` gets on CIFAR-10 at IPC 10 under ``values``."""
    return protocol_columns(Protocol.of(values), EvalJob("convnet_d3", 32, 0, mode), "cifar10", 10)


@pytest.mark.parametrize("name", PRESETS.names())
@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_presets_round_trip_into_rows(name: str, mode: str, tmp_path: Path) -> None:
    values = {"preset": name}
    expected = student_settings(values, mode, "cifar10", 10)
    cols = _columns(values, mode)
    assert cols["protocol"] == name
    store = ResultStore(str(tmp_path / "exp"))
    store.write_trial_rows("t", [{"trial_key": "t", "eval_arch": "a", "eval_resolution": 32, "seed": 0,
                                  "label_mode": mode, "status": "ok", **cols}])  # fmt: skip
    row = store.read_trial_rows("t")[0]
    assert row["protocol"] == name
    assert settings_from_json(row["eval_settings"]) == expected  # settings → row JSON → settings
    assert json.loads(row["eval_settings"])["label_mode"] == mode


def test_protocol_names_follow_the_settings() -> None:
    # an override makes it custom; equal settings share the name, different settings do not
    a = protocol_name({"preset": "cfm_paper", "epochs": 80}, "cifar10", 10)
    b = protocol_name({"epochs": 80, "preset": "cfm_paper"}, "cifar10", 10)  # the order of keys does not matter
    c = protocol_name({"preset": "cfm_paper", "epochs": 81}, "cifar10", 10)
    assert a.startswith("custom-") and a == b and a != c
    # a full set of values (what eval_settings holds) names the protocol just like preset + overrides
    full = student_settings({"preset": "cfm_paper", "epochs": 80}, "soft", "cifar10", 10).to_dict()
    assert protocol_name(full, "cifar10", 10) == a
    # settings without a preset are custom even when their values equal a preset's
    assert protocol_name({}, "cifar10", 10).startswith("custom-")
    # measurement-only settings and the label mode are not part of the protocol
    assert protocol_name({"preset": "dd_standard", "track_test": True, "check_every": 5}) == "dd_standard"
    assert protocol_name({"preset": "cfm_paper", "label_mode": "hard"}, "cifar10") == "cfm_paper"
    # per-dataset / per-IPC values are part of the preset: cfm_code's CIFAR-10 batch follows the IPC
    ipc10 = student_settings({"preset": "cfm_code"}, "soft", "cifar10", 10).to_dict()
    assert protocol_name(ipc10, "cifar10", 10) == "cfm_code"
    assert protocol_name(ipc10, "cifar10", 50).startswith("custom-")
    # switching augmentation off names the ARS partner
    assert protocol_name(without_augmentation({"preset": "cfm_code"}), "cifar10", 10) == "cfm_code:noaug"
    assert protocol_name(without_augmentation({"preset": "cfm_paper", "epochs": 80}), "cifar10", 10) == a + ":noaug"
    # a hard-label student of a mixing protocol trains without CutMix, yet belongs to that protocol
    hard = student_settings({"preset": "cfm_code"}, "hard", "cifar10", 10)
    assert hard.mix == "none" and hard.label_mode == "hard"
    assert _columns({"preset": "cfm_code"}, "hard")["protocol"] == "cfm_code"


# --- DD-Ranking's formulas ------------------------------------------------------------------------------
def test_dd_ranking_formulas_on_hand_values() -> None:
    hlr = hard_label_recovery(0.90, 0.50)
    ior = improvement_over_random(0.55, 0.45)
    assert hlr == pytest.approx(0.40) and ior == pytest.approx(0.10)
    assert label_robust_score(hlr, ior) == pytest.approx(f(0.5 * 0.10 - 0.5 * 0.40))
    assert label_robust_score(hlr, ior, w=1.0) == pytest.approx(f(0.10))
    assert augmentation_robust_score(0.10, -0.02) == pytest.approx(f(0.5 * 0.10 + 0.5 * -0.02))
    # the normalisation's ends: a perfect method (IOR = 1, HLR = -1 impossible; α = 1) → 1, α = -1 → 0
    assert label_robust_score(-1.0, 1.0) == pytest.approx(1.0)
    assert label_robust_score(1.0, -1.0) == pytest.approx(0.0)
    assert math.isnan(label_robust_score(float("nan"), 0.1))
    with pytest.raises(ValueError):
        label_robust_score(0.1, 0.1, w=1.5)


# --- hand-made rows: two protocols, soft + hard, no-aug partner, reference ---------------------------
SOFT = "cfm_paper"
HARD = "dd_standard"
NOAUG = "cfm_paper:noaug"


def _settings(protocol: str, mode: str) -> str:
    values = without_augmentation({"preset": SOFT}) if protocol == NOAUG else {"preset": protocol}
    return _columns(values, mode)["eval_settings"]


def _rows(key: str, objective: str, protocol: str, mode: str, accs: list[tuple[float, float]]) -> list[dict]:
    base = {
        "sweep": "hand",
        "trial_id": key,
        "trial_key": key,
        "objective": objective,
        "parameterization": "pixels",
        "dataset": "cifar10",
        "ipc": 10,
        "distill_resolution": 32,
        "distill_seed": 0,
        "config_hash": key,
        "status": "ok",
        "error": None,
        "eval_arch": "convnet_d3",
        "eval_resolution": 32,
        "label_mode": mode,
        "protocol": protocol,
        "eval_settings": _settings(protocol, mode),
        "resize_mode": "none",
        "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
    }
    return [{**base, "seed": s, "val_acc": v, "test_acc": t} for s, (v, t) in enumerate(accs)]


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hand") / "exp"
    store = ResultStore(str(root))
    trials = {
        # cfm-1: the validation pick under cfm_paper; cfm-2 has the higher test but lower validation accuracy
        "cfm-1": _rows("cfm-1", "cfm", SOFT, "soft", [(0.50, 0.50), (0.50, 0.52)])
        + _rows("cfm-1", "cfm", SOFT, "hard", [(0.30, 0.30), (0.30, 0.32)])
        + _rows("cfm-1", "cfm", NOAUG, "soft", [(0.40, 0.40), (0.40, 0.42)]),
        "cfm-2": _rows("cfm-2", "cfm", SOFT, "soft", [(0.20, 0.60), (0.20, 0.60)])
        + _rows("cfm-2", "cfm", SOFT, "hard", [(0.20, 0.90), (0.20, 0.90)]),
        "rnd-1": _rows("rnd-1", "random", SOFT, "soft", [(0.45, 0.45), (0.45, 0.47)])
        + _rows("rnd-1", "random", SOFT, "hard", [(0.28, 0.28), (0.28, 0.28)])
        + _rows("rnd-1", "random", NOAUG, "soft", [(0.38, 0.38), (0.38, 0.38)])
        + _rows("rnd-1", "random", HARD, "hard", [(0.30, 0.30), (0.30, 0.30)]),
        "dm-1": _rows("dm-1", "dm", HARD, "hard", [(0.35, 0.35), (0.35, 0.37)]),
    }
    for key, rows in trials.items():
        store.write_trial_rows(key, rows)
    store.consolidate()
    ref = [
        {"sweep": "hand", "trial_key": "reference", "objective": "full_data", "parameterization": "real",
         "dataset": "cifar10", "label_mode": "hard", "protocol": "full_data", "status": "ok", "error": None,
         "eval_arch": "convnet_d3", "eval_arch_requested": "convnet_d3", "eval_resolution": 32, "seed": s,
         "val_acc": 0.8, "test_acc": t, "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}
        for s, t in enumerate([0.80, 0.82])
    ]  # fmt: skip
    write_bytes_atomic(str(root / REFERENCE_FILE), table_bytes(rows_to_table(ref)))
    return root


# the expected numbers, from the accuracies above by hand (means: 0.51, 0.31, 0.46, 0.28, …; full data 0.81)
EXPECTED = {
    # (label mode, protocol, objective): (HLR, IOR, LRS α, ARS β or None)
    ("soft", SOFT, "cfm"): (0.81 - 0.31, 0.51 - 0.46, 0.5 * 0.05 - 0.5 * 0.50, 0.5 * 0.05 + 0.5 * (0.41 - 0.38)),
    ("soft", SOFT, "random"): (0.81 - 0.28, 0.0, -0.5 * 0.53, 0.0),
    ("hard", SOFT, "cfm"): (0.81 - 0.31, 0.31 - 0.28, 0.5 * 0.03 - 0.5 * 0.50, None),
    ("hard", HARD, "dm"): (0.81 - 0.36, 0.36 - 0.30, 0.5 * 0.06 - 0.5 * 0.45, None),
    ("hard", HARD, "random"): (0.81 - 0.30, 0.0, -0.5 * 0.51, None),
    ("soft", NOAUG, "cfm"): (None, 0.41 - 0.38, None, None),  # the no-aug protocol has no hard rows
}


def test_leaderboard_scores_equal_hand_computed(hand: Path) -> None:
    board = leaderboard(load_rows([str(hand)]), reference=load_references([str(hand)]))
    by = {(r["label_mode"], r["protocol"], r["objective"]): r for _, r in board.iterrows()}
    assert by[("soft", SOFT, "cfm")]["trial_key"] == "cfm-1"  # selected on validation, not test
    for key, (hlr, ior, alpha, beta) in EXPECTED.items():
        r = by[key]
        for col, want in (("hlr", hlr), ("ior", ior)):
            assert math.isnan(r[col]) if want is None else r[col] == pytest.approx(want), (key, col)
        assert math.isnan(r["lrs"]) if alpha is None else r["lrs"] == pytest.approx(f(alpha)), key
        assert math.isnan(r["ars"]) if beta is None else r["ars"] == pytest.approx(f(beta)), key
    assert by[("soft", SOFT, "cfm")]["acc_real_hard"] == pytest.approx(0.81)


def test_rankings_never_mix_protocols(hand: Path) -> None:
    board = leaderboard(load_rows([str(hand)]))
    hard = board[board["label_mode"] == "hard"]
    # one setting, two protocols: each protocol ranks its own entries 1…n
    for protocol, part in hard.groupby("protocol"):
        assert sorted(part["rank"]) == list(range(1, len(part) + 1)), protocol
    assert set(hard["protocols_in_setting"]) == {2}
    md = to_markdown(board)
    assert f"## hard labels · protocol `{SOFT}`" in md and f"## hard labels · protocol `{HARD}`" in md
    assert "rows of 2 evaluation protocols (`cfm_paper`, `dd_standard`)" in md
    assert "rows of 3 evaluation protocols" not in md  # the soft setting has cfm_paper and cfm_paper:noaug


def test_report_tables_per_protocol_with_scores(hand: Path, tmp_path: Path) -> None:
    from test_report import md_tables

    write_report(str(hand), tmp_path, "md")
    md = (tmp_path / "report.md").read_text()
    tables = md_tables(md)
    title = f"Best configuration per method, soft labels, protocol `{SOFT}` (selected on validation)"
    rows = {r["objective"]: r for r in tables[title]}
    hlr, ior, alpha, beta = EXPECTED[("soft", SOFT, "cfm")]
    assert rows["cfm"]["HLR (pp)"] == f"{100 * hlr:+.1f}" and rows["cfm"]["IOR (pp)"] == f"{100 * ior:+.1f}"
    assert rows["cfm"]["LRS"] == f"{100 * f(alpha):.1f}" and rows["cfm"]["ARS"] == f"{100 * f(beta):.1f}"
    assert f"Best configuration per method, hard labels, protocol `{HARD}` (selected on validation)" in tables
    protocols = {(r["protocol"], r["labels"]): r for r in tables["Protocols in this experiment"]}
    assert protocols[(SOFT, "soft")]["differs from the preset in"] == "none"
    assert "augment=none" in protocols[(NOAUG, "soft")]["differs from the preset in"]
    assert "**Note:** rows of 3 evaluation protocols" in md
