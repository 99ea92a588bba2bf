"""``ddx report``: every table number equals an aggregate recomputed from the Parquet rows."""

from __future__ import annotations

import base64
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from methods.parameterizations import ParamConfig, SetShape, build_parameterization, save_synthetic
from orchestrator.cli.main import app
from orchestrator.evaluation.reference import REFERENCE_FILE
from orchestrator.report.experiment import load_experiment
from orchestrator.report.write import write_report
from orchestrator.storage.results import ResultStore, rows_to_table, table_bytes, write_bytes_atomic

ARCHS = ["convnet_d1", "resnet18"]
RESOLUTIONS = [8, 16]
SEEDS = [0, 1, 2]
CROSS_16 = "Cross-architecture, hard labels, protocol `dd_standard`, 16px"


def _fmt(values: pd.Series) -> str:
    """The report's cell format, recomputed independently: mean ± sample std in %, 1 decimal."""
    v = values.to_numpy(dtype=float)
    if len(v) == 1:
        return f"{100 * v.mean():.1f} (1 seed)"
    return f"{100 * v.mean():.1f} ± {100 * v.std(ddof=1):.1f}"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An experiment directory written through the real store: 4 trials (2 objectives × 2 β),
    2 archs × 2 resolutions × 3 seeds × hard labels, one failed row, one single-seed cell,
    a tracked max-over-test column, saved synthetic sets and a reference.parquet."""
    root = tmp_path_factory.mktemp("exp") / "sweep-a"
    store = ResultStore(str(root))
    rng = np.random.default_rng(7)
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for t, (objective, beta) in enumerate([("dm", 0.1), ("dm", 1.0), ("cfm", 0.1), ("cfm", 1.0)]):
        key = f"trial{t:04d}"
        shape = SetShape(num_classes=3, ipc=2, channels=1, resolution=8)
        param = build_parameterization(ParamConfig("pixels", shape))
        param.init_from_real(torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(t)))
        syn = root / "synthetic" / f"{key}.pt"
        save_synthetic(param, syn)
        rows = []
        for arch in ARCHS:
            for res in RESOLUTIONS:
                for seed in SEEDS:
                    if t == 3 and arch == "resnet18" and res == 16 and seed > 0:
                        continue  # a single-seed cell
                    failed = t == 1 and arch == "resnet18" and res == 8 and seed == 2
                    val, test = rng.uniform(0.3, 0.9, size=2)
                    rows.append(
                        {
                            "sweep": "sweep-a",
                            "trial_id": f"t{t}",
                            "trial_key": key,
                            "objective": objective,
                            "parameterization": "pixels",
                            "dataset": "digits",
                            "ipc": 2,
                            "budget_scalars": 128,
                            "instances_per_class": 2,
                            "distill_arch": "convnet_d1",
                            "distill_resolution": 8,
                            "distill_workers": 1,
                            "distill_seed": 0,
                            "distill_seconds": 10.0 + t,
                            "config_hash": key,
                            "synthetic_path": str(syn),
                            "code_version": "abc123",
                            "ddx_version": "0.1.0",
                            "torch_version": torch.__version__,
                            "ray_version": "2.60.0",
                            "beta": beta,
                            "status": "failed" if failed else "ok",
                            "error": "RuntimeError: out of memory" if failed else None,
                            "val_acc": float("nan") if failed else float(val),
                            "test_acc": float("nan") if failed else float(test),
                            "max_over_test": None if failed else float(min(1.0, test + 0.05)),
                            "epochs": 5,
                            "eval_seconds": 1.5,
                            "device": "cpu",
                            "resize_mode": "none" if res == 8 else "bilinear",
                            "curve": "[[5, 0.5, null]]",
                            "eval_arch": arch,
                            "eval_arch_requested": arch,
                            "eval_resolution": res,
                            "seed": seed,
                            "label_mode": "hard",
                            "protocol": "dd_standard",
                            "created_at": created,
                        }
                    )
        store.write_trial_rows(key, rows)
    store.consolidate()
    ref_rows = [
        {
            "sweep": "sweep-a",
            "trial_key": "reference",
            "objective": "full_data",
            "parameterization": "real",
            "dataset": "digits",
            "label_mode": "hard",
            "status": "ok",
            "error": None,
            "eval_arch": arch,
            "eval_arch_requested": arch,
            "eval_resolution": res,
            "seed": seed,
            "val_acc": float(rng.uniform(0.9, 1.0)),
            "test_acc": float(rng.uniform(0.9, 1.0)),
            "epochs": 3,
            "train_seconds": 2.0,
            "cached": seed == 1,
            "created_at": created,
        }
        for arch in ARCHS
        for res in RESOLUTIONS
        for seed in (0, 1)
    ]
    write_bytes_atomic(str(root / REFERENCE_FILE), table_bytes(rows_to_table(ref_rows)))
    return root


def md_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Every ``#### title`` + pipe table in a Markdown report, as lists of {column: cell}."""
    out: dict[str, list[dict[str, str]]] = {}
    blocks = re.split(r"^#### ", text, flags=re.M)[1:]
    for block in blocks:
        lines = block.splitlines()
        title = lines[0].strip()
        table = [ln for ln in lines[1:] if ln.startswith("|")]
        split = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in table]
        header, body = split[0], split[2:]
        out[title] = [dict(zip(header, row, strict=True)) for row in body]
    return out


