"""``python -m orchestrator`` runs the ``ddx`` CLI."""

from orchestrator.cli import run

run()
