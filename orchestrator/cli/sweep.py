"""``ddx validate`` and ``ddx sweep``: check a sweep file and its plan; run it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.text import Text

from orchestrator.cli.app import ADDRESS_HELP, connect, prepare_local_client
from orchestrator.cli.output import (
    EXIT_FAILED,
    SWEEP_RESUMES,
    console,
    err_console,
    fail,
    one_line_errors,
    show_summary,
    stopped,
    warn,
)
from orchestrator.cli.stopping import ctrl_c_says, stop_word_and_code
from orchestrator.errors import UserError

if TYPE_CHECKING:  # imported when the command runs
    from orchestrator.spec.model import SweepSpec
    from orchestrator.sweep.run import SweepOutcome


def _load(spec_path: Path):
    from orchestrator.spec.load import load_spec

    return load_spec(spec_path)


def _checked_plan(spec_path: Path, storage: str | None = None):
    """Load and validate a sweep file and compute its plan (no Ray, no torch); exits 2 on any error."""
    from orchestrator.spec.plan import describe_plan, resolve_storage

    try:
        s = resolve_storage(_load(spec_path), storage)
        return s, describe_plan(s)
    except UserError as err:
        fail(err)
    except Exception as err:  # a bug, not the user's input: still one line, and say so
        fail(
            UserError(
                f"internal error while checking the sweep ({type(err).__name__}: {err}); please report it",
                where=str(spec_path),
            )
        )
    raise AssertionError("unreachable")


def _print_plan(plan: dict) -> None:
    for line in plan["lines"]:
        console.print(Text(f"  {line}"), highlight=False, soft_wrap=True)


def validate(spec: Path = typer.Argument(..., help="Sweep YAML file.")) -> None:
    """Check a sweep file; print the plan or one line saying what is wrong (exit 2)."""
    _, plan = _checked_plan(spec)
    head = f" {spec}: {plan['trials']} trials × {plan['evaluations_per_trial']} evaluations"
    console.print(Text.assemble(("ok", "green"), head), highlight=False, soft_wrap=True)
    _print_plan(plan)


@ctrl_c_says(SWEEP_RESUMES)  # outside Tune's own handling, which takes Ctrl-C while the trials run
def sweep(
    spec: Path = typer.Argument(..., help="Sweep YAML file."),
    resume: bool = typer.Option(True, "--resume/--fresh", help="Resume an existing sweep (default) or start over."),
    address: str = typer.Option(None, "--address", envvar="RAY_ADDRESS", help=ADDRESS_HELP),
    storage: str = typer.Option(None, "--storage", help="Override the spec's storage (path or URI)."),
    max_concurrent: int = typer.Option(None, "--max-concurrent", min=1, help="Trials at once."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan; run and write nothing."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Ray's own logs."),
    dashboard: bool = typer.Option(
        False, "--dashboard", help="Start the embedded Ray's dashboard on 127.0.0.1:8265 (about 1 s more start-up)."
    ),
) -> None:
    """Run a sweep: Tune trials → Train distillation → parallel evaluation → Parquet."""
    s, plan = _checked_plan(spec, storage)
    console.print(
        Text.assemble(
            (s.name, "bold"),
            f": {plan['trials']} trials × {plan['evaluations_per_trial']} evaluations "
            f"({s.algorithm}) → {plan['experiment_dir']}",
        ),
        highlight=False,
        soft_wrap=True,
    )
    _print_plan(plan)
    if dry_run:
        for k, d in plan["swept"].items():
            console.print(Text(f"  {k}: {d}"), highlight=False, soft_wrap=True)
        return
    from orchestrator.storage.locations import check_storage  # pyarrow only: Ray is not imported yet
    from orchestrator.sweep.resume import check_owned, check_resume, hold_experiment
    from orchestrator.sweep.tracking import check_trackers

    with one_line_errors():  # before Ray starts: a mistyped path or URI, a missing tracker, one line in a second
        check_storage(s.storage, key="storage")
        check_trackers(s)
        check_owned(s)  # a folder ddx did not make: not written into, not even for the lease
    prepare_local_client(address)  # a bad $DDX_CACHE or `ddx up` record: one line, before the lease too
    with one_line_errors():
        lease = hold_experiment(s)  # no other sweep of this experiment runs (nor starts) until released
    try:
        with one_line_errors():  # a changed spec (read only: --fresh deletes once Ray is up and every check passed)
            saved_resumable = check_resume(s, fresh=False) if resume else None
        outcome = _run_sweep(s, resume, saved_resumable, address, max_concurrent, verbose, dashboard)
    finally:
        lease.release()
    from orchestrator.report.aggregate import seed_summary

    if not outcome.rows.empty:
        show_summary(seed_summary(outcome.rows))
    console.print(f"results: [bold]{outcome.results_path}[/] ({len(outcome.rows)} rows)")
    for stop in outcome.stopped_early:  # "ID KEY was stopped early by the scheduler at distillation step N (…)"
        console.print(
            Text(f"trial {stop}; it has no rows (a rerun leaves it stopped, --fresh runs it again)"),
            highlight=False,
            soft_wrap=True,
        )
    if outcome.trial_failures or not outcome.failed_rows.empty:
        report_failures(outcome)
    if outcome.unfinished:
        word, code = stop_word_and_code()
        err_console.print(
            f"[red]{word}[/]: {outcome.unfinished} trial(s) did not finish; {SWEEP_RESUMES}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=code)
    if not outcome.ok:
        raise typer.Exit(code=EXIT_FAILED)


def _run_sweep(
    s: SweepSpec, resume: bool, saved_resumable: bool | None, address: str | None, max_concurrent: int | None,
    verbose: bool, dashboard: bool,
) -> SweepOutcome:  # fmt: skip
    """Start or join Ray, prepare (``--fresh`` deletes here) and run the sweep; an error is
    reported here (one line) and exits."""
    from orchestrator.cluster import runtime
    from orchestrator.sweep import preflight

    try:
        connect(address, verbose, dashboard)
        resumed = preflight.prepare(s, fresh=not resume, warn=warn, resumed=saved_resumable)  # then the warm-up
        from orchestrator.sweep.run import run_sweep  # Tune and pandas: imported while the warm-up worker starts

        return run_sweep(s, resumed=resumed, max_concurrent=max_concurrent, console=console)
    except UserError as err:
        fail(err)
    except Exception as err:  # Tune or the store gave up part-way (a full disk, a store gone): one line, exit 1
        stopped(err, "the sweep", s.experiment_dir(), "storage", SWEEP_RESUMES, verbose)
    finally:
        runtime.shutdown()


def report_failures(outcome) -> None:
    """Name every failed trial and row with its error line (stderr), then how to retry."""
    rows = outcome.failed_rows
    for t in outcome.trial_failures:
        where = f" (log: {t.log})" if t.log else ""
        line = f"[red]trial failed[/] {escape(f'{t.trial_id} {_fmt_config(t.config)}: {t.error}{where}')}"
        err_console.print(line, soft_wrap=True, highlight=False)
    for _, r in rows.iterrows():
        what = f"{r['eval_arch']}@{r['eval_resolution']} seed {r['seed']} {r['label_mode']}"
        trial = f"trial {str(r['trial_key'])[:8]} ({r['objective']}, ipc {r['ipc']})"
        detail = escape(f"{trial} {what}: {r['error']}")
        err_console.print(f"[red]row failed[/] {detail}", soft_wrap=True, highlight=False)
    err_console.print(
        f"[red]{len(outcome.trial_failures)} trial(s) and {len(rows)} row(s) failed[/]; rerun the same command to "
        "retry only those (finished work is kept)",
        highlight=False,
    )


def _fmt_config(config: dict) -> str:
    shown = {k: v for k, v in config.items() if k != "repeat"}
    return "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else ""


__all__ = ["report_failures", "sweep", "validate"]
