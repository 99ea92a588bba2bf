"""``python -m orchestrator`` runs the ``ddx`` CLI."""

from orchestrator.cli.main import run

run()
