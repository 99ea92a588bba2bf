"""The results store: per-trial row files written atomically, consolidated into one Parquet.

Layout under ``<storage>/<sweep>/``::

    spec.json            the sweep's spec as run (and its config hash), for resume checks
    rows/<trial>.parquet every finished evaluation row of one trial (rewritten atomically)
    synthetic/<trial>.pt the distilled set of one trial (config + tensors)
    synthetic/<trial>.pt.card.json
                         its card: config, metadata and row columns, read without torch
    train/<trial>/       the distillation's resumable state (``state.pt``) and Ray Train runs
    trials/<trial>.json  the trial's record: swept values, status (running, done, failed, stopped), metric
    tune/                Ray Tune's experiment state (one run per invocation; never restored)
    results.parquet      every row, de-duplicated on the row key

Local paths are written with temp-file + rename; URIs (``s3://``…) through pyarrow's
filesystems, whose single-object writes are atomic (:mod:`orchestrator.storage.locations`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from methods.records import JsonObject
from orchestrator.errors import UserError
from orchestrator.storage.artifacts import LOCK_SUFFIX, LeaseLock
from orchestrator.storage.locations import (
    delete_dir,
    exists,
    filesystem,
    join,
    list_files,
    read_bytes,
    read_json,
    write_bytes_atomic,
)

#: one result row: column → value (the schema: :data:`CORE_COLUMNS`, plus the trial's hyper-parameters)
Row = JsonObject

#: the end of a row file's lock name (``rows/<key>.parquet.lock``)
ROW_LOCK_SUFFIX = f".parquet{LOCK_SUFFIX}"
#: per-trial records (what a resumed search is told)
TRIALS_DIR = "trials"
#: a trial record's status once the scheduler stopped the trial early: its distillation stops, and a
#: rerun of the sweep does not run it again (``--fresh`` does)
STOPPED = "stopped"
#: what ``ddx evaluate`` records about the request that wrote a results folder (a sweep has none)
REQUEST_FILE = "evaluate.json"

#: columns that identify one evaluation run; a row with the same key replaces the older one. The
#: protocol is part of it: one set evaluated under two protocols gives two rows (``ddx evaluate``)
ROW_KEY = ["trial_key", "eval_arch", "eval_resolution", "seed", "label_mode", "protocol"]


#: what identifies one full-data reference run wherever its row is written: its settings (the real-data
#: training as JSON), network, resolution and seed on a dataset — and its cache content key, which
#: also holds the dataset's options. A sweep's ``reference.parquet`` holds the rows of the runs it
#: asked for, trained or found in the cache, under its own config hash: one cached run is a row
#: in every folder that used it (and twice in a folder two ``ddx evaluate`` runs wrote)
REFERENCE_IDENTITY = ["dataset", "eval_settings", "eval_arch", "eval_resolution", "seed", "reference_key"]


def distinct_references(ref: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per reference run (:data:`REFERENCE_IDENTITY`; a column a row lacks counts as empty):
    rows gathered from several folders, or written twice into one, are averaged once each. Of one
    run's rows the newest ``ok`` one is kept (a failed row only where the run has no ``ok`` row)."""
    if ref is None or ref.empty:
        return ref
    columns = [c for c in REFERENCE_IDENTITY if c in ref.columns]
    identity = ref[columns].astype(object).where(ref[columns].notna(), "").astype(str)
    ok = ref["status"].eq("ok") if "status" in ref.columns else pd.Series(True, index=ref.index)
    written = pd.to_datetime(ref["created_at"], utc=True) if "created_at" in ref.columns else None
    order = pd.DataFrame({"ok": ok.to_numpy(), "at": written.to_numpy() if written is not None else 0}, ref.index)
    keep = (
        identity.assign(_ok=order["ok"], _at=order["at"])
        .sort_values(["_ok", "_at"], kind="stable", na_position="first")
        .drop_duplicates(subset=columns, keep="last")
        .index
    )
    return ref.loc[sorted(keep)].reset_index(drop=True)


def read_table_file(location: str) -> pd.DataFrame:
    """A Parquet file's rows (a path or URI); a file that is not Parquet (truncated, overwritten)
    is a :class:`UserError` naming it, not pyarrow's traceback."""
    data = read_bytes(location)
    try:
        return pq.read_table(io.BytesIO(data)).to_pandas()
    except pa.ArrowException as err:
        raise UserError(f"not a readable Parquet file ({err}); restore or delete it", where=location) from None


