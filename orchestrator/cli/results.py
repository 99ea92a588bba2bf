"""``ddx report``, ``ddx leaderboard`` and ``ddx export``: what the result rows and sets show."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from orchestrator.cli.output import console, fail, one_line_errors, show_summary
from orchestrator.errors import UserError


def report(
    experiment: str = typer.Argument(..., help="Experiment directory (<storage>/<sweep>) or results.parquet."),
    fmt: str = typer.Option("all", "--format", help="md, html or all (both)."),
    out: Path = typer.Option(None, "--out", help="Output directory (default: <experiment>/report)."),
) -> None:
    """Write the sweep's report (tables, curves, image grids, provenance) from its Parquet files."""
    from orchestrator.report.tables import summary
    from orchestrator.report.write import FORMATS, write_report

    if fmt not in FORMATS:
        fail(UserError(f"must be one of {', '.join(FORMATS)} (got {fmt!r})", key="--format"))
        return
    if out is None and "://" in experiment:
        fail(UserError("give --out for a remote experiment (the report is written locally)", where=experiment))
        return
    from orchestrator.report.write import default_out_dir

    with one_line_errors(out or default_out_dir(experiment)):
        exp, paths = write_report(experiment, out, fmt)
    show_summary(summary(exp).drop(columns=["config", "distill_resolution"], errors="ignore"))
    console.print(f"{exp.status_line()} from {experiment}")
    for p in paths:
        console.print(f"wrote [bold]{p}[/]")


def leaderboard(
    results: list[str] = typer.Argument(..., help="Experiment directories or results.parquet files."),
    out: Path = typer.Option(None, "--out", help="Also write the leaderboard to this .md or .csv file."),
    published: Path = typer.Option(None, "--published", help="Published-numbers CSV (default: the packaged one)."),
) -> None:
    """Rank objective × parameterization per dataset / IPC / network / label mode across sweeps."""
    from methods.atomic import atomic_path
    from orchestrator.report.leaderboard import (
        display_rows,
        leaderboard,
        load_published,
        load_references,
        load_rows,
        to_markdown,
    )

    if out is not None and out.suffix not in (".md", ".csv"):
        fail(UserError("must end in .md or .csv", key="--out", where=str(out)))
        return
    try:
        rows = load_rows(results)
        references = load_references(results)
        try:
            pub = load_published(published)
        except (OSError, ValueError) as err:
            raise UserError(str(err), key="--published") from None
    except UserError as err:
        fail(err)
        return
    from rich.table import Table

    board = leaderboard(rows, pub, references)
    shown = display_rows(board)
    table = Table(
        title="leaderboard: best configuration by validation, ranked by test accuracy (final model) "
        "within each label regime and protocol"
    )
    numeric = ("rank", "test acc", "val acc", "configs", "Δ (pp)", "HLR (pp)", "IOR (pp)", "LRS", "ARS")
    for c in shown[0] if shown else ["setting"]:
        table.add_column(c, justify="right" if c in numeric else "left")
    for r in shown:
        table.add_row(*r.values())
    console.print(table)
    from orchestrator.report.leaderboard import protocol_notes

    for note in protocol_notes(board):
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if out is not None:
        with one_line_errors(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:  # a failed write leaves the old file, or none
                if out.suffix == ".md":
                    tmp.write_text(to_markdown(board))
                else:
                    board.to_csv(tmp, index=False)
        console.print(f"wrote [bold]{out}[/]")


def export(
    synthetic: Path = typer.Argument(..., help="A synthetic set (.pt, e.g. <experiment>/synthetic/<key>.pt)."),
    out: Path = typer.Option(..., "--out", help="Directory for the PNGs (one grid per class)."),
    resolution: int = typer.Option(None, "--resolution", min=1, help="Decode at this size (default: its own)."),
    images: bool = typer.Option(
        None,
        "--images/--no-images",
        help="Also write OUT/images/<class>/<i>.png, which ddx evaluate reads back (default: when the set has pixels).",
    ),
) -> None:
    """Decode a synthetic set (fields or pixels) at any resolution: one PNG grid per class, and the set as
    an image folder."""
    from orchestrator.report.grids import export_class_grids

    if not synthetic.is_file():
        fail(UserError("no such file (give a synthetic set .pt)", where=str(synthetic)))
        return
    with one_line_errors(out):
        paths, folder = export_class_grids(synthetic, out, resolution, image_folder=images)
    tree = f" and the set as an image folder, [bold]{folder}[/]" if folder is not None else ""
    console.print(f"wrote {len(paths)} class grids to [bold]{out}[/]{tree}")


__all__ = ["export", "leaderboard", "report"]
