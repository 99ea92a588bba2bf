"""``ddx``: the command line (Typer + rich).

Heavy modules (torch, Ray, pandas) are imported inside the commands that need them, so
``ddx validate`` and ``ddx sweep --dry-run`` start in well under a second.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from orchestrator import __version__
from orchestrator.errors import SpecError, UserError

if TYPE_CHECKING:  # the CLI imports them when a command needs them
    from orchestrator.spec.model import SweepSpec
    from orchestrator.sweep.run import SweepOutcome

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ddx: sweep dataset-distillation methods on Ray, evaluate them honestly, report.",
)
console = Console()
err_console = Console(stderr=True)

ADDRESS_HELP = (
    "Ray cluster address: auto, HOST:PORT or ray://HOST:PORT (default: $RAY_ADDRESS, else the local Ray of "
    "`ddx up` when it runs, else an embedded local Ray of ddx's own, even where `ray start` runs one)."
)


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


#: exit codes of ``ddx sweep`` (README, "Exit codes")
EXIT_FAILED = 1  # the sweep ran, but a trial errored or an evaluation row is ``failed``
EXIT_BAD_INPUT = 2  # nothing ran: the spec, a flag, the storage or the cluster is unusable
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT) before every trial finished: 128 + SIGINT, as shells do
EXIT_TERMINATED = 143  # stopped by SIGTERM (a scheduler's preemption, `timeout`, `kill`): 128 + SIGTERM
#: what an interrupted command's line says to do
SWEEP_RESUMES = "rerun the same command to resume (finished work is kept)"
EVALUATE_FINISHES = "rerun the same command to finish (finished evaluations are kept)"


#: the signal that is stopping the running command: SIGINT (Ctrl-C), or SIGTERM (:func:`take_sigterm`)
_stopping_signal = signal.SIGINT


def stop_word_and_code() -> tuple[str, int]:
    """How a stopped command's last line starts, and its exit code: ``interrupted`` and 130 after
    Ctrl-C, ``terminated (SIGTERM)`` and 143 after SIGTERM."""
    if _stopping_signal == signal.SIGTERM:
        return "terminated (SIGTERM)", EXIT_TERMINATED
    return "interrupted", EXIT_INTERRUPTED


def _sigterm_as_ctrl_c(signum: int, frame: object) -> None:
    global _stopping_signal
    _stopping_signal = signal.SIGTERM
    os.kill(os.getpid(), signal.SIGINT)


def take_sigterm() -> None:
    """Stop on SIGTERM the way Ctrl-C stops: the handler sends this process SIGINT, so Tune ends its
    running trials (finished work is kept, the same command resumes) or, outside Tune, the command
    stops with one line. A job scheduler's preemption, ``timeout`` and ``kill`` send SIGTERM; Ray's
    own handler (installed by ``ray.init``) printed C++ stack lines and exited 1, so the command
    takes the signal again once Ray is up. Main thread only (no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)