@pytest.fixture(scope="module")
def report(experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    out = tmp_path_factory.mktemp("report")
    _, paths = write_report(str(experiment), out, "all")
    assert [p.name for p in paths] == ["report.md", "report.html"]
    return (out / "report.md").read_text(), (out / "report.html").read_text(), out


def test_cross_architecture_cells_equal_recomputed_aggregates(experiment: Path, report) -> None:
    md, _, _ = report
    raw = pd.read_parquet(experiment / "results.parquet")
    ok = raw[raw["status"] == "ok"]
    tables = md_tables(md)
    for res in RESOLUTIONS:
        table = tables[f"Cross-architecture, hard labels, protocol `dd_standard`, {res}px"]
        assert len(table) == 4 + 1  # four distilled sets and the full-data row
        for row in table[:4]:
            key = re.search(r"\((trial\d+)\)$", row["distilled set"]).group(1)
            for arch in ARCHS:
                cell = ok[(ok["trial_key"] == key) & (ok["eval_arch"] == arch) & (ok["eval_resolution"] == res)]
                assert row[arch] == _fmt(cell["test_acc"]), (key, arch, res)
            means = [
                ok[(ok["trial_key"] == key) & (ok["eval_arch"] == a) & (ok["eval_resolution"] == res)][
                    "test_acc"
                ].mean()
                for a in ARCHS
            ]
            assert row["mean over networks"] == f"{100 * np.mean(means):.1f}"
        ref = pd.read_parquet(experiment / REFERENCE_FILE)
        full = table[4]
        assert full["distilled set"].startswith("full data")
        for arch in ARCHS:
            cell = ref[(ref["eval_arch"] == arch) & (ref["eval_resolution"] == res)]
            assert full[arch] == _fmt(cell["test_acc"])


def test_failed_rows_are_excluded_from_means_and_listed(experiment: Path, report) -> None:
    md, _, _ = report
    raw = pd.read_parquet(experiment / "results.parquet")
    failed = raw[raw["status"] == "failed"]
    assert len(failed) == 1
    table = md_tables(md)["Cross-architecture, hard labels, protocol `dd_standard`, 8px"]
    row = next(r for r in table if "(trial0001)" in r["distilled set"])  # dm, β=1
    cell = raw[(raw["trial_key"] == "trial0001") & (raw["eval_arch"] == "resnet18") & (raw["eval_resolution"] == 8)]
    assert row["resnet18"] == _fmt(cell.dropna(subset=["test_acc"])["test_acc"])
    fails = md_tables(md)["Failed runs (after retries; excluded from every mean)"]
    assert fails == [
        {
            "trial": "trial0001",
            "objective": "dm",
            "network": "resnet18",
            "res": "8",
            "labels": "hard",
            "seed": "2",
            "error": "RuntimeError: out of memory",
        }
    ]


def test_single_seed_cells_say_so(report) -> None:
    md, _, _ = report
    row = next(r for r in md_tables(md)[CROSS_16] if "trial0003" in r["distilled set"])
    assert row["resnet18"].endswith("(1 seed)")


def test_best_configuration_is_chosen_on_validation(experiment: Path, report) -> None:
    md, _, _ = report
    raw = pd.read_parquet(experiment / "results.parquet")
    ok = raw[raw["status"] == "ok"]
    table = md_tables(md)["Best configuration per method, hard labels, protocol `dd_standard` (selected on validation)"]
    assert len(table) == 2 * len(ARCHS) * len(RESOLUTIONS)
    for row in table:
        sel = ok[
            (ok["objective"] == row["objective"])
            & (ok["eval_arch"] == row["network"])
            & (ok["eval_resolution"] == int(row["res"]))
        ]
        by_trial = sel.groupby("trial_key")
        best = by_trial["val_acc"].mean().idxmax()
        assert f"({best})" in row["chosen configuration"]
        assert row["val acc"] == _fmt(by_trial.get_group(best)["val_acc"])
        assert row["test acc"] == _fmt(by_trial.get_group(best)["test_acc"])
        assert row["max over test epochs (optimistic, not selected on)"] == _fmt(
            by_trial.get_group(best)["max_over_test"]
        )
        assert row["candidates"] == "2"


def _assert_drop_row(row: dict[str, str], cell: pd.DataFrame, res: int, resized: str) -> None:
    """A cross-resolution row against the raw rows of its set and network: accuracy at ``res``,
    its drop from 8 px (diff, ratio) and the resize label (``resized`` away from 8 px)."""
    acc = cell[cell["eval_resolution"] == res]["test_acc"]
    org = cell[cell["eval_resolution"] == 8]["test_acc"].mean()
    assert row["accuracy"] == _fmt(acc)
    assert row["diff (↓)"] == f"{100 * (org - acc.mean()):.1f}"
    assert row["ratio (↓)"] == f"{(org - acc.mean()) / org:.2f}"
    assert row["resize"] == ("none" if res == 8 else resized)


def test_cross_resolution_diff_and_ratio(experiment: Path, report) -> None:
    md, _, _ = report
    raw = pd.read_parquet(experiment / "results.parquet")
    ok = raw[raw["status"] == "ok"]
    table = md_tables(md)["Cross-resolution, hard labels, protocol `dd_standard`"]
    synthetic = [r for r in table if not r["distilled set"].startswith("full data")]
    assert len(synthetic) == 4 * len(ARCHS) * len(RESOLUTIONS)
    for row in synthetic:
        key = re.search(r"\((trial\d+)\)$", row["distilled set"]).group(1)
        arch = row["network"]
        res = int(row["resolution"].split("→")[1])
        _assert_drop_row(row, ok[(ok["trial_key"] == key) & (ok["eval_arch"] == arch)], res, "bilinear")
    full = [r for r in table if r["distilled set"].startswith("full data")]
    assert len(full) == len(ARCHS) * len(RESOLUTIONS)
    ref = pd.read_parquet(experiment / REFERENCE_FILE)
    for row in full:  # the full-data reference, at each resolution against its own accuracy at 8 px
        res = int(row["resolution"].split("→")[1])
        _assert_drop_row(row, ref[ref["eval_arch"] == row["network"]], res, "real images resized")


def test_curve_data_per_swept_hyper_parameter(experiment: Path, report) -> None:
    md, _, out = report
    raw = pd.read_parquet(experiment / "results.parquet")
    ok = raw[raw["status"] == "ok"]
    assert (out / "figures" / "curve_beta.png").stat().st_size > 5000
    assert not (out / "figures" / "curve_ipc.png").exists()  # ipc is not swept here
    table = md_tables(md)["Data: accuracy vs beta"]
    assert len(table) == 2 * len(ARCHS) * len(RESOLUTIONS) * 2
    for row in table:
        objective = row["setting"].split(" · ")[0]
        arch, res = row["network"].split(" @ ")
        sel = ok[
            (ok["objective"] == objective)
            & (ok["beta"] == float(row["beta"]))
            & (ok["eval_arch"] == arch)
            & (ok["eval_resolution"] == int(res))
        ]
        assert row["test acc"] == _fmt(sel["test_acc"])
        assert row["val acc"] == _fmt(sel["val_acc"])


def test_images_and_provenance(experiment: Path, report) -> None:
    md, _, out = report
    for t in range(4):
        png = out / "figures" / f"synthetic_trial{t:04d}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/synthetic_trial{t:04d}.png" in md
    prov = {r["item"]: r["value"] for r in md_tables(md)["Provenance"]}
    assert prov["trials (config hashes)"] == "4: trial0000, trial0001, trial0002, trial0003"
    assert prov["evaluation rows"] == "46 (45 ok, 1 failed)"
    assert prov["code version"] == "abc123"
    assert prov["torch"] == torch.__version__
    assert prov["evaluation devices"] == "cpu (45 runs)"
    assert prov["distillation wall time"] == "46.0 s total over 4 trials (max 13.0 s)"
    assert prov["evaluation wall time"] == f"{1.5 * 45:.1f} s total, 1.5 s mean per run"
    assert prov["full-data reference"].startswith("8 runs (8 ok, 4 from cache)")


def test_html_is_self_contained(report) -> None:
    md, html, out = report
    imgs = re.findall(r'<img alt="[^"]*" src="([^"]+)"', html)
    figures = list((out / "figures").glob("*.png"))
    assert len(imgs) == len(figures) == 5
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for title in re.findall(r"^#### (.+)$", md, flags=re.M):
        assert title.replace("&", "&amp;") in html
    for anchor in ("best", "cross-architecture", "cross-resolution", "curves", "images", "failures", "provenance"):
        assert f'<section id="{anchor}">' in html


def test_cli_report_and_errors(experiment: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(experiment), "--format", "md", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "report.md").exists() and not (tmp_path / "r" / "report.html").exists()
    assert "46 rows (1 failed)" in res.output
    res = runner.invoke(app, ["report", str(experiment), "--format", "pdf"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2


def test_loads_from_the_parquet_file_path(experiment: Path) -> None:
    exp = load_experiment(str(experiment / "results.parquet"))
    assert exp.reference is not None and len(exp.reference) == 8
    assert exp.swept == ["beta"]


def test_report_of_a_running_or_interrupted_sweep_says_it_is_partial(experiment: Path, tmp_path: Path) -> None:
    """Row files without a newer results.parquet: the report reads them and says how many rows are in."""
    import json
    import shutil

    from orchestrator.report.experiment import load_experiment
    from orchestrator.spec.load import parse_spec
    from orchestrator.spec.plan import SPEC_FILE
    from tests.helpers import cli, tiny_digits_spec

    exp = tmp_path / "sweep-a"
    shutil.copytree(experiment, exp)
    (exp / "results.parquet").unlink()
    total = len(pd.read_parquet(experiment / "results.parquet"))
    spec = parse_spec(tiny_digits_spec(tmp_path, name="sweep-a"))  # 2 trials × 4 evaluations planned
    (exp / SPEC_FILE).write_text(json.dumps({"config_hash": spec.config_hash(), "spec": spec.model_dump(mode="json")}))
    loaded = load_experiment(str(exp))
    assert loaded.partial and len(loaded.rows) == total and loaded.planned == 8
    out = cli("report", str(exp), "--format", "md", "--out", str(tmp_path / "report"))
    assert out.exit_code == 0, out.output
    said = f"{total} rows (1 failed) of 8 planned; partial: the sweep was interrupted (rerun `ddx sweep` to finish it)"
    assert said in " ".join(out.output.split())
    # a sweep holds the experiment's lease: the report says it is running, and which
    from orchestrator.sweep.resume import hold_experiment

    lease = hold_experiment(spec)
    try:
        out = cli("report", str(exp), "--format", "md", "--out", str(tmp_path / "report2"))
        said = f"partial: the sweep is running (process {os.getpid()} on {socket.gethostname()}, since "
        assert out.exit_code == 0 and said in " ".join(out.output.split()), out.output
    finally:
        lease.release()
    ResultStore(str(exp)).consolidate()  # the sweep finished: results.parquet is the newest file
    assert not load_experiment(str(exp)).partial


def test_report_of_a_running_or_interrupted_ddx_evaluate_says_which(experiment: Path, tmp_path: Path) -> None:
    """A ``ddx evaluate`` folder's partial report names the evaluation, not a sweep: who writes it
    now (the holder of a row file's lease), or how to finish it."""
    import shutil

    from orchestrator.storage.results import REQUEST_FILE
    from tests.helpers import cli

    exp = tmp_path / "evaluate-dd_standard"
    shutil.copytree(experiment, exp)
    (exp / "results.parquet").unlink()
    (exp / REQUEST_FILE).write_text("{}")

    def status(name: str) -> str:
        out = cli("report", str(exp), "--format", "md", "--out", str(tmp_path / name))
        assert out.exit_code == 0, out.output
        return " ".join(out.output.split())

    assert "partial: the evaluation was interrupted (rerun the same `ddx evaluate` command to finish it)" in status("a")
    locks = [ResultStore(str(exp)).rows_lock(key) for key in ("set-a", "random-b")]
    assert all(lock.try_acquire() for lock in locks)
    try:
        said = status("b")
        assert f"partial: ddx evaluate is running (process {os.getpid()} on {socket.gethostname()}, since " in said
        assert ", and 1 more)" in said
    finally:
        for lock in locks:
            lock.release()
    assert "partial: the evaluation was interrupted" in status("c")


def test_a_damaged_parquet_file_is_one_line_naming_it(experiment: Path, tmp_path: Path) -> None:
    """A truncated results file, or a row file of a running sweep: report and leaderboard say which, exit 2
    (a folder's report reads its row files, so a damaged results file alone does not stop it)."""
    import shutil

    from tests.helpers import cli

    exp = tmp_path / "sweep-a"
    shutil.copytree(experiment, exp)
    results = exp / "results.parquet"
    (row_file,) = sorted((exp / "rows").glob("*.parquet"))[:1]
    for damaged, target in ((results, results), (row_file, exp)):  # the folder: its row files are read
        damaged.write_bytes(damaged.read_bytes()[:100])  # cut short, as by a full disk or a killed copy
        for argv in (["report", str(target), "--out", str(tmp_path / "r")], ["leaderboard", str(target)]):
            res = cli(*argv)
            lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
            assert res.exit_code == 2 and len(lines) == 1, res.output
            assert lines[0].startswith(f"error: {damaged}: not a readable Parquet file"), lines[0]
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_a_results_file_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    from tests.helpers import cli

    missing = tmp_path / "sweep" / "results.parquet"
    res = cli("report", str(missing), "--out", str(tmp_path / "r"))
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {missing}: no such file (give an experiment folder or its results.parquet)"


def test_an_unreadable_synthetic_set_is_noted_and_the_report_goes_on(experiment: Path, tmp_path: Path) -> None:
    import shutil

    exp = tmp_path / "sweep-a"
    shutil.copytree(experiment, exp)
    damaged = exp / "synthetic" / "trial0001.pt"
    damaged.write_bytes(b"not a set")
    (exp / "synthetic" / "trial0002.pt").unlink()
    rows = ResultStore(str(exp)).current_rows()
    rows["synthetic_path"] = rows["synthetic_path"].str.replace(str(experiment), str(exp), regex=False)
    write_bytes_atomic(str(exp / "results.parquet"), table_bytes(rows_to_table(rows.to_dict("records"))))
    _, paths = write_report(str(exp / "results.parquet"), tmp_path / "r", "md")
    md = paths[0].read_text()
    assert f"synthetic set not readable at `{damaged}` (not a torch file (text: 'not a set')" in md
    assert f"synthetic set not readable at `{exp / 'synthetic' / 'trial0002.pt'}`" in md
    assert "synthetic_trial0000" in md and "synthetic_trial0003" in md  # the readable sets' grids are drawn
    assert "synthetic_trial0001" not in md and "synthetic_trial0002" not in md


@pytest.mark.parametrize("command", ["report", "leaderboard", "export"])
def test_an_out_that_cannot_be_written_is_one_line(experiment: Path, tmp_path: Path, command: str) -> None:
    from tests.helpers import cli

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / ("board.md" if command == "leaderboard" else "out")  # under a file: cannot be made
    source = experiment / "synthetic" / "trial0000.pt" if command == "export" else experiment
    res = cli(command, str(source), "--out", str(out))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith("error: ") and "--out: cannot write it (" in lines[0], lines[0]


def test_a_mistyped_experiment_path_is_not_called_a_sweep_without_rows(tmp_path: Path) -> None:
    from tests.helpers import cli

    missing, empty = tmp_path / "no_such_sweep", tmp_path / "empty"
    empty.mkdir()
    for command in ("report", "leaderboard"):
        res = cli(command, str(missing))
        assert res.exit_code == 2
        says = "no such folder (give an experiment folder or its results.parquet)"
        assert res.stderr.strip() == f"error: {missing}: {says}"
        res = cli(command, str(empty))
        assert res.exit_code == 2 and "no result rows there yet; run `ddx sweep`" in res.stderr
