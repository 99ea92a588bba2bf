"""Live sweep progress: a Tune callback feeding a rich display in the driver process.

Tune pickles its callbacks with the experiment (for ``Tuner.restore``), so the callback
holds no display: it forwards events to :data:`SINK`, which the CLI sets in this process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

SINK: Callable[[str, str, dict[str, Any]], None] | None = None


class ForwardingCallback(Callback):
    """Forwards trial start/result/completion/error events to :data:`SINK`."""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _emit("start", trial.trial_id, {})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        _emit("result", trial.trial_id, dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _emit("complete", trial.trial_id, dict(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _emit("error", trial.trial_id, {"error": str(getattr(trial, "error_file", "") or "")})


def _emit(event: str, trial_id: str, data: dict[str, Any]) -> None:
    if SINK is not None:
        SINK(event, trial_id, data)


@dataclass
class SweepProgress:
    """Counts trials and tracks the best metric; renders as a rich progress bar."""

    metric: str
    mode: str
    total: int | None
    console: Console
    running: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    best: float | None = None
    best_trial: str | None = None

    def __post_init__(self) -> None:
        self.bar = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task("trials", total=self.total)
        self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)

    def render(self) -> Group:
        best = "–" if self.best is None else f"{self.best:.4f} ({self.best_trial})"
        line = Text.assemble(
            ("done ", "dim"),
            (str(len(self.done)), "green"),
            ("  running ", "dim"),
            (str(len(self.running)), "yellow"),
            ("  failed ", "dim"),
            (str(len(self.failed)), "red"),
            (f"  best {self.metric} ", "dim"),
            (best, "bold"),
        )
        return Group(self.bar, line)

    def __call__(self, event: str, trial_id: str, data: dict[str, Any]) -> None:
        if event == "start":
            self.running.add(trial_id)
        elif event in ("complete", "error"):
            self.running.discard(trial_id)
            (self.done if event == "complete" else self.failed).add(trial_id)
        value = data.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(float(value)):
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            if better:
                self.best, self.best_trial = float(value), trial_id
        self.bar.update(self.task, completed=len(self.done) + len(self.failed))
        self.live.update(self.render())

    def __enter__(self) -> SweepProgress:
        global SINK
        SINK = self
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        global SINK
        SINK = None
        self.live.update(self.render())
        self.live.__exit__(*exc)
        if not self.console.is_terminal:  # a non-terminal Live leaves its last line open
            self.console.line()
