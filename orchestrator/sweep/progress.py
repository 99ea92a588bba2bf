"""Live sweep progress: a Tune callback feeding a display in the driver process.

Tune pickles its callbacks with the experiment (for ``Tuner.restore``), so the callback
holds no display: it forwards events to :data:`SINK`, which the CLI sets in this process.
Trials report while they run (prerequisites, distillation step / loss / probe accuracy,
evaluations done), so the display shows each running trial's phase. On a terminal it is a
rich live view; otherwise (a log file, CI) it prints one plain line per trial event and at
most one progress line per trial every ``log_every`` seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orchestrator.sweep.distill_job import STOPPED_AT, Metrics
from orchestrator.sweep.early_stop import describe_stop

SINK: Callable[[str, str, Metrics], None] | None = None

#: phases after which a trial has nothing left to do (``stopped``: the scheduler stopped it in an earlier run)
FINAL_PHASES = {"done", "failed", "stopped"}


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


def _emit(event: str, trial_id: str, data: Metrics) -> None:
    if SINK is not None:
        SINK(event, trial_id, data)


def describe(result: Metrics) -> str:
    """One short phrase for a trial's latest result."""
    phase = result.get("phase", "")
    if phase == "prerequisites":
        return f"producing {result.get('prerequisites', 'prerequisites')}"
    if phase == "distill":
        text = f"distil {result.get('distill_step', 0)}/{result.get('distill_steps', '?')}"
        loss = result.get("distill_loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            text += f" loss {loss:.4g}"
        probe = result.get("probe_val_acc")
        if isinstance(probe, (int, float)):
            text += f" probe {100 * probe:.1f}%"
        return text
    if phase == "evaluate":
        return f"evaluate {result.get('evals_done', 0)}/{result.get('evals_total', '?')}"
    if phase == "failed":
        return f"failed: {result.get('error', '')}"
    if phase == "done":
        return "done"
    if phase == "stopped":
        return f"stopped early by the scheduler ({describe_stop(result)})"
    return phase or "starting"


@dataclass
class SweepProgress:
    """Counts trials, tracks the best metric and each running trial's phase; renders as rich or plain text."""

    metric: str
    mode: str
    total: int | None
    console: Console
    log_every: float = 30.0
    running: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    #: trials the scheduler stopped (now or in an earlier run): trial id → where and on what (:func:`describe_stop`)
    stopped: dict[str, str] = field(default_factory=dict)
    best: float | None = None
    best_trial: str | None = None
    _last_log: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.live_mode = self.console.is_terminal
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
            ("  stopped early ", "dim"),
            (str(len(self.stopped)), "magenta"),
            (f"  best {self.metric} ", "dim"),
            (best, "bold"),
        )
        table = Table.grid(padding=(0, 2))
        for trial_id, what in sorted(self.running.items()):
            table.add_row(Text(trial_id, style="dim"), Text(self.keys.get(trial_id, "")[:8], style="dim"), what)
        return Group(self.bar, line, table)

    def _log(self, trial_id: str, text: str, force: bool = False) -> None:
        if self.live_mode:
            return
        now = time.monotonic()
        if force or now - self._last_log.get(trial_id, -math.inf) >= self.log_every:
            self._last_log[trial_id] = now
            key = self.keys.get(trial_id, "")[:8]
            self.console.print(f"[{time.strftime('%H:%M:%S')}] trial {trial_id} {key}: {text}", highlight=False)

    def __call__(self, event: str, trial_id: str, data: Metrics) -> None:
        if "trial_key" in data:
            self.keys[trial_id] = str(data["trial_key"])
        if event == "start":
            self.running[trial_id] = "starting"
            self._log(trial_id, "started", force=True)
        elif event == "result":
            self.running[trial_id] = describe(data)
            if data.get("phase") not in FINAL_PHASES:  # the completion event says it
                self._log(trial_id, self.running[trial_id], force=data.get("phase") != "distill")
        elif event in ("complete", "error"):
            self.running.pop(trial_id, None)
            if event == "error":
                self.failed.add(trial_id)
                self._log(trial_id, "errored", force=True)
            elif data.get("phase") == "failed":
                self.failed.add(trial_id)
                self._log(trial_id, describe(data), force=True)
            elif data.get(STOPPED_AT) is not None or data.get("phase") == "stopped":
                self.stopped[trial_id] = describe_stop(data)
                self._log(trial_id, f"stopped early by the scheduler ({self.stopped[trial_id]})", force=True)
            elif data.get("phase") not in FINAL_PHASES:  # ended before it finished (the sweep is stopping)
                self._log(trial_id, f"ended unfinished ({describe(data)})", force=True)
            else:
                self.done.add(trial_id)
                self._log(trial_id, "done", force=True)
        value = data.get(self.metric)
        if data.get("phase") == "done" and isinstance(value, (int, float)) and not math.isnan(float(value)):
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            if better:
                self.best, self.best_trial = float(value), trial_id
        self.bar.update(self.task, completed=len(self.done) + len(self.failed) + len(self.stopped))
        if self.live_mode:
            self.live.update(self.render())

    def __enter__(self) -> SweepProgress:
        global SINK
        SINK = self
        if self.live_mode:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        global SINK
        SINK = None
        if self.live_mode:
            self.live.update(self.render())
            self.live.__exit__(*exc)
