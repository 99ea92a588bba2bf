"""``ddx evaluate``: judge synthetic sets made anywhere under one protocol, beside a random real subset.

Its settings are a sweep file's own blocks (:mod:`orchestrator.spec.evaluate_file`): an evaluation
YAML (``--config``), the shortcut flags below (each one key of those blocks) and ``--set
KEY.PATH=VALUE`` for any other key, validated by the same models as a sweep file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from orchestrator.cli.app import ADDRESS_HELP, connect, prepare_local_client
from orchestrator.cli.output import EVALUATE_FINISHES, EXIT_FAILED, console, err_console, fail, stopped, warn
from orchestrator.cli.stopping import ctrl_c_says
from orchestrator.errors import SpecError, UserError

#: each shortcut flag → the key of the evaluation configuration it sets
FLAG_KEYS = {
    "--preset": "evaluation.preset",
    "--dataset": "dataset.name",
    "--root": "dataset.root",
    "--archs": "evaluation.archs",
    "--resolutions": "evaluation.resolutions",
    "--seeds": "evaluation.seeds",
    "--label-modes": "evaluation.label_mode",
    "--ars": "evaluation.ars",
    "--out": "out",
    "--storage": "storage",
}


def _split(text: str | None, key: str, cast: type = str) -> list[Any] | None:
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


def configuration(config: Path | None, flags: dict[str, Any], settings: list[str]) -> Any:
    """The validated configuration: the YAML, then the flags given, then each ``--set`` (later wins)."""
    from orchestrator.spec.evaluate_file import load_evaluate, parse_evaluate, parse_set, set_path

    try:
        data = load_evaluate(config)
        for flag, value in flags.items():
            if value is not None:
                set_path(data, FLAG_KEYS[flag], value, where=flag)
        for pair in settings:
            path, value = parse_set(pair)
            set_path(data, path, value)
        return parse_evaluate(data, where=str(config) if config else "ddx evaluate")
    except SpecError as err:
        flag = next(
            (f for f, k in FLAG_KEYS.items() if err.key and err.key.startswith(k) and flags.get(f) is not None), None
        )
        raise UserError(
            err.message, key=flag or err.key, where=err.where if err.where != "ddx evaluate" else None
        ) from None


@ctrl_c_says(EVALUATE_FINISHES)
def evaluate(
    sets: list[str] = typer.Argument(
        ..., help="Synthetic sets: .pt files, image folders, ddx sets, DC res_*.pt, MTT/DATM folders, DDiF files."
    ),
    preset: str = typer.Option(None, "--preset", help="Evaluation protocol preset (docs/evaluation.md)."),
    dataset: str = typer.Option(None, "--dataset", help="The real dataset the sets distil (digits, cifar10, …)."),
    root: str = typer.Option(None, "--root", help="The dataset's folder (every dataset but digits)."),
    archs: str = typer.Option(None, "--archs", help="Student networks, comma-separated (default: the preset's)."),
    resolutions: str = typer.Option(None, "--resolutions", help="Evaluation resolutions (default: each set's)."),
    seeds: int = typer.Option(None, "--seeds", min=1, help="Students per cell (default: the preset's, else 3)."),
    label_modes: str = typer.Option(None, "--label-modes", help="hard,soft (default: the preset's, + hard if soft)."),
    ars: bool = typer.Option(None, "--ars", help="Also evaluate without augmentation (DD-Ranking's ARS)."),
    config: Path = typer.Option(None, "--config", help="An evaluation YAML (dataset:, evaluation:, teacher:, …)."),
    setting: list[str] = typer.Option(
        [], "--set", help="KEY.PATH=VALUE of any block (repeatable; e.g. evaluation.epochs=5)."
    ),
    space: str = typer.Option(
        None, "--space", help="pixels ([0, 1]), normalized (by the mean/std) or zca, where the file does not say."
    ),
    fmt: str = typer.Option("auto", "--format", help="auto, pt, dc, mtt, imagefolder, ddif or ddx (see docs)."),
    experiment: int = typer.Option(None, "--experiment", help="DatasetCondensation files: only experiment N."),
    name: list[str] = typer.Option(None, "--name", help="A name per set (repeatable; default: file/folder name)."),
    baseline_seed: int = typer.Option(0, "--baseline-seed", help="Seed of the random real subset."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Full-data reference rows (HLR)."),
    out: str = typer.Option(None, "--out", help="Results folder (default: <storage>/evaluate-<preset>)."),
    storage: str = typer.Option(None, "--storage", help="Where the results folder goes (default ./ddx_results)."),
    address: str = typer.Option(None, "--address", envvar="RAY_ADDRESS", help=ADDRESS_HELP),
    verbose: bool = typer.Option(False, "--verbose", help="Show Ray's own logs."),
    dashboard: bool = typer.Option(
        False, "--dashboard", help="Start the embedded Ray's dashboard on 127.0.0.1:8265 (about 1 s more start-up)."
    ),
) -> None:
    """Evaluate synthetic sets made anywhere under one protocol, beside a random real subset of the same size."""
    prepare_local_client(address)  # before the evaluation modules import Ray
    from orchestrator.evaluation.external import EvaluateRequest, plan
    from orchestrator.storage.locations import check_storage

    try:
        flags = {
            "--preset": preset, "--dataset": dataset, "--root": root, "--archs": _split(archs, "--archs"),
            "--resolutions": _split(resolutions, "--resolutions", int), "--seeds": seeds,
            "--label-modes": _split(label_modes, "--label-modes"), "--ars": ars, "--out": out, "--storage": storage,
        }  # fmt: skip
        spec = configuration(config, flags, setting)
        req = EvaluateRequest(
            sets=list(sets), spec=spec, names=list(name) if name else None, space=space,
            baseline_seed=baseline_seed, reference=reference, format=fmt, experiment=experiment,
        )  # fmt: skip
        p = plan(req)
        check_storage(req.out, key="--out" if spec.out else "--storage")  # before Ray starts and any work is done
    except UserError as err:
        fail(err)
        return
    for note in p.notes:  # what the readers assumed (a reference's defaults, a layout's usual protocol)
        console.print(f"note: {escape(note)}", highlight=False)
    from orchestrator.cluster import runtime
    from orchestrator.evaluation.external_run import run

    try:
        connect(address, verbose, dashboard)
        r = spec.resources
        one = {"CPU": r.eval_cpus, "GPU": r.eval_gpus}  # the key named is the first whose unit no node holds
        runtime.check_placement({"resources.eval_cpus": {"CPU": r.eval_cpus}, "resources.eval_gpus": one}, {}, warn)
        outcome = run(p, log=lambda line: console.print(escape(line), highlight=False))
    except UserError as err:
        fail(err)
        return
    except Exception as err:  # the results' store gave up part-way (a full disk): one line, exit 1
        stopped(err, "the evaluation", req.out, "--out" if spec.out else "--storage", EVALUATE_FINISHES, verbose)
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
    from orchestrator.report.experiment import load_experiment
    from orchestrator.report.tables import scored_best, summary

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


__all__ = ["FLAG_KEYS", "configuration", "evaluate", "show_scores"]
