"""A researcher's own method, from their own package, with no line of ddx changed.

``tests/plugins/ddx_toy`` (installed by the README's test command, ``scripts/test.sh``) declares,
with one entry-point line, an objective (``toy_match``) with its own new prerequisite
(``prototypes``), a student network (``toy_mlp``) and an evaluation preset (``toy_quick``). A
sweep using them is validated exactly like one of built-ins, runs end to end on the embedded Ray,
and its rows, report and leaderboard carry the plugin's fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from methods.registry import NETWORKS, OBJECTIVES, PREREQUISITES, PRESETS
from orchestrator.errors import SpecError
from orchestrator.spec.load import parse_spec
from orchestrator.spec.plan import describe_plan
from tests.helpers import REPO, cli, ddx, write_spec


def toy_spec(storage: Path, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "toy",
        "storage": str(storage),
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"objective": "toy_match", "iterations": 20, "lr_images": 0.5, "norm": "l1"},
        "search": {"ipc": {"grid": [1, 2]}, "pull": {"grid": [0.5, 2.0]}},
        "prototypes": {"samples_per_class": 20},
        "evaluation": {"preset": "toy_quick"},
        "resources": {"max_concurrent_trials": 2},
    }
    for key, value in changes.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    return spec


def test_the_plugin_registers_through_its_entry_point() -> None:
    for registry, name in ((OBJECTIVES, "toy_match"), (PREREQUISITES, "prototypes"), (NETWORKS, "toy_mlp")):
        assert registry.origin(name).startswith("ddx-toy (ddx.plugins: toy = ddx_toy:ENTRIES)"), name
    assert PRESETS.get("toy_quick").archs == ("toy_mlp",)
    assert OBJECTIVES.get("toy_match").requires == ("prototypes",)
    assert not Path(OBJECTIVES.get("toy_match").implementation().__module__.replace(".", "/")).is_relative_to(
        REPO / "methods"
    )


#: (change to the spec, the key the one line names, what it says)
TYPOS_AND_RULES = [
    ({"method": {"objective": "toy_mach"}}, "method.objective", "unknown objective 'toy_mach' (did you mean 'toy_ma"),
    ({"method": {"pul": 1.0}}, "method.pul", "unknown hyper-parameter (did you mean 'pull'?)"),
    ({"method": {"norm": "l3"}}, "method.norm", "must be 'l2' or 'l1'"),
    ({"search": {"pull": {"grid": [0.5, -1.0]}}}, "search.pull.grid[1]", "must be > 0"),
    ({"prototypes": {"sample_per_class": 3}}, "prototypes.sample_per_class", "did you mean 'samples_per_class'?"),
    ({"prototypes": {"samples_per_class": 1}}, "prototypes.samples_per_class", "needs prototypes.samples_per_class ≥"),
    ({"evaluation": {"preset": "toy_quik"}}, "evaluation.preset", "unknown preset 'toy_quik' (did you mean 'toy_q"),
    ({"evaluation": {"archs": ["toy_mpl"]}}, "evaluation.archs[0]", "unknown network 'toy_mpl' (did you mean 'toy_m"),
    ({"dataset": {"resolution": 2}}, "evaluation.archs[0]", "toy_mlp needs inputs of at least 4 px"),
]


def test_a_plugin_sweep_validates_like_a_builtin_one(tmp_path: Path) -> None:
    spec = parse_spec(toy_spec(tmp_path))
    plan = describe_plan(spec)
    assert plan["prerequisites"] == {"prototypes": ["toy_match"]}  # the plan lists its prerequisite
    assert plan["trials"] == 4 and plan["distinct_keys"] == 4
    assert spec.evaluation.archs == ["toy_mlp"] and spec.evaluation.epochs == 5  # the preset filled them
    assert spec.prototypes.samples_per_class == 20  # its block, generated from its options
    for change, key, says in TYPOS_AND_RULES:
        with pytest.raises(SpecError) as info:
            parse_spec(toy_spec(tmp_path, **change), where="toy.yaml")
        assert info.value.line().startswith(f"toy.yaml: {key}: ") and says in info.value.line(), info.value.line()


def test_a_plugin_sweep_runs_end_to_end_and_its_fields_reach_the_rows_report_and_leaderboard(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "toy.yaml", toy_spec(tmp_path / "store"))
    proc = ddx("sweep", str(path), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = pd.read_parquet(tmp_path / "store" / "toy" / "results.parquet")
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    assert set(rows["objective"]) == {"toy_match"} and set(rows["eval_arch"]) == {"toy_mlp"}
    assert set(rows["protocol"]) == {"toy_quick"}  # the plugin's preset names the protocol
    assert sorted(rows["pull"]) == [0.5, 0.5, 2.0, 2.0] and set(rows["norm"]) == {"l1"}  # its options
    assert (rows["prototype_samples"] == 20).all()  # its prerequisite's row field
    assert rows["toy_final_distance"].notna().all() and (rows["toy_final_distance"] >= 0).all()  # its objective's
    assert (rows["prerequisite_pieces_produced"].max() == 1) and rows["test_acc"].gt(0.1).all()
    report = cli("report", str(tmp_path / "store" / "toy"), "--format", "md", "--out", str(tmp_path / "report"))
    assert report.exit_code == 0, report.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert "toy_match" in md and "pull" in md and "toy_mlp" in md
    board = cli("leaderboard", str(tmp_path / "store" / "toy"))
    assert board.exit_code == 0 and "toy_match" in board.output and "toy_quick" in board.output, board.output
