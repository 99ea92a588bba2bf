"""One experiment's rows, read from its folder: complete (``results.parquet``) or not (the row files
of a sweep or ``ddx evaluate`` that is running or was interrupted), and who is writing it now."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.fs as pafs

from orchestrator.errors import UserError
from orchestrator.evaluation.reference import read_reference
from orchestrator.report.aggregate import hyper_columns
from orchestrator.report.dd_metrics import with_label_regime, with_protocol
from orchestrator.storage.locations import check_reachable, exists, filesystem, join, read_bytes
from orchestrator.storage.results import REQUEST_FILE, ResultStore, read_results
from orchestrator.sweep.resume import describe_holder, running_sweep

REFERENCE_KEY = "reference"
REFERENCE_LABEL = "full data (real training set)"
#: hyper-parameter columns that are bookkeeping, not settings worth a curve
NOT_CURVES = {"repeat", "eval_arch_requested"}


@dataclass
class Experiment:
    """One experiment's rows (``results.parquet``, or the row files of a running sweep) and reference rows."""

    source: str
    rows: pd.DataFrame
    reference: pd.DataFrame | None = None
    swept: list[str] = field(default_factory=list)
    partial: bool = False  # read from the row files of a sweep (or ddx evaluate) that is running or was interrupted
    planned: int | None = None  # evaluations the sweep's plan holds (when known)
    running: str | None = None  # who writes the rows now: the sweep holding the experiment, or ddx evaluate runs
    evaluate: bool = False  # a ``ddx evaluate`` results folder, not a sweep's experiment

    def status_line(self) -> str:
        failed = int((self.rows["status"] != "ok").sum())
        text = f"{len(self.rows)} rows ({failed} failed)"
        if self.planned:
            text += f" of {self.planned} planned"
        if self.running:
            text += f"; partial: {self.running}"
        elif self.partial and self.evaluate:
            text += "; partial: the evaluation was interrupted (rerun the same `ddx evaluate` command to finish it)"
        elif self.partial:
            text += "; partial: the sweep was interrupted (rerun `ddx sweep` to finish it)"
        return text


def writing_now(store: ResultStore) -> str | None:
    """Who is adding rows to the folder now: the sweep holding its lease, else the ``ddx evaluate``
    runs holding its row files; None when nobody is."""
    sweep = running_sweep(store.root)
    if sweep is not None:
        return f"the sweep is running ({sweep})"
    holders = store.row_file_holders()
    if not holders:
        return None
    more = f", and {len(holders) - 1} more" if len(holders) > 1 else ""
    return f"ddx evaluate is running ({describe_holder(holders[0])}{more})"


def _planned(experiment: str) -> int | None:
    """Evaluations the saved spec plans (trials × evaluations per trial), when it is a grid."""
    try:
        from orchestrator.spec.model import SweepSpec
        from orchestrator.spec.plan import SPEC_FILE, describe_plan

        saved = json.loads(read_bytes(join(experiment, SPEC_FILE)))
        plan = describe_plan(SweepSpec.model_validate(saved["spec"]))
    except Exception:  # no spec saved, or from another version: the count is just not shown
        return None
    if plan.get("evaluations_total") is not None:  # distinct trial keys × evaluations per set
        return plan["evaluations_total"]
    return plan["trials"] * plan["evaluations_per_trial"] if plan["trials"] else None


def load_experiment(path: str) -> Experiment:
    """Read an experiment (a folder: its row files, complete or not; or a ``results.parquet``) and its references."""
    partial, planned, running, evaluate = False, None, None, False
    check_reachable(path)
    if path.endswith(".parquet"):
        try:
            rows = read_results(path)
        except FileNotFoundError:
            raise UserError("no such file (give an experiment folder or its results.parquet)", where=path) from None
        except OSError as err:
            raise UserError(f"cannot read it ({err.__class__.__name__})", where=path) from None
    else:
        store = ResultStore(path)
        rows = store.current_rows()
        newest = store.row_files_mtime()
        if rows.empty and exists(store.results_path):
            rows = read_results(path)  # a copied results.parquet without its row files
        elif newest is not None:
            fs, results = filesystem(store.results_path)
            info = fs.get_file_info(results)
            stale = info.mtime is not None and info.mtime.timestamp() < newest
            partial = info.type == pafs.FileType.NotFound or stale
        planned = _planned(path)
        running = writing_now(store)
        evaluate = exists(join(path, REQUEST_FILE))
    if rows.empty:
        if not exists(path):  # a mistyped path is not a sweep that has not written yet
            raise UserError("no such folder (give an experiment folder or its results.parquet)", where=path)
        raise UserError("no result rows there yet; run `ddx sweep` (or wait for its first evaluation)", where=path)
    rows = with_label_regime(with_protocol(rows))
    reference = read_reference(path)
    if reference is not None:
        reference = with_protocol(reference)
    return Experiment(path, rows, reference, swept_columns(rows), partial, planned, running, evaluate)


def swept_columns(rows: pd.DataFrame) -> list[str]:
    """Hyper-parameter columns (and ``ipc``) that take more than one value among the rows."""
    cols = [c for c in hyper_columns(rows) if c not in NOT_CURVES]
    if "ipc" in rows.columns:
        cols = ["ipc", *cols]
    return [c for c in cols if rows[c].dropna().nunique() > 1]


__all__ = [
    "NOT_CURVES",
    "REFERENCE_KEY",
    "REFERENCE_LABEL",
    "Experiment",
    "load_experiment",
    "swept_columns",
    "writing_now",
]
