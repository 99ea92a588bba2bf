"""``ddx evaluate``: external sets (a ddx set, an image folder, a tensor file) judged under one protocol.

Bad input is refused with one line and exit code 2 before anything runs; a real run on digits
gives rows in the sweep schema, a random-real-subset baseline of the same size, hard-label
companions of a soft protocol, the full-data reference, and HLR/IOR/LRS in the report.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cli, ddx
from PIL import Image

from methods.datasets import DatasetOptions, cached_dataset
from methods.evaluation.protocol import protocol_name, settings_from_json, student_settings
from orchestrator.evaluation.external import EvaluateRequest, plan
from orchestrator.evaluation.external_run import run
from tests.helpers import trial_of

DIGITS = DatasetOptions(name="digits")


def request(sets: list[Path], *flags: str, **options: object) -> EvaluateRequest:
    """What ``ddx evaluate SETS --dataset digits FLAGS…`` asks (the command's own parsing)."""
    from orchestrator.cli.evaluate import FLAG_KEYS, configuration

    values: dict[str, object] = {"--dataset": "digits"}
    settings: list[str] = []
    it = iter(flags)
    for flag in it:
        value = next(it)
        if flag == "--set":
            settings.append(value)
        elif flag in ("--archs", "--label-modes"):
            values[flag] = value.split(",")
        else:
            values[flag] = int(value) if flag == "--seeds" else value
    assert set(values) <= set(FLAG_KEYS), values
    return EvaluateRequest(sets=[str(s) for s in sets], spec=configuration(None, values, settings), **options)


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A ddx set distilled with DM on digits (methods API), the same images as a pixel-space tensor
    file and as a PNG folder, and broken inputs."""
    from methods.artifacts import LocalArtifactCache
    from methods.context import DistillContext
    from methods.distill.pipeline import run_distillation
    from methods.parameterizations import save_synthetic

    root = tmp_path_factory.mktemp("sets")
    data = cached_dataset(DIGITS)
    ctx = DistillContext(seed=0, device=torch.device("cpu"), cache=LocalArtifactCache(root / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: two threads per process oversubscribe it ×20
    try:
        param, _, _ = run_distillation(trial_of(data, {"objective": "dm", "ipc": 2, "iterations": 10}), data, ctx)
    finally:
        torch.set_num_threads(threads)
    save_synthetic(param, root / "dm.pt", {"mean": list(data.mean), "std": list(data.std)})
    pixels = data.denormalize(param.decode().detach()).clamp(0, 1)
    labels = param.labels.clone()
    torch.save({"images": pixels, "labels": labels}, root / "dm_pixels.pt")
    for i, (img, lab) in enumerate(zip(pixels, labels, strict=True)):
        d = root / "folder" / (str(int(lab)) if int(lab) >= 3 else f"{int(lab):03d}")  # names or indices
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8), mode="L").save(d / f"{i}.png")
    # broken inputs
    torch.save({"images": pixels[:, 0], "labels": labels}, root / "bad_shape.pt")  # (N, H, W)
    torch.save({"images": pixels, "labels": labels[:-1]}, root / "bad_count.pt")
    torch.save({"images": (pixels - 0.3) / 0.37, "labels": labels}, root / "normalised_as_pixels.pt")
    torch.save({"images": pixels[:-1], "labels": labels[:-1]}, root / "unbalanced.pt")
    torch.save({"images": pixels[:0], "labels": labels[:0]}, root / "no_images.pt")
    torch.save({"images": pixels[:, :, :0, :0], "labels": labels}, root / "zero_size.pt")
    # 111 per class: digits' smallest class keeps 110 training images (no random baseline that large)
    torch.save({"images": pixels[::2].repeat_interleave(111, 0), "labels": labels[::2].repeat_interleave(111)},
               root / "too_big.pt")  # fmt: skip
    bad_folder = root / "bad_folder" / "cat"
    bad_folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(bad_folder / "x.png")
    return {p.stem if p.is_file() else p.name: p for p in root.iterdir()}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.pt", "--preset", "dd_standard"], "no such file or folder"),
        (["{bad_shape}", "--preset", "dd_standard"], "images must be (N, C, H, W)"),
        (["{bad_count}", "--preset", "dd_standard"], "20 images but 19 labels"),
        (["{dm_pixels}", "--preset", "nope"], "--preset: unknown preset 'nope'"),
        (["{normalised_as_pixels}", "--preset", "dd_standard"], "outside [0, 1] pixel space"),
        (["{unbalanced}", "--preset", "dd_standard"], "images per class differ"),
        (["{no_images}", "--preset", "dd_standard"], "the set holds no images"),
        (["{zero_size}", "--preset", "dd_standard"], "images are empty, shape (20, 1, 0, 0)"),
        (["{too_big}", "--preset", "dd_standard"], "fewer than IPC 111; the random-real baseline at this set's IPC"),
        (["{bad_folder}", "--preset", "dd_standard"], "class folder 'cat'"),
        (["{dm_pixels}", "--preset", "dd_standard", "--set", "evaluation.epochs=0"], "evaluation.epochs: must be ≥ 1"),
        (
            ["{dm_pixels}", "--preset", "dd_standard", "--set", "evaluation.epochs=[3"],
            "--set evaluation.epochs: invalid",
        ),
        (["{dm_pixels}", "--preset", "dd_standard", "--set", 'evaluation.lr="\\0"'], "--set evaluation.lr: the value"),
        (["{dm_pixels}", "--preset", "dd_standard", "--set", "evaluation.epoch=3"], "did you mean 'epochs'"),
        (["{dm_pixels}", "--preset", "dd_standard", "--set", "epochs"], "--set: expected KEY.PATH=VALUE"),
        (["{dm_pixels}", "--preset", "dd_standard", "--archs", "convnet_d1,nonet"], "--archs: unknown network 'nonet'"),
        (["{dm_pixels}", "--preset", "dd_standard", "--archs", "vgg11"], "--archs: vgg11 needs inputs of at least 32"),
        (["{dm_pixels}", "--preset", "dd_standard", "--archs", "alexnet", "--resolutions", "32,8"], "at least 16"),
        (["{dm_pixels}", "--preset", "dd_standard", "--space", "rgb"], "--space"),
        (["{dm_pixels}", "--preset", "dd_standard", "--resolutions", "8.5"], "list of whole numbers, got '8.5'"),
        (["{dm_pixels}", "--preset", "dd_standard", "--resolutions", "8,100000"], "--resolutions: must be ≤ 2048"),
        (["{dm_pixels}", "--preset", "dd_standard", "--resolutions", "0"], "--resolutions: must be ≥ 1"),
        (["{dm_pixels}", "--preset", "cfm_paper", "--set", "teacher.arch=nonet"], "teacher.arch: unknown network"),
        (["{dm_pixels}", "--dataset", "digits"], "evaluation.preset: required: name the protocol (--preset"),
    ],
)
def test_bad_input_is_one_line_exit_2(sets: dict[str, Path], args: list[str], says: str, tmp_path: Path) -> None:
    argv = [a.format(**{k: str(v) for k, v in sets.items()}) for a in args]
    res = cli("evaluate", *argv, "--dataset", "digits", "--out", str(tmp_path / "out"))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and says in lines[0], res.stderr
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_an_unwritable_or_empty_out_is_one_line_before_any_work(sets: dict[str, Path], tmp_path: Path) -> None:
    """Checked before Ray starts: the evaluations used to run and then fail writing (a traceback)."""
    blocked = sets["dm_pixels"] / "out"  # under a file: cannot be made
    for out, says in ((str(blocked), f"--out: cannot write to '{blocked}'"), ("", "--out: empty")):
        res = cli("evaluate", str(sets["dm_pixels"]), "--preset", "dd_standard", "--dataset", "digits", "--out", out)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {says}"), res.output
        assert "running on" not in res.stdout


def test_normalisation_is_explicit(sets: dict[str, Path]) -> None:
    """A pixel-space tensor file, the PNG folder and the ddx set decode to the same normalised images."""
    from methods.evaluation.external_sets import load_set
    from methods.parameterizations import from_payload

    data = cached_dataset(DIGITS)
    ddx_set = from_payload(load_set(sets["dm"], data).payload).decode()
    from_pixels = from_payload(load_set(sets["dm_pixels"], data).payload).decode()
    from_folder = from_payload(load_set(sets["folder"], data).payload).decode()
    inside = ddx_set.clamp((0 - data.mean[0]) / data.std[0], (1 - data.mean[0]) / data.std[0])
    assert torch.allclose(from_pixels, inside, atol=1e-5)
    assert (from_folder - inside).abs().max() <= 0.5 / 255 / data.std[0] + 1e-5  # PNG rounding only
    normalised = torch.load(sets["normalised_as_pixels"], weights_only=True)
    torch.save({**normalised, "space": "normalized"}, sets["dm"].parent / "declared.pt")
    declared = from_payload(load_set(sets["dm"].parent / "declared.pt", data).payload).decode()
    assert torch.allclose(declared, normalised["images"][torch.sort(normalised["labels"], stable=True).indices])


@pytest.mark.slow
def test_evaluate_a_ddx_set_and_an_image_folder(sets: dict[str, Path], tmp_path: Path, ray_session) -> None:
    """cfm_paper (soft) on the ddx set and the folder; rows, baseline, hard companions, reference, scores."""
    from test_report import md_tables

    from orchestrator.report.write import write_report

    out = tmp_path / "evaluate-cfm"
    # through the real command line (its own Ray), as a user runs it
    proc = ddx(
        "evaluate", str(sets["dm"]), str(sets["folder"]), "--preset", "cfm_paper", "--dataset", "digits",
        "--archs", "convnet_d1", "--seeds", "2", "--set", "evaluation.epochs=2", "--baseline-seed", "5",
        "--set", "evaluation.reference.epochs=1", "--set", "teacher.arch=convnet_d1", "--set", "teacher.epochs=2",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "HLR (pp)" in proc.stdout and "IOR (pp)" in proc.stdout and "LRS" in proc.stdout
    rows = pd.read_parquet(out / "results.parquet")
    assert (rows["status"] == "ok").all()
    protocol = protocol_name({"preset": "cfm_paper", "epochs": 2}, "digits", 2)
    assert protocol.startswith("custom-") and set(rows["protocol"]) == {protocol}
    # every set and the baseline: soft (the protocol's labels) and hard (for HLR) × 2 seeds
    assert sorted(rows.groupby("objective").size().items()) == [("dm", 4), ("folder", 4), ("random", 4)]
    assert set(rows["label_mode"]) == {"hard", "soft"} and (rows["ipc"] == 2).all()
    # where the students' targets came from: the teacher relabels soft students, hard ones train on class labels
    assert rows.groupby("label_mode")["label_source"].unique().map(list).to_dict() == {
        "hard": ["hard"], "soft": ["teacher"]}  # fmt: skip
    base = rows[rows["objective"] == "random"]
    assert (base["baseline_seed"] == 5).all() and base["set_format"].eq("random").all()
    # the baseline holds 2 real training images per class, drawn with seed 5
    payload = torch.load(base["synthetic_path"].iloc[0], weights_only=True)
    assert torch.bincount(payload["state"]["labels"]).tolist() == [2] * 10
    # the rows' settings are the protocol's, label mode by label mode
    for _, r in rows.iterrows():
        want = student_settings({"preset": "cfm_paper", "epochs": 2}, r["label_mode"], "digits", 2)
        assert settings_from_json(r["eval_settings"]) == want
    ref = pd.read_parquet(out / "reference.parquet")
    assert len(ref) == 2 and (ref["status"] == "ok").all()

    write_report(str(out), tmp_path / "report", "md")
    tables = md_tables((tmp_path / "report" / "report.md").read_text())
    soft = {r["objective"]: r for r in tables[f"Best configuration per method, soft labels, protocol `{protocol}` "
                                              "(selected on validation)"]}  # fmt: skip
    full = ref["test_acc"].mean()
    for name in ("dm", "folder"):
        mine = rows[rows["objective"] == name]
        hard = mine[mine["label_mode"] == "hard"]["test_acc"].mean()
        syn = mine[mine["label_mode"] == "soft"]["test_acc"].mean()
        rnd = base[base["label_mode"] == "soft"]["test_acc"].mean()
        hlr, ior = full - hard, syn - rnd
        alpha = 0.5 * ior - 0.5 * hlr
        lrs = (math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1))
        assert soft[name]["HLR (pp)"] == f"{100 * hlr:+.1f}"
        assert soft[name]["IOR (pp)"] == f"{100 * ior:+.1f}"
        assert soft[name]["LRS"] == f"{100 * lrs:.1f}"
    assert soft["random"]["IOR (pp)"] == "+0.0"

    # a second protocol into the same folder: dd_standard (hard labels) on the tensor file; rows of both
    # protocols live side by side and the report keeps them apart
    req2 = request(
        [sets["dm_pixels"]], "--preset", "dd_standard", "--archs", "convnet_d1", "--seeds", "1",
        "--set", "evaluation.epochs=2", "--out", str(out), baseline_seed=5, reference=False,
    )  # fmt: skip
    run(plan(req2), log=lambda _: None)
    rows = pd.read_parquet(out / "results.parquet")
    assert rows["protocol"].nunique() == 2 and len(rows) == 12 + 2
    md = write_report(str(out), tmp_path / "report2", "md")[1][0].read_text()
    assert "**Note:** rows of 2 evaluation protocols" in md


def test_a_set_another_ddx_evaluate_holds_waits_for_it_then_runs_only_what_is_missing(
    sets: dict[str, Path], tmp_path: Path, ray_session
) -> None:
    """Two evaluations into one folder (a preset's default --out is shared) share the random
    baseline of their IPC: the second waits for the first's hold on it, keeps its rows and runs
    only the networks the first did not."""
    import threading
    import time

    from orchestrator.storage.results import ResultStore

    out = tmp_path / "evaluate-dd_standard"
    common = ("--preset", "dd_standard", "--seeds", "1", "--set", "evaluation.epochs=2", "--out", str(out))
    run(plan(request([sets["dm_pixels"]], *common, "--archs", "convnet_d1", reference=False)), log=lambda _: None)
    store = ResultStore(str(out))
    second = plan(request([sets["folder"]], *common, "--archs", "convnet_d1,convnet_d2", reference=False))
    baseline = next(u for u in second.units if u.columns["objective"] == "random")
    (first_row,) = store.read_trial_rows(baseline.key)  # the first evaluation's baseline row

    other = store.rows_lock(baseline.key)  # as another ddx evaluate holds it (each lock is an owner)
    assert other.try_acquire()
    lines: list[str] = []
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(done=run(second, log=lines.append)))
    thread.start()
    folder = next(u for u in second.units if u.columns["objective"] == "folder")
    deadline = time.monotonic() + 180
    while len(store.read_trial_rows(folder.key)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    assert len(store.read_trial_rows(folder.key)) == 2  # its own set evaluated meanwhile
    assert len(store.read_trial_rows(baseline.key)) == 1  # the held one not touched
    other.release()
    thread.join(timeout=180)
    assert outcome["done"].failed == 0
    said = "\n".join(lines)
    assert "random: another ddx evaluate is evaluating it into this folder (process" in said
    assert "2 evaluations to run (and what is missing of 1 held by another ddx evaluate, after it)" in said
    assert "random: 1 evaluations still missing after the other ddx evaluate" in said
    rows = store.read_trial_rows(baseline.key)
    assert sorted(r["eval_arch"] for r in rows) == ["convnet_d1", "convnet_d2"]
    kept = next(r for r in rows if r["eval_arch"] == "convnet_d1")
    assert kept["created_at"] == first_row["created_at"]  # kept, not run again
    assert (
        sorted(pd.read_parquet(out / "results.parquet")["objective"])
        == ["dm_pixels", "folder", "folder"] + ["random"] * 2
    )
    assert not list(out.rglob("*.lock"))


def test_ctrl_c_stops_ddx_evaluate_with_one_line_and_exit_130(sets: dict[str, Path], tmp_path: Path) -> None:
    """SIGINT while the evaluations run: Ray is stopped, one line says how to finish, exit 130."""
    from helpers import ddx_interrupted

    args = ["evaluate", str(sets["dm_pixels"]), "--preset", "dd_standard", "--dataset", "digits", "--no-reference"]
    args += ["--set", "evaluation.epochs=100000", "--out", str(tmp_path / "out")]
    # "… evaluations to run": Ray is up and the tasks are submitted
    code, err = ddx_interrupted(*args, when="evaluations to run", stderr_file=tmp_path / "stderr.txt", timeout=120)
    assert code == 130, err
    assert err.strip().splitlines()[-1] == (
        "interrupted: rerun the same command to finish (finished evaluations are kept)"
    ), err
