"""Writing one experiment's report: its rows → one :class:`~orchestrator.report.document.Document`
→ Markdown and/or HTML."""

from __future__ import annotations

from pathlib import Path

from orchestrator.report.document import Document, build_document
from orchestrator.report.experiment import Experiment, load_experiment
from orchestrator.report.html import render_html
from orchestrator.report.markdown import render_markdown

FORMATS = ("md", "html", "all")


def default_out_dir(experiment: str) -> Path:
    """``<experiment>/report`` (next to ``results.parquet`` when given the file)."""
    if "://" in experiment:
        raise ValueError("give --out for a remote experiment (the report is written locally)")
    p = Path(experiment)
    return (p.parent if p.suffix == ".parquet" else p) / "report"


def write_report(experiment: str, out_dir: Path | None = None, fmt: str = "all") -> tuple[Experiment, list[Path]]:
    """Build the report of ``experiment`` and write it in ``fmt`` (md, html or all) under ``out_dir``."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    exp = load_experiment(experiment)
    doc = build_document(exp)
    out = out_dir or default_out_dir(experiment)
    paths = []
    if fmt in ("md", "all"):
        paths.append(render_markdown(doc, out))
    if fmt in ("html", "all"):
        paths.append(render_html(doc, out))
    return exp, paths


__all__ = ["FORMATS", "Document", "Experiment", "build_document", "load_experiment", "write_report"]
