"""A trial says "producing …" only of the prerequisite pieces the artifact store lacks: a rerun whose
teacher and experts are all stored says nothing of producing them (it said ``producing experts,teacher``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray

from methods.prerequisites import build_prerequisite
from orchestrator.spec.load import parse_spec
from orchestrator.sweep.progress import describe
from orchestrator.sweep.trial import TrialRun, producing_report
from tests.helpers import tiny_digits_spec


class Stop(BaseException):
    """Ends the trial where the test has seen enough (a BaseException: the trial records no failure)."""


class RayUsed(BaseException):
    """Ray was asked to start, run or wait for something (a BaseException: nothing catches it)."""


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any start of Ray, task launch or wait for a task fails the test: a trial whose pieces are
    all stored, or that stops at its report, uses no Ray (whether or not another test's Ray runs)."""

    def used(*_a: Any, **_k: Any) -> None:
        raise RayUsed

    for name in ("init", "get", "wait", "put"):
        monkeypatch.setattr(ray, name, used)


def _trial(tmp_path: Path, reports: list[dict[str, Any]]) -> TrialRun:
    """A TM trial with soft labels (it needs two experts and a teacher), outside Tune; its report
    stops it before any Ray task would start."""
    data = tiny_digits_spec(
        tmp_path / "store",
        method={"objective": "tm", "ipc": 1, "iterations": 2, "expert_epochs": 1, "max_start_epoch": 1},
        experts={"num_experts": 2, "train_epochs": 1},
        evaluation={"label_mode": ["hard", "soft"]},
    )
    data["method"].pop("batch_real")
    data["search"] = {}

    def report(metrics: dict[str, Any]) -> None:
        reports.append(metrics)
        if metrics.get("phase") == "prerequisites":
            raise Stop  # a piece would be produced next: a Ray task

    run = TrialRun(parse_spec(data), {}, {}, report)

    def distill() -> None:
        raise Stop  # the prerequisites are settled: distillation would start

    run.distill = distill  # type: ignore[method-assign]
    assert run.names == ["experts", "teacher"]
    return run


def _store_pieces(run: TrialRun, tmp_path: Path, leave_out: frozenset[tuple[str, int]] = frozenset()) -> None:
    """Publish every piece of the trial's prerequisites to its artifact store but ``leave_out``."""
    for name, options in run.prerequisites.options.items():
        prereq = build_prerequisite(name, options)
        for unit in range(prereq.units()):
            if (name, unit) not in leave_out:
                source = tmp_path / f"{name}-{unit}.bin"
                source.write_bytes(f"{name} {unit}".encode())
                run.artifacts.publish(name, prereq.describe(run.config.dataset, unit), source)


def test_a_rerun_with_every_piece_stored_reports_no_producing(tmp_path: Path) -> None:
    reports: list[dict[str, Any]] = []
    run = _trial(tmp_path, reports)
    _store_pieces(run, tmp_path)
    with pytest.raises(Stop):
        run._run()
    assert [r for r in reports if r.get("phase") == "prerequisites"] == []
    assert {name: len(refs) for name, refs in run.prerequisites.refs.items()} == {"experts": 2, "teacher": 1}
    assert run.produced == 0


@pytest.mark.parametrize(
    ("leave_out", "said"),
    [
        (frozenset({("experts", 1)}), "producing experts (1 of 2 pieces)"),
        (frozenset({("teacher", 0)}), "producing teacher"),
        (frozenset({("experts", 0), ("experts", 1), ("teacher", 0)}), "producing experts, teacher"),
    ],
)
def test_producing_names_only_the_missing_pieces(tmp_path: Path, leave_out: frozenset, said: str) -> None:
    reports: list[dict[str, Any]] = []
    run = _trial(tmp_path, reports)
    _store_pieces(run, tmp_path, leave_out)
    with pytest.raises(Stop):  # reported once the store was asked, before any task is launched
        run._run()
    assert [describe(r) for r in reports] == [said]


def test_the_report_of_missing_pieces() -> None:
    assert producing_report({"experts": (3, 10)}) == {
        "phase": "prerequisites",
        "prerequisites": "experts (3 of 10 pieces)",
    }
    assert describe(producing_report({"experts": (10, 10), "teacher": (1, 1)})) == "producing experts, teacher"
