"""What every command prints: the consoles, one-line errors (exit 2), warnings, wide tables,
the "stopped part-way" line (exit 1) and the exit codes themselves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from orchestrator.errors import UserError

console = Console()
err_console = Console(stderr=True)

#: exit codes of ``ddx sweep`` (docs/operations.md, "Exit codes")
EXIT_FAILED = 1  # the sweep ran, but a trial errored or an evaluation row is ``failed``
EXIT_BAD_INPUT = 2  # nothing ran: the spec, a flag, the storage or the cluster is unusable
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT) before every trial finished: 128 + SIGINT, as shells do
EXIT_TERMINATED = 143  # stopped by SIGTERM (a scheduler's preemption, `timeout`, `kill`): 128 + SIGTERM
#: what an interrupted command's line says to do
SWEEP_RESUMES = "rerun the same command to resume (finished work is kept)"
EVALUATE_FINISHES = "rerun the same command to finish (finished evaluations are kept)"


def warn(line: str) -> None:
    """Print ``warning <one line>`` on stderr (user text is never read as markup); the command goes on."""
    err_console.print(f"[yellow]warning[/] {escape(line)}", soft_wrap=True, highlight=False)


def fail(err: UserError) -> NoReturn:
    """Print ``error: <one line>`` on stderr (user text is never read as markup) and exit 2."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", err.line()), highlight=False, soft_wrap=True)
    raise typer.Exit(code=EXIT_BAD_INPUT)


def os_error(err: OSError, out: object = None) -> UserError:
    """A file the command could not read or write (an ``--out`` that cannot be made, a read-only
    folder): one line naming it, instead of the traceback; ``out``: the command's ``--out``."""
    named = err.filename if err.filename is not None else out  # a failed write() names no file: the --out
    where = None if named is None else str(named)
    reason = err.strerror or type(err).__name__
    if out is not None and where is not None and (where.startswith(str(out)) or str(out).startswith(where)):
        return UserError(f"cannot write it ({reason}); choose another", where=where, key="--out")  # in it, on its way
    return UserError(reason, where=where)


@contextmanager
def one_line_errors(out: object = None) -> Iterator[None]:
    """Bad input (:class:`UserError`) or a file that cannot be read or written (:func:`os_error`,
    ``out``: the command's ``--out``) inside the block: one line on stderr, exit 2."""
    try:
        yield
    except UserError as err:
        fail(err)
    except OSError as err:
        fail(os_error(err, out))


#: exit codes of ``ddx sweep`` (docs/operations.md, "Exit codes")


def stopped(err: Exception, what: str, location: str, key: str, fix: str, verbose: bool) -> NoReturn:
    """A command (``what``: the sweep, the evaluation) that stopped part-way on an error of its
    own — not bad input, not Ctrl-C: one line saying why and ``fix``, exit 1. The results'
    ``location`` (named ``key``) is asked first (a probe written, read back and deleted; a local
    disk's free space): when it cannot be written — a full disk, a store gone — that is the line,
    since the error itself is then only a consequence (e.g. Tune's state files cut short).
    Finished work is kept (every row and set is written atomically), so the same command goes on."""
    from orchestrator.errors import error_line
    from orchestrator.storage.locations import check_room, check_storage

    if verbose:
        err_console.print_exception()
    try:
        check_storage(location, key=key)
        check_room(location, key=key)
        why = error_line(err) + ("" if verbose else " (--verbose shows where)")
    except UserError as store:
        why = store.line()
    err_console.print(
        Text.assemble(("error:", "bold red"), f" {what} stopped part-way: {why}; {fix}"),
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code=EXIT_FAILED)


def show_summary(summary) -> None:
    """Print mean ± std over seeds; columns that are the same in every row go in the title."""
    from rich.table import Table

    from orchestrator.report.aggregate import GROUP_COLUMNS

    stats = {"seeds", "val_mean", "val_std", "test_mean", "test_std", "max_over_test_mean", "max_over_test_std"}
    columns = [c for c in summary.columns if c not in stats and c != "trial_key"]
    varying = [c for c in columns if summary[c].astype(str).nunique() > 1]
    constant = [c for c in columns if c not in varying and len(summary)]
    fixed = ", ".join(f"{c}={_fmt(summary[c].iloc[0])}" for c in constant)
    table = Table(
        title="mean ± std over seeds — final model; val = split carved from train (selection)",
        caption=fixed or None,
    )
    table.add_column("trial")
    for c in varying:
        table.add_column(c, justify="right" if c in ("ipc", "eval_resolution") else "left")
    for c in ("seeds", "val %", "test %"):
        table.add_column(c, justify="right")
    order = [c for c in GROUP_COLUMNS if c in varying] + [c for c in varying if c not in GROUP_COLUMNS]
    rows = summary.sort_values(order) if order else summary
    for _, r in rows.iterrows():
        table.add_row(
            str(r["trial_key"])[:8],
            *[_fmt(r[c]) for c in varying],
            str(r["seeds"]),
            f"{100 * r['val_mean']:.1f} ± {100 * r['val_std']:.1f}",
            f"{100 * r['test_mean']:.1f} ± {100 * r['test_std']:.1f}",
        )
    print_wide(table)


def print_wide(table) -> None:
    """Print a table; into a file or pipe (no terminal to wrap for) at its natural width, unwrapped."""
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update(width=10_000), table).maximum
    Console(width=max(console.width, natural)).print(table)  # Console.print clamps to its own width


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


__all__ = [
    "EVALUATE_FINISHES",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "SWEEP_RESUMES",
    "console",
    "err_console",
    "fail",
    "one_line_errors",
    "os_error",
    "print_wide",
    "show_summary",
    "stopped",
    "warn",
]