def row_key(df: pd.DataFrame) -> list[str]:
    """:data:`ROW_KEY`'s columns that ``df`` has (rows written before ``protocol`` existed lack it)."""
    return [c for c in ROW_KEY if c in df.columns]


#: the fixed part of the schema (hyper-parameter columns are added per sweep)
CORE_COLUMNS: dict[str, pa.DataType] = {
    "sweep": pa.string(),
    "trial_id": pa.string(),
    "trial_key": pa.string(),
    "status": pa.string(),
    "error": pa.string(),
    "error_log": pa.string(),  # a failed row: where the worker that failed logged (node:path)
    "objective": pa.string(),
    "parameterization": pa.string(),
    "dataset": pa.string(),
    "ipc": pa.int64(),
    "budget_scalars": pa.int64(),
    "instances_per_class": pa.int64(),
    "distill_arch": pa.string(),
    "distill_resolution": pa.int64(),
    "distill_workers": pa.int64(),
    "distill_seed": pa.int64(),
    "eval_arch": pa.string(),
    "eval_arch_requested": pa.string(),
    "eval_resolution": pa.int64(),
    "resize_mode": pa.string(),
    "label_mode": pa.string(),
    "label_source": pa.string(),  # hard, learned_soft or teacher (methods.evaluation.options.label_source)
    "protocol": pa.string(),
    "eval_settings": pa.string(),
    "seed": pa.int64(),
    "val_acc": pa.float64(),
    "test_acc": pa.float64(),
    "max_over_test": pa.float64(),
    "epochs": pa.int64(),
    "distill_seconds": pa.float64(),
    "eval_seconds": pa.float64(),
    "device": pa.string(),
    "node_id": pa.string(),
    "hostname": pa.string(),
    "config_hash": pa.string(),
    "code_version": pa.string(),
    "ddx_version": pa.string(),
    "torch_version": pa.string(),
    "ray_version": pa.string(),
    "created_at": pa.timestamp("us", tz="UTC"),
    "synthetic_path": pa.string(),
    # ``ddx evaluate``: where a set came from, and the random baseline's seed
    "set_source": pa.string(),
    "set_format": pa.string(),
    "set_space": pa.string(),
    "set_lr": pa.float64(),  # the learned student learning rate the set carries (MTT/DATM/tm), if any
    "baseline_seed": pa.int64(),
}


def rows_to_table(rows: list[Row]) -> pa.Table:
    """Rows → Arrow table with the core schema's types; other columns inferred."""
    df = pd.DataFrame(rows)
    for col in CORE_COLUMNS:
        if col not in df.columns:
            df[col] = None
    fields = []
    for col in df.columns:
        if col in CORE_COLUMNS:
            fields.append(pa.field(col, CORE_COLUMNS[col]))
        else:
            fields.append(pa.field(col, pa.Array.from_pandas(df[col]).type))
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def table_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


