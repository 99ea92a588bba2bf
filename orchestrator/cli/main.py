"""The ``ddx`` command: every command registered on the app, in the order ``ddx --help`` lists them."""

from __future__ import annotations

from orchestrator.cli import evaluate, local, results, sweep
from orchestrator.cli.app import app, run

#: the commands, in the order ``ddx --help`` lists them
COMMANDS = (
    sweep.validate,
    sweep.sweep,
    results.report,
    results.leaderboard,
    evaluate.evaluate,
    results.export,
    local.up,
    local.down,
)
for command in COMMANDS:
    app.command()(command)

__all__ = ["COMMANDS", "app", "run"]
