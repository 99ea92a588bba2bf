"""Render a report :class:`~orchestrator.report.document.Document` as one self-contained HTML file.

Images are embedded as ``data:`` URIs and the stylesheet is inline, so the file can be
mailed, attached or opened offline; it loads nothing from the network and runs no script.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from methods.atomic import atomic_path
from orchestrator.report.document import Document, Figure, Table

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.2rem; }
h4 { margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: .8rem 0 1.4rem; } figure img { max-width: 100%; border: 1px solid #e2e2e2; }
figcaption { font-size: .85rem; color: #555; } .note { font-size: .82rem; color: #555; font-style: italic; }
nav a { margin-right: .8rem; } details { margin-bottom: 1rem; }
"""


def _num(text: str) -> bool:
    t = text.replace("±", "").replace("(1 seed)", "").replace("—", "").replace(" ", "").replace(".", "")
    return t.lstrip("-").isdigit()


def table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if _num(c) else ''}>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table.rows
    )
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (
        f"<h4>{html.escape(table.title)}</h4><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def figure_html(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    cap = html.escape(fig.caption)
    return f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"><figcaption>{cap}</figcaption></figure>'


def inline(text: str) -> str:
    """Escape ``text`` and render the little Markdown our prose uses: **bold**, `code`, *italic*."""
    out = html.escape(text)
    for mark, tag in (("**", "strong"), ("`", "code"), ("*", "em")):
        pieces = out.split(mark)
        if len(pieces) > 1 and len(pieces) % 2 == 1:
            out = "".join(p if k % 2 == 0 else f"<{tag}>{p}</{tag}>" for k, p in enumerate(pieces))
    return out


def _paragraph(text: str) -> str:
    return f"<p>{inline(text)}</p>"


def render_html(doc: Document, out_dir: Path) -> Path:
    """Write ``report.html`` (single file, images embedded) under ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(doc.title)}</h1>",
        *[_paragraph(p) for p in doc.intro],
        f"<nav>{nav}</nav>",
    ]
    for sec in doc.sections:
        parts.append(f'<section id="{sec.anchor}"><h2>{html.escape(sec.title)}</h2>')
        parts += [_paragraph(t) for t in sec.text]
        for block in sec.blocks:
            if isinstance(block, Table):
                if block.title.startswith("Data: "):
                    parts.append(f"<details><summary>{html.escape(block.title)}</summary>{table_html(block)}</details>")
                else:
                    parts.append(table_html(block))
            elif isinstance(block, Figure):
                parts.append(figure_html(block))
            else:
                parts.append(_paragraph(block))
        parts.append("</section>")
    parts.append("</body></html>")
    path = out_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
