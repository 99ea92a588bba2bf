"""``python -m orchestrator`` runs the ``ddx`` CLI."""

from orchestrator.cli import app

app(prog_name="ddx")
