"""Render a report :class:`~orchestrator.report.document.Document` as Markdown (figures as PNG files)."""

from __future__ import annotations

from pathlib import Path

from methods.atomic import atomic_path
from orchestrator.report.document import Document, Figure, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table under a ``####`` heading (the table's title)."""
    lines = [f"#### {table.title}", ""]
    lines.append("| " + " | ".join(_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"*{table.note}*"]
    return "\n".join(lines)


def render_markdown(doc: Document, out_dir: Path, figures_dir: str = "figures") -> Path:
    """Write ``report.md`` and its figures under ``out_dir``; returns the Markdown file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / figures_dir).mkdir(exist_ok=True)
    parts = [f"# {doc.title}", "", *doc.intro, ""]
    parts.append("Contents: " + " · ".join(f"[{s.title}](#{s.anchor})" for s in doc.sections))
    for sec in doc.sections:
        parts += ["", f'<a id="{sec.anchor}"></a>', f"## {sec.title}", ""]
        parts += [*sec.text]
        for block in sec.blocks:
            parts.append("")
            if isinstance(block, Table):
                parts.append(table_markdown(block))
            elif isinstance(block, Figure):
                rel = f"{figures_dir}/{block.name}.png"
                with atomic_path(out_dir / rel) as tmp:
                    tmp.write_bytes(block.png)
                parts += [f"![{block.name}]({rel})", "", f"*{block.caption}*"]
            else:
                parts.append(block)
    path = out_dir / "report.md"  # after its figures: a report.md names only files that are whole
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts) + "\n")
    return path
