"""Resuming a sweep: ``--max-concurrent`` applies to the restored Tune experiment too."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from ray import tune

from orchestrator.sweep import set_max_concurrent


def _spans(folder: Path) -> list[tuple[float, float]]:
    return sorted(tuple(map(float, p.read_text().split())) for p in folder.glob("span-*"))  # type: ignore[misc]


def test_max_concurrent_applies_to_a_restored_tuner(tmp_path: Path, ray_session) -> None:
    def trainable(config: dict) -> None:
        folder = Path(config["dir"])
        first = folder / f"attempt-{config['i']}"
        if not first.exists():  # every trial errors once, so the restore has them all to run
            first.touch()
            raise RuntimeError("first attempt fails")
        start = time.time()
        time.sleep(1.5)
        (folder / f"span-{config['i']}").write_text(f"{start} {time.time()}")
        tune.report({"x": 1})

    space = {"i": tune.grid_search([0, 1, 2]), "dir": str(tmp_path)}
    run = tune.RunConfig(name="exp", storage_path=str(tmp_path / "store"), verbose=0)
    tune.Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(max_concurrent_trials=3), run_config=run).fit()
    assert not _spans(tmp_path)

    restored = tune.Tuner.restore(str(tmp_path / "store" / "exp"), trainable, resume_errored=True)
    set_max_concurrent(restored, 1)
    restored.fit()
    spans = _spans(tmp_path)
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # one at a time, although 2 CPUs would hold two