@contextmanager
def ctrl_c_says(fix: str) -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM inside the block (or the decorated command): ``interrupted: FIX``
    (``terminated (SIGTERM): FIX``) on stderr and exit 130 (143), after the command's own
    ``finally`` (Ray's shutdown). Typer's own handling exits 130 without a word."""
    global _stopping_signal
    _stopping_signal = signal.SIGINT
    previous = signal.getsignal(signal.SIGTERM)
    take_sigterm()
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, SystemExit):
            if err.code != signal.SIGTERM:
                raise
            # SIGTERM while ray.init runs: Ray's own handler (set first thing in ray.init) exits with 15
            _stopping_signal = signal.SIGTERM
        word, code = stop_word_and_code()
        err_console.print(f"[red]{word}[/]: {fix}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=code) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _version(value: bool) -> None:
    if value:
        console.print(f"ddx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ddx: sweep dataset-distillation methods on Ray, evaluate them honestly, report."""


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


def _prepare_local_client(address: str | None) -> None:
    """Without an address, a command may use the local Ray of ``ddx up``: ready the environment
    for it before Ray is imported (:func:`orchestrator.cluster.local_ray.prepare_client`); a record of
    it that is wrong is one line, exit 2; so is a ``$DDX_CACHE`` that cannot be used."""
    from orchestrator.cluster import local_ray

    try:
        local_ray.check_cache_dir()
        if not address:
            local_ray.prepare_client()
    except UserError as err:
        fail(err)


def _connect(address: str | None, verbose: bool, dashboard: bool) -> None:
    """Connect to (or start) Ray and say which; ``--dashboard`` only starts an embedded Ray's."""
    from orchestrator.cluster import runtime

    where = runtime.connect(address, verbose=verbose, dashboard=dashboard)
    take_sigterm()  # ray.init installed its own SIGTERM handler (C++ stack lines, exit 1)
    if not verbose:
        runtime.one_line_ray_logs()  # a failed trial is one line at the end, not Tune's traceback on the way
    console.print(f"running on {where}", soft_wrap=True, highlight=False)
    if dashboard and not runtime.is_embedded():
        warn("--dashboard applies to an embedded Ray only; this one has its own (`ddx up --dashboard`; a cluster's)")


@app.command()
def validate(spec: Path = typer.Argument(..., help="Sweep YAML file.")) -> None:
    """Check a sweep file; print the plan or one line saying what is wrong (exit 2)."""
    _, plan = _checked_plan(spec)
    head = f" {spec}: {plan['trials']} trials × {plan['evaluations_per_trial']} evaluations"
    console.print(Text.assemble(("ok", "green"), head), highlight=False, soft_wrap=True)
    _print_plan(plan)


@app.command()
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
    _prepare_local_client(address)  # a bad $DDX_CACHE or `ddx up` record: one line, before the lease too
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
    for trial in outcome.stopped_early:
        console.print(f"trial {trial} was stopped early by the scheduler (its rows are not written)")
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
        _connect(address, verbose, dashboard)
        resumed = preflight.prepare(s, fresh=not resume, warn=warn, resumed=saved_resumable)  # then the warm-up
        from orchestrator.sweep.run import run_sweep  # Tune and pandas: imported while the warm-up worker starts

        return run_sweep(s, resumed=resumed, max_concurrent=max_concurrent, console=console)
    except UserError as err:
        fail(err)
    except Exception as err:  # Tune or the store gave up part-way (a full disk, a store gone): one line, exit 1
        stopped(err, "the sweep", s.experiment_dir(), "storage", SWEEP_RESUMES, verbose)
    finally:
        runtime.shutdown()


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


@app.command()
def report(
    experiment: str = typer.Argument(..., help="Experiment directory (<storage>/<sweep>) or results.parquet."),
    fmt: str = typer.Option("all", "--format", help="md, html or all (both)."),
    out: Path = typer.Option(None, "--out", help="Output directory (default: <experiment>/report)."),
) -> None:
    """Write the sweep's report (tables, curves, image grids, provenance) from its Parquet files."""
    from orchestrator.report import FORMATS, write_report
    from orchestrator.report.tables import summary

    if fmt not in FORMATS:
        fail(UserError(f"must be one of {', '.join(FORMATS)} (got {fmt!r})", key="--format"))
        return
    if out is None and "://" in experiment:
        fail(UserError("give --out for a remote experiment (the report is written locally)", where=experiment))
        return
    from orchestrator.report import default_out_dir

    with one_line_errors(out or default_out_dir(experiment)):
        exp, paths = write_report(experiment, out, fmt)
    show_summary(summary(exp).drop(columns=["config", "distill_resolution"], errors="ignore"))
    console.print(f"{exp.status_line()} from {experiment}")
    for p in paths:
        console.print(f"wrote [bold]{p}[/]")


@app.command()
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


def _split(text: str | None, key: str, cast=str) -> list | None:
    if text is None:
        return None
    try:
        items = [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        of = " of whole numbers" if cast is int else ""
        raise UserError(f"expected a comma-separated list{of}, got {text!r}", key=key) from None
    if not items:
        raise UserError("empty list", key=key)
    return items


def _settings(pairs: list[str]) -> dict:
    """``--setting KEY=VALUE`` pairs; each VALUE is YAML, read as a sweep file's values are."""
    from orchestrator.spec.yaml_input import parse_value

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"expected KEY=VALUE, got {pair!r}", key="--setting")
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = parse_value(v)
        except SpecError as err:
            raise UserError(err.message, key=f"--setting {k.strip()}") from None
    return out


@app.command()
@ctrl_c_says(EVALUATE_FINISHES)
def evaluate(
    sets: list[str] = typer.Argument(..., help="Synthetic sets: .pt files (images + labels), image folders, ddx sets."),
    preset: str = typer.Option(..., "--preset", help="Evaluation protocol preset (docs/evaluation.md)."),
    dataset: str = typer.Option(..., "--dataset", help="The real dataset the sets distil (digits, cifar10, …)."),
    root: str = typer.Option(None, "--root", help="The dataset's folder (every dataset but digits)."),
    train_per_class: int = typer.Option(None, "--train-per-class", min=1, help="Seeded training subset per class."),
    val_per_class: int = typer.Option(None, "--val-per-class", min=1, help="Validation images per class."),
    test_per_class: int = typer.Option(None, "--test-per-class", min=1, help="Seeded test subset per class."),
    archs: str = typer.Option(None, "--archs", help="Student networks, comma-separated (default: the preset's)."),
    resolutions: str = typer.Option(None, "--resolutions", help="Evaluation resolutions (default: each set's)."),
    seeds: int = typer.Option(None, "--seeds", min=1, help="Students per cell (default: the preset's, else 3)."),
    label_modes: str = typer.Option(None, "--label-modes", help="hard,soft (default: the preset's, + hard if soft)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the preset's epochs (protocol → custom)."),
    setting: list[str] = typer.Option([], "--setting", help="KEY=VALUE over the preset (repeatable; → custom)."),
    space: str = typer.Option(None, "--space", help="pixels ([0, 1]) or normalized, for .pt files without 'space'."),
    name: list[str] = typer.Option(None, "--name", help="A name per set (repeatable; default: file/folder name)."),
    baseline_seed: int = typer.Option(0, "--baseline-seed", help="Seed of the random real subset."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Full-data reference rows (HLR)."),
    reference_epochs: int = typer.Option(None, "--reference-epochs", min=1, help="Full-data training epochs."),
    ars: bool = typer.Option(False, "--ars", help="Also evaluate without augmentation (DD-Ranking's ARS)."),
    teacher_arch: str = typer.Option(None, "--teacher-arch", help="Soft-label teacher network (default convnet_d3)."),
    teacher_preset: str = typer.Option(None, "--teacher-preset", help="CFM Table 2 teacher preset (cifar10, …)."),
    teacher_epochs: int = typer.Option(None, "--teacher-epochs", min=1, help="Teacher training epochs."),
    out: str = typer.Option(None, "--out", help="Results folder (default: <storage>/evaluate-<preset>)."),
    storage: str = typer.Option("./ddx_results", "--storage", help="Where the results folder goes (without --out)."),
    address: str = typer.Option(None, "--address", envvar="RAY_ADDRESS", help=ADDRESS_HELP),
    eval_cpus: float = typer.Option(1.0, "--eval-cpus", min=0.01, help="CPUs per evaluation task."),
    eval_gpus: float = typer.Option(0.0, "--eval-gpus", min=0.0, help="GPUs per evaluation task."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Ray's own logs."),
    dashboard: bool = typer.Option(
        False, "--dashboard", help="Start the embedded Ray's dashboard on 127.0.0.1:8265 (about 1 s more start-up)."
    ),
) -> None:
    """Evaluate synthetic sets made anywhere under one protocol, beside a random real subset of the same size."""
    _prepare_local_client(address)  # before evaluate_sets imports Ray
    from orchestrator.evaluation.external import EvaluateRequest, plan, run
    from orchestrator.spec.model import EMPTY_LOCATION
    from orchestrator.storage.locations import check_storage, join

    try:
        for key, given in (("--out", out), ("--storage", storage)):
            if given is not None and not given.strip():
                raise UserError(EMPTY_LOCATION, key=key)
        overrides = _settings(setting)
        if epochs is not None:
            overrides["epochs"] = epochs
        ds = {"name": dataset, "root": root, "train_per_class": train_per_class}
        ds.update(val_per_class=val_per_class, test_per_class=test_per_class)
        teacher = {"arch": teacher_arch, "preset": teacher_preset, "epochs": teacher_epochs}
        req = EvaluateRequest(
            sets=list(sets),
            preset=preset,
            dataset={k: v for k, v in ds.items() if v is not None},
            out=out or join(storage, f"evaluate-{preset}"),
            archs=_split(archs, "--archs"),
            resolutions=_split(resolutions, "--resolutions", int),
            seeds=seeds,
            label_modes=_split(label_modes, "--label-modes"),
            overrides=overrides,
            space=space,
            names=list(name) if name else None,
            baseline_seed=baseline_seed,
            reference=reference,
            reference_settings={"epochs": reference_epochs} if reference_epochs else {},
            ars=ars,
            teacher={k: v for k, v in teacher.items() if v is not None},
            cpus=eval_cpus,
            gpus=eval_gpus,
        )
        if space is not None and space not in ("pixels", "normalized"):
            raise UserError(f"must be pixels or normalized, got {space!r}", key="--space")
        p = plan(req)
        check_storage(req.out, key="--out" if out else "--storage")  # before Ray starts and any work is done
    except UserError as err:
        fail(err)
        return
    from orchestrator.cluster import runtime

    try:
        _connect(address, verbose, dashboard)
        one = {"CPU": eval_cpus, "GPU": eval_gpus}  # the key named is the first whose unit no node holds
        runtime.check_placement({"--eval-cpus": {"CPU": eval_cpus}, "--eval-gpus": one}, {}, warn)
        outcome = run(p, log=lambda line: console.print(escape(line), highlight=False))
    except UserError as err:
        fail(err)
        return
    except Exception as err:  # the results' store gave up part-way (a full disk): one line, exit 1
        stopped(err, "the evaluation", req.out, "--out" if out else "--storage", EVALUATE_FINISHES, verbose)
        return
    finally:
        runtime.shutdown()
    show_scores(outcome.experiment)
    console.print(f"results: [bold]{outcome.experiment}[/] ({len(outcome.rows)} rows); `ddx report` reads it")
    if outcome.failed:
        err_console.print(f"[red]{outcome.failed} evaluation(s) failed[/]; rerun the same command to retry them")
        raise typer.Exit(code=EXIT_FAILED)


def show_scores(experiment: str) -> None:
    """Per label regime and protocol: each set's test accuracy and DD-Ranking's scores."""
    from rich.table import Table

    from orchestrator.report.dd_metrics import fmt_points, fmt_score
    from orchestrator.report.document import acc
    from orchestrator.report.tables import load_experiment, scored_best, summary

    exp = load_experiment(experiment)
    best = scored_best(exp, summary(exp))
    for (mode, protocol), part in best.groupby(["label_mode", "protocol"], sort=True):
        table = Table(title=f"{mode} labels · protocol {protocol}")
        for c in ("set", "network", "IPC", "test acc", "HLR (pp)", "IOR (pp)", "LRS", "ARS"):
            table.add_column(c, justify="left" if c in ("set", "network") else "right")
        for _, r in part.iterrows():
            table.add_row(
                str(r["objective"]),
                f"{r['eval_arch']}@{int(r['eval_resolution'])}",
                str(int(r["ipc"])),
                acc(r["test_mean"], r["test_std"], r["seeds"]),
                fmt_points(r["hlr"]),
                fmt_points(r["ior"]),
                fmt_score(r["lrs"]),
                fmt_score(r["ars"]),
            )
        console.print(table)


@app.command()
def export(
    synthetic: Path = typer.Argument(..., help="A synthetic set (.pt, e.g. <experiment>/synthetic/<key>.pt)."),
    out: Path = typer.Option(..., "--out", help="Directory for the PNGs (one grid per class)."),
    resolution: int = typer.Option(None, "--resolution", min=1, help="Decode at this size (default: its own)."),
) -> None:
    """Decode a synthetic set (fields or pixels) at any resolution and write one PNG grid per class."""
    from orchestrator.report.grids import export_class_grids

    if not synthetic.is_file():
        fail(UserError("no such file (give a synthetic set .pt)", where=str(synthetic)))
        return
    with one_line_errors(out):
        paths = export_class_grids(synthetic, out, resolution)
    console.print(f"wrote {len(paths)} class grids to [bold]{out}[/]")


@app.command()
def up(
    cpus: int = typer.Option(None, "--cpus", min=1, help="CPUs it offers (default: all of this machine's)."),
    dashboard: bool = typer.Option(False, "--dashboard", help="Start its dashboard too (on 127.0.0.1)."),
) -> None:
    """Keep a local Ray running: `ddx sweep` and `ddx evaluate` (no --address) then use it and skip
    Ray's start-up (~4-5 s each on 2 CPUs); `ddx down` stops it."""
    from orchestrator.cluster import local_ray

    try:
        local_ray.check_cache_dir()
        kept, started = local_ray.up(cpus=cpus, dashboard=dashboard)
    except UserError as err:
        fail(err)
        return
    if not started:
        console.print(f"a local Ray is already up: {kept.address} ({kept.cpus} CPUs, since {kept.started})")
        if cpus is not None and cpus != kept.cpus:
            warn(f"--cpus {cpus} not applied: it offers {kept.cpus}; `ddx down`, then `ddx up --cpus {cpus}`")
        return
    console.print(f"local Ray up: {kept.address} ({kept.cpus} CPUs); `ddx sweep` and `ddx evaluate` use it")
    if (too_many := local_ray.oversubscription(cpus)) is not None:
        warn(too_many)
    console.print("stop it with `ddx down`")
    if kept.dashboard_url:
        console.print(f"dashboard: {kept.dashboard_url}")
    console.print(f"log: {kept.log}", highlight=False)


@app.command()
def down() -> None:
    """Stop the local Ray that `ddx up` started (its whole process group)."""
    from orchestrator.cluster import local_ray

    try:
        local_ray.check_cache_dir()
        kept = local_ray.down()
    except UserError as err:
        fail(err)
        return
    console.print(f"stopped the local Ray at {kept.address}" if kept else "no local Ray of `ddx up` is running")


def _read(experiment: str, reader):
    try:
        return reader(experiment)
    except (FileNotFoundError, OSError) as err:
        raise UserError(
            f"no results.parquet there ({err.__class__.__name__}); run `ddx sweep` first", where=experiment
        ) from None


def usage_error(err: typer.TyperException) -> int:
    """Print a command-line usage error (an unknown command or option, a missing or malformed
    argument) as one line naming the command and its ``--help``; returns its exit code (2).

    Click's own rendering is a usage line, a hint and a boxed message; ``ddx`` with no command
    prints its help instead (Typer has printed it already when this error arrives).
    """
    if type(err).__name__ == "NoArgsIsHelpError":
        return err.exit_code
    ctx = getattr(err, "ctx", None)
    command = ctx.command_path if ctx is not None else "ddx"
    message = " ".join(err.format_message().split())
    fail_line = Text.assemble(("error:", "bold red"), f" {command}: {message} (see `{command} --help`)")
    err_console.print(fail_line, highlight=False, soft_wrap=True)
    return err.exit_code


def run() -> None:
    """The ``ddx`` command (console script and ``python -m orchestrator``): the CLI, then a prompt exit.

    After a command that started or joined Ray and shut it down, the interpreter's own teardown
    (Ray's core worker, gRPC, extension modules) takes another ~0.6 s with nothing left to do:
    every result is already written atomically, so once the logs and the console are flushed
    the process ends at once, with the command's exit code.
    """
    try:
        returned = app(prog_name="ddx", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0  # typer.Exit's code (--help, --version: 0)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except typer.TyperException as err:  # Click's usage errors (Typer's copy of Click) and BadParameter
        code = usage_error(err)
    except typer.Abort:
        err_console.print("aborted", highlight=False)
        code = 1
    ray = sys.modules.get("ray")
    if ray is None or ray.is_initialized():  # never started Ray (or left it running): the usual exit
        sys.exit(code)
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