class ResultStore:
    """Row files and the consolidated Parquet of one sweep's experiment directory."""

    def __init__(self, experiment_dir: str) -> None:
        self.root = experiment_dir

    def rows_path(self, trial_key: str) -> str:
        return join(self.root, "rows", f"{trial_key}.parquet")

    def rows_lock(self, trial_key: str) -> LeaseLock:
        """The lock of one row file, for writers that are not a sweep's trial (which holds its
        experiment): ``ddx evaluate`` holds it while it evaluates that set into this folder."""
        return LeaseLock(join(self.root, "rows", trial_key + ROW_LOCK_SUFFIX))

    def synthetic_path(self, trial_key: str) -> str:
        return join(self.root, "synthetic", f"{trial_key}.pt")

    def trial_record_path(self, trial_key: str) -> str:
        return join(self.root, TRIALS_DIR, f"{trial_key}.json")

    def write_trial_record(self, trial_key: str, config: JsonObject, status: str, **fields: Any) -> None:
        """Write a trial's record (atomically): its swept values, its status and ``fields``."""
        body = {"trial_key": trial_key, "config": config, "status": status, **fields}
        write_bytes_atomic(self.trial_record_path(trial_key), json.dumps(body, default=str).encode())

    def trial_record(self, trial_key: str) -> JsonObject | None:
        """A trial's record; None when it has none."""
        return read_trial_record(self.trial_record_path(trial_key))

    def trial_records(self) -> list[JsonObject]:
        """Every trial record (``trials/<key>.json``: swept values, status, final metric)."""
        return [read_json(loc) for loc in list_files(join(self.root, TRIALS_DIR), ".json")]

    @property
    def results_path(self) -> str:
        return join(self.root, "results.parquet")

    def read_trial_rows(self, trial_key: str) -> list[Row]:
        path = self.rows_path(trial_key)
        if not exists(path):
            return []
        return read_table_file(path).to_dict("records")

    def write_trial_rows(self, trial_key: str, rows: list[Row]) -> None:
        """Atomically replace a trial's row file with ``rows`` (de-duplicated on the row key)."""
        df = pd.DataFrame(rows)
        if not df.empty:
            df = df.drop_duplicates(subset=row_key(df), keep="last")
        write_bytes_atomic(self.rows_path(trial_key), table_bytes(rows_to_table(df.to_dict("records"))))

    def all_rows(self) -> pd.DataFrame:
        rows_dir = join(self.root, "rows")
        fs, path = filesystem(rows_dir)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return pd.DataFrame(columns=list(CORE_COLUMNS))
        infos = fs.get_file_info(pafs.FileSelector(path))
        frames = [
            read_table_file(join(rows_dir, Path(i.path).name))
            for i in sorted(infos, key=lambda i: i.path)
            if _is_row_file(i)
        ]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=list(CORE_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def current_rows(self) -> pd.DataFrame:
        """Every row written so far (one per row key, newest wins), read from the row files.

        The row files are the source of truth while a sweep runs (each is rewritten
        atomically as evaluations finish), so this works on a running or interrupted sweep.
        """
        df = self.all_rows()
        if not df.empty:
            df = df.sort_values("created_at").drop_duplicates(subset=row_key(df), keep="last")
            df = df.sort_values(["trial_key", "eval_arch", "eval_resolution", "label_mode", "seed"])
            df = df.reset_index(drop=True)
        return df

    def row_file_holders(self) -> list[JsonObject]:
        """The live leases on this folder's row files: the ``ddx evaluate`` runs writing into it now."""
        locks = list_files(join(self.root, "rows"), ROW_LOCK_SUFFIX)
        return [h for h in (LeaseLock(loc).holder() for loc in locks) if h is not None]

    def row_files_mtime(self) -> float | None:
        """The newest modification time of the row files (None when there are none)."""
        fs, path = filesystem(join(self.root, "rows"))
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        times = [i.mtime.timestamp() for i in fs.get_file_info(pafs.FileSelector(path)) if _is_row_file(i) and i.mtime]
        return max(times, default=None)

    def consolidate(self) -> pd.DataFrame:
        """Gather every row file into ``results.parquet`` (one row per row key, newest wins).

        One process at a time (a lock beside the file): two ``ddx evaluate`` runs into one
        folder each consolidate when they end, and without it the one that read the row files
        first could write last, leaving out the other's final rows."""
        with LeaseLock(join(self.root, f"results.parquet{LOCK_SUFFIX}")):
            df = self.current_rows()
            write_bytes_atomic(self.results_path, table_bytes(rows_to_table(df.to_dict("records"))))
        return df


def read_trial_record(location: str) -> JsonObject | None:
    """The trial record at ``location`` (:meth:`ResultStore.trial_record_path`); None when there is none."""
    if not exists(location):
        return None
    return read_json(location, fix="delete it (the trial runs again) or run the sweep with --fresh")


def _is_row_file(info: pafs.FileInfo) -> bool:
    """A row file (not a lock, nor a temporary file of an atomic write)."""
    return info.is_file and info.path.endswith(".parquet") and not Path(info.path).name.startswith(".")


def read_results(path: str) -> pd.DataFrame:
    """Read a ``results.parquet`` (or an experiment directory holding one)."""
    target = path if path.endswith(".parquet") else join(path, "results.parquet")
    return read_table_file(target)


__all__ = [
    "CORE_COLUMNS",
    "REFERENCE_IDENTITY",
    "ROW_KEY",
    "STOPPED",
    "ResultStore",
    "delete_dir",
    "distinct_references",
    "exists",
    "filesystem",
    "join",
    "read_bytes",
    "read_results",
    "read_table_file",
    "read_trial_record",
    "row_key",
    "rows_to_table",
    "table_bytes",
    "write_bytes_atomic",
]
