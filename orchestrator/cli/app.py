"""``ddx``: the command line (Typer + rich) — the app, connecting to Ray, and the process exit.

Heavy modules (torch, Ray, pandas) are imported inside the commands that need them, so
``ddx validate`` and ``ddx sweep --dry-run`` start in well under a second. The commands live in
the modules beside this one, by what they do (:mod:`orchestrator.cli.main` gathers them).
"""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from orchestrator import __version__
from orchestrator.cli.output import console, err_console, fail, warn
from orchestrator.cli.stopping import take_sigterm
from orchestrator.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ddx: sweep dataset-distillation methods on Ray, evaluate them honestly, report.",
)

ADDRESS_HELP = (
    "Ray cluster address: auto, HOST:PORT or ray://HOST:PORT (default: $RAY_ADDRESS, else the local Ray of "
    "`ddx up` when it runs, else an embedded local Ray of ddx's own, even where `ray start` runs one)."
)


def _version(value: bool) -> None:
    if value:
        console.print(f"ddx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ddx: sweep dataset-distillation methods on Ray, evaluate them honestly, report."""


def prepare_local_client(address: str | None) -> None:
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


def connect(address: str | None, verbose: bool, dashboard: bool) -> None:
    """Connect to (or start) Ray and say which; ``--dashboard`` only starts an embedded Ray's."""
    from orchestrator.cluster import runtime

    where = runtime.connect(address, verbose=verbose, dashboard=dashboard)
    take_sigterm()  # ray.init installed its own SIGTERM handler (C++ stack lines, exit 1)
    if not verbose:
        runtime.one_line_ray_logs()  # a failed trial is one line at the end, not Tune's traceback on the way
    console.print(f"running on {where}", soft_wrap=True, highlight=False)
    if dashboard and not runtime.is_embedded():
        warn("--dashboard applies to an embedded Ray only; this one has its own (`ddx up --dashboard`; a cluster's)")


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


__all__ = ["ADDRESS_HELP", "app", "connect", "prepare_local_client", "run"]
