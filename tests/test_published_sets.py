"""``ddx evaluate`` reads what the field publishes: DatasetCondensation ``res_*.pt``, mtt-distillation and
DATM folders, DDiF synset files, SRe²L/RDED image folders — each written here the way its reference's
save code writes it (tiny, seeded, on digits) — plus ddx's own export, ZCA-space sets and learned
soft labels. Bad files are one line and exit 2; one real run checks the rows end to end.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cli
from PIL import Image
from test_evaluate_sets import request

from methods.datasets import DatasetOptions, cached_dataset
from methods.evaluation.options import LEARNED_LABELS_KEY, LEARNED_LR_KEY
from methods.parameterizations import ParamConfig, SetShape, build_parameterization, from_payload, save_synthetic
from methods.parameterizations.options import NeuralFieldOptions
from orchestrator.evaluation.external import plan

DIGITS = DatasetOptions(name="digits")
IPC = 2
LR = 0.0234


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    data = cached_dataset(DIGITS)
    return (pixels - data.mean[0]) / data.std[0]


def _ddif_fields(param) -> list[OrderedDict]:
    """A ddx neural field written as DDiF's SynSet.save does: one Siren state dict per field."""
    depth = param.opts.nf_depth
    names = [f"net.{i}.linear" for i in range(depth)] + ["last_layer.linear"]
    out = []
    for j in range(param.num_instances):
        sd = OrderedDict()
        for k, n in enumerate(names):
            sd[f"{n}.weight"] = getattr(param, f"weight_{k}")[j].detach().clone()
            sd[f"{n}.bias"] = getattr(param, f"bias_{k}")[j].detach().clone()
        out.append(sd)
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every format, from 2 real digits per class (class-major, as the references initialise)."""
    root = tmp_path_factory.mktemp("published")
    data = cached_dataset(DIGITS)
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([data.class_indices(c)[torch.randperm(len(data.class_indices(c)), generator=g)[:IPC]]
                     for c in range(10)])  # fmt: skip
    pixels = data.denormalize(data.train_x[idx]).clamp(0, 1)
    labels = torch.arange(10).repeat_interleave(IPC)
    torch.save({"pixels": pixels, "labels": labels}, root / "truth.pt")
    norm = _normalised(pixels)
    # DatasetCondensation main.py: torch.save({'data': data_save, 'accs_all_exps': …}, 'res_<method>_….pt')
    accs = {"ConvNet": [np.float64(0.41), np.float64(0.43)]}  # numpy scalars, as DC's evaluate_synset returns
    torch.save({"data": [[norm.clone(), labels.clone()], [norm.flip(-1), labels.clone()]], "accs_all_exps": accs},
               root / "res_DM_digits_ConvNet_2ipc.pt")  # fmt: skip
    # mtt-distillation distill.py: images_best.pt, labels_best.pt (+ the learned lr, as MTT-lineage code saves it)
    mtt = root / "mtt_run"
    mtt.mkdir()
    torch.save(norm.clone(), mtt / "images_best.pt")
    torch.save(labels.clone(), mtt / "labels_best.pt")
    torch.save(torch.tensor(LR), mtt / "syn_lr_best.pt")
    # DATM DATM.py: <run>/Normal/images_best.pt, labels_best.pt (learned soft labels: logits), lr_best.pt
    datm = root / "datm_run" / "Normal"
    datm.mkdir(parents=True)
    logits = torch.randn(10 * IPC, 10, generator=g) + 4.0 * torch.nn.functional.one_hot(labels, 10)
    torch.save(norm.clone(), datm / "images_best.pt")
    torch.save(logits.requires_grad_(True), datm / "labels_best.pt")  # DATM saves the leaf it optimised
    torch.save(torch.tensor(LR).requires_grad_(True).detach(), datm / "lr_best.pt")
    # DDiF SynSet/DDiF.py save: {"nf": [state_dict…], "label": …} (+ syn_lr under TM); 2 fields per class at IPC 3
    opts = NeuralFieldOptions(nf_width=6, nf_depth=2)
    field = build_parameterization(ParamConfig("neural_field", SetShape(10, 3, 1, 8), opts))
    torch.save({"nf": _ddif_fields(field), "label": field.labels.clone(), "syn_lr": torch.tensor(LR)},
               root / "DDiF_TM_3ipc#synset_best.pt")  # fmt: skip
    with torch.no_grad():
        torch.save({"decoded": field.decode(), "decoded16": field.decode(16)}, root / "ddif_truth.pt")
    # SRe2L recover: new<class:03d>/class<class:03d>_id<i:03d>.jpg; RDED: <class:05d>/class<class:05d>_id<i:05d>.jpg
    for name, folder, file in (("sre2l", "new{:03d}", "class{:03d}_id{:03d}.jpg"),
                               ("rded", "{:05d}", "class{:05d}_id{:05d}.jpg")):  # fmt: skip
        for i, (img, c) in enumerate(zip(pixels, labels, strict=True)):
            d = root / name / folder.format(int(c))
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(d / file.format(int(c), i % IPC))
    # a ddx set, exported as grids and an image folder (the round trip)
    save_synthetic(_pixels_set(norm, labels), root / "ddx_set.pt", {"mean": list(data.mean), "std": list(data.std)})
    return {p.name: p for p in root.iterdir()}


def _pixels_set(images: torch.Tensor, labels: torch.Tensor):
    shape = SetShape(10, IPC, 1, 8)
    p = build_parameterization(ParamConfig("pixels", shape))
    p.init_from_real(images[torch.sort(labels, stable=True).indices])
    return p


def _units(p) -> dict[str, object]:
    return {u.columns["objective"]: u for u in p.units}


def test_datasetcondensation_res_file_gives_one_set_per_experiment(published: dict[str, Path]) -> None:
    path = published["res_DM_digits_ConvNet_2ipc.pt"]
    truth = torch.load(published["truth.pt"])
    p = plan(request([path], "--preset", "dd_standard"))
    units = _units(p)
    assert sorted(units) == ["random", "res_DM_digits_ConvNet_2ipc#0", "res_DM_digits_ConvNet_2ipc#1"]
    first = units["res_DM_digits_ConvNet_2ipc#0"]
    assert (first.columns["set_format"], first.columns["set_space"], first.ipc) == ("dc", "normalized", IPC)
    assert first.columns["set_source"] == f"{path}#0" and first.columns["set_lr"] is None and first.labels == "hard"
    decoded = from_payload(first.payload).decode()
    assert torch.allclose(decoded, _normalised(truth["pixels"]), atol=1e-6)
    second = from_payload(units["res_DM_digits_ConvNet_2ipc#1"].payload).decode()
    assert torch.allclose(second, _normalised(truth["pixels"]).flip(-1), atol=1e-6)
    # --experiment picks one; its name keeps the index
    one = _units(plan(request([path], "--preset", "dd_standard", experiment=1)))
    assert sorted(one) == ["random", "res_DM_digits_ConvNet_2ipc#1"]


def test_reference_normalisation_constants_are_converted_to_ddx_s() -> None:
    """A DC CIFAR-10 file holds (x − DC's mean) / DC's std (std 0.2023…); ddx normalises with the
    training split's own statistics: the reader maps one onto the other exactly."""
    from methods.datasets.base import RealData
    from methods.evaluation.published_sets import REFERENCE_STATS
    from methods.evaluation.set_spaces import to_data_space

    stats = REFERENCE_STATS["dc"]["cifar10"]
    assert stats == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # DatasetCondensation utils.py
    assert REFERENCE_STATS["mtt"]["cifar100"] == stats  # MTT normalises CIFAR-100 with CIFAR-10's constants
    empty = torch.zeros(0, 3, 4, 4)
    data = RealData("cifar10", empty, torch.zeros(0), empty, torch.zeros(0), empty, torch.zeros(0), 10,
                    [str(i) for i in range(10)], (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))  # fmt: skip
    pixels = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    m, s = (torch.tensor(v).view(1, 3, 1, 1) for v in stats)
    got = to_data_space((pixels - m) / s, "normalized", data, stats)
    want = (pixels - torch.tensor(data.mean).view(1, 3, 1, 1)) / torch.tensor(data.std).view(1, 3, 1, 1)
    assert torch.allclose(got, want, atol=1e-5)


def test_mtt_folder_records_its_learned_lr(published: dict[str, Path]) -> None:
    truth = torch.load(published["truth.pt"])
    p = plan(request([published["mtt_run"]], "--preset", "mtt_paper"))
    units = _units(p)
    u = units["mtt_run"]
    assert (u.columns["set_format"], u.columns["set_space"], u.ipc, u.labels) == ("mtt", "normalized", IPC, "hard")
    assert u.columns["set_lr"] == pytest.approx(LR) and u.payload["extra"][LEARNED_LR_KEY] == pytest.approx(LR)
    assert torch.allclose(from_payload(u.payload).decode(), _normalised(truth["pixels"]), atol=1e-6)
    # the protocol trains with the learned lr: the random baseline is given the rate of its set
    assert units["random"].columns["set_lr"] == pytest.approx(LR)
    assert any("values read as normalized" in n for n in p.notes)
    # the images file alone finds its labels and lr beside it
    alone = _units(plan(request([published["mtt_run"] / "images_best.pt"], "--preset", "dd_standard")))
    assert alone["mtt_run"].columns["set_lr"] == pytest.approx(LR)


def test_datm_learned_soft_labels_travel_with_the_set(published: dict[str, Path]) -> None:
    p = plan(request([published["datm_run"]], "--preset", "dd_standard"))
    u = _units(p)["datm_run"]
    assert (u.columns["set_format"], u.labels, u.ipc) == ("mtt", "learned_soft", IPC)
    assert u.columns["set_lr"] == pytest.approx(LR)
    logits = torch.load(published["datm_run"] / "Normal" / "labels_best.pt")
    assert torch.equal(u.payload["extra"][LEARNED_LABELS_KEY], logits.detach())
    assert from_payload(u.payload).labels.tolist() == torch.arange(10).repeat_interleave(IPC).tolist()
    # the same images with other labels are another set (another key, another row file)
    mtt = _units(plan(request([published["mtt_run"]], "--preset", "dd_standard")))["mtt_run"]
    assert mtt.key != u.key


def test_ddif_fields_become_ddx_neural_fields(published: dict[str, Path]) -> None:
    path = published["DDiF_TM_3ipc#synset_best.pt"]
    truth = torch.load(published["ddif_truth.pt"])
    p = plan(request([path], "--preset", "ddif_paper", "--set", "evaluation.resolutions=[8, 16]"))
    units = _units(p)
    u = units["DDiF_TM_3ipc#synset_best"]
    assert (u.columns["set_format"], u.columns["parameterization"], u.columns["set_space"]) == (
        "ddif", "neural_field", "normalized")  # fmt: skip
    assert u.ipc == 3 and u.columns["instances_per_class"] == 2 and u.columns["set_lr"] == pytest.approx(LR)
    assert u.resolutions == (8, 16)
    field = from_payload(u.payload)
    with torch.no_grad():
        assert torch.allclose(field.decode(), truth["decoded"], atol=1e-5)
        assert torch.allclose(field.decode(16), truth["decoded16"], atol=1e-5)  # decoded at every resolution
    assert any("ω not in the file" in n for n in p.notes)
    assert units["random"].ipc == 3


@pytest.mark.parametrize("layout", ["sre2l", "rded"])
def test_recovered_image_folders_land_in_the_teacher_regime(published: dict[str, Path], layout: str) -> None:
    truth = torch.load(published["truth.pt"])
    soft = plan(request([published[layout]], "--preset", "sre2l_soft"))
    u = _units(soft)[layout]
    assert (u.columns["set_format"], u.columns["set_space"], u.ipc) == ("imagefolder", "pixels", IPC)
    assert soft.students.label_modes == ("soft", "hard")  # relabelled by the teacher (+ hard for HLR)
    assert soft.notes == []
    got = from_payload(u.payload).decode()
    err = (got - _normalised(truth["pixels"])).abs() * cached_dataset(DIGITS).std[0]  # in pixels
    assert err.max() < 0.2 and err.mean() < 0.03  # JPEG's loss on 8×8 digits
    hard = plan(request([published[layout]], "--preset", "dd_standard"))
    want = "SRe²L" if layout == "sre2l" else "RDED"
    assert next(n for n in hard.notes if "relabelled by a teacher" in n).startswith(f"{layout}: {want} recovered")


def test_zca_sets_whiten_the_real_data_and_keep_their_values(published: dict[str, Path], tmp_path: Path) -> None:
    data = cached_dataset(DIGITS)
    zdata = cached_dataset(DatasetOptions(name="digits", zca=True))
    g = torch.Generator().manual_seed(3)
    idx = torch.cat([data.class_indices(c)[torch.randperm(len(data.class_indices(c)), generator=g)[:IPC]]
                     for c in range(10)])  # fmt: skip
    folder = tmp_path / "zca_run"
    folder.mkdir()
    torch.save(zdata.train_x[idx].clone(), folder / "images_best.pt")  # ZCA-whitened training images
    torch.save(data.train_y[idx].clone(), folder / "labels_best.pt")
    req = request([folder], "--preset", "dd_standard", space="zca")
    p = plan(req)
    u = _units(p)["zca_run"]
    assert u.columns["set_space"] == "zca" and u.payload["extra"].get("zca") is True
    order = torch.sort(data.train_y[idx], stable=True).indices
    assert torch.equal(from_payload(u.payload).decode(), zdata.train_x[idx][order])
    assert req.data_zca and req.dataset_options().zca and req.out.endswith("evaluate-dd_standard-zca")
    baseline = _units(p)["random"]
    assert baseline.columns["set_space"] == "zca"
    drawn = from_payload(baseline.payload).decode().detach().flatten(1)
    nearest = torch.cdist(drawn, zdata.train_x.flatten(1)).min(dim=1).values
    assert nearest.max() < 1e-2  # (cdist rounding) drawn from the whitened training split, not the normalised one


def _one_line(res, says: str) -> None:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and says in lines[0], res.output
    assert "Traceback" not in res.output


@pytest.fixture(scope="module")
def broken(published: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad files of every format."""
    root = tmp_path_factory.mktemp("broken")
    truth = torch.load(published["truth.pt"])
    norm, labels = _normalised(truth["pixels"]), truth["labels"]
    torch.save({"syn": [[norm, labels]]}, root / "res_wrong_keys.pt")
    torch.save({"data": [[norm, labels[:-1]]], "accs_all_exps": {}}, root / "res_count.pt")
    torch.save({"data": [[norm, labels]]}, root / "res_ok.pt")
    for name, lab in (("mtt_run", labels), ("mtt_count", labels[:-2]), ("datm_width", torch.randn(len(labels), 11)),
                      ("mtt_nolabels", None)):  # fmt: skip
        (root / name).mkdir()
        torch.save(norm, root / name / "images_best.pt")
        if lab is not None:
            torch.save(lab, root / name / "labels_best.pt")
    (root / "mtt_pixels_as_zca").mkdir()
    torch.save(truth["pixels"], root / "mtt_pixels_as_zca" / "images_best.pt")
    torch.save(labels, root / "mtt_pixels_as_zca" / "labels_best.pt")
    (root / "mtt_zca_as_pixels").mkdir()
    torch.save(norm * 3.0, root / "mtt_zca_as_pixels" / "images_best.pt")
    torch.save(labels, root / "mtt_zca_as_pixels" / "labels_best.pt")
    ddif = torch.load(published["DDiF_TM_3ipc#synset_best.pt"])
    torch.save({"fields": ddif["nf"], "label": ddif["label"]}, root / "ddif_wrong_keys.pt")
    torch.save({"nf": ddif["nf"][:-1], "label": ddif["label"]}, root / "ddif_count.pt")
    bad_layer = [dict(f) for f in ddif["nf"]]
    bad_layer[3] = {**bad_layer[3], "net.1.linear.weight": torch.zeros(7, 6)}
    torch.save({"nf": bad_layer, "label": ddif["label"]}, root / "ddif_shapes.pt")
    for c in range(7):  # classes 7, 8 and 9 missing
        d = root / "folder_missing" / str(c)
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / "0.png")
    torch.save({"what": 1}, root / "unknown.pt")
    return {p.name: p for p in root.iterdir()}


@pytest.mark.parametrize(
    ("name", "extra", "says"),
    [
        ("res_wrong_keys.pt", [], "unrecognised contents (a dict with keys ['syn'])"),
        ("res_wrong_keys.pt", ["--format", "dc"], "not a DatasetCondensation res_*.pt"),
        ("res_count.pt", [], "experiment 0: 20 images but 19 labels"),
        ("res_ok.pt", ["--experiment", "3"], "--experiment 3: the file holds experiments 0…0"),
        ("mtt_count", [], "20 images in images_best.pt but 18 labels in labels_best.pt"),
        ("datm_width", [], "learned soft labels have 11 columns; the dataset has 10 classes"),
        ("mtt_nolabels", [], "images_best.pt without labels_best.pt beside it"),
        ("mtt_pixels_as_zca", ["--space", "zca"], "inside [0, 1]: these are pixels, not zca values"),
        ("mtt_zca_as_pixels", ["--space", "pixels"], "outside [0, 1] pixel space"),
        ("mtt_run", ["--experiment", "0"], "--experiment: applies to DatasetCondensation files (res_*.pt), and none"),
        ("ddif_wrong_keys.pt", ["--format", "ddif"], "not a DDiF synset file"),
        ("ddif_count.pt", [], "19 fields but 20 labels"),
        ("ddif_shapes.pt", [], "field 3: net.1.linear.weight differs in shape from field 0's (6, 6)"),
        ("folder_missing", [], "no images of 3 of the 10 classes of 'digits': 7 (7), 8 (8), 9 (9)"),
        ("unknown.pt", [], "unrecognised contents (a dict with keys ['what']): give --format"),
        ("res_ok.pt", ["--format", "mtt"], "not an mtt-distillation/DATM images_best.pt"),
        ("folder_missing", ["--format", "ddif"], "a folder is read as imagefolder or mtt"),
        ("res_ok.pt", ["--format", "bmp"], "--format: must be one of auto, pt, dc, mtt, imagefolder, ddif, ddx"),
    ],
)
def test_bad_published_files_are_one_line_exit_2(
    broken: dict[str, Path], name: str, extra: list[str], says: str, tmp_path: Path
) -> None:
    res = cli("evaluate", str(broken[name]), "--preset", "dd_standard", "--dataset", "digits", *extra,
              "--out", str(tmp_path / "out"))  # fmt: skip
    _one_line(res, says)
    assert not (tmp_path / "out").exists()


def test_sets_of_two_spaces_in_one_run_and_a_learned_lr_protocol_without_one(
    published: dict[str, Path], tmp_path: Path
) -> None:
    data = cached_dataset(DatasetOptions(name="digits", zca=True))
    labels = torch.arange(10).repeat_interleave(IPC)
    idx = torch.cat([torch.nonzero(data.train_y == c).flatten()[:IPC] for c in range(10)])
    torch.save({"images": data.train_x[idx].clone(), "labels": labels, "space": "zca"}, tmp_path / "whitened.pt")
    out = str(tmp_path / "out")
    res = cli("evaluate", str(tmp_path / "whitened.pt"), str(published["res_DM_digits_ConvNet_2ipc.pt"]),
              "--preset", "dd_standard", "--dataset", "digits", "--out", out)  # fmt: skip
    _one_line(res, "a set in normalized space beside ZCA-whitened ones")
    res = cli("evaluate", str(published["res_DM_digits_ConvNet_2ipc.pt"]), "--preset", "mtt_paper",
              "--dataset", "digits", "--out", out)  # fmt: skip
    _one_line(res, "trains with the set's learned learning rate (evaluation.lr_from_set) but this set carries none")
    res = cli("evaluate", str(published["mtt_run"]), "--preset", "dd_standard", "--dataset", "digits",
              "--set", "dataset.zca=true", "--out", out)  # fmt: skip
    _one_line(res, "the set holds normalized values but the real data is ZCA-whitened (dataset.zca)")
    assert not Path(out).exists()


def test_learned_soft_labels_of_one_hot_logits_train_as_class_labels() -> None:
    """The soft-target path is the class-label path when the soft labels are one-hot (logits ±∞): the
    same student, the same accuracy; class labels themselves take the unchanged cross-entropy path."""
    from dataclasses import replace

    from methods.evaluation.options import EvalSettings
    from methods.evaluation.student import soft_target_loss, train_student

    data = cached_dataset(DIGITS)
    x, y = data.train_x[:60], data.train_y[:60]
    one_hot = 1e4 * torch.nn.functional.one_hot(y, 10).float()
    logits = torch.randn(60, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(soft_target_loss(logits, one_hot), torch.nn.functional.cross_entropy(logits, y))
    s = replace(EvalSettings(), epochs=3, batch_size=32, augment="none")
    hard = train_student(x, y, data, "convnet_d1", 0, s)
    soft = train_student(x, one_hot, data, "convnet_d1", 0, s)
    assert hard.test_acc == pytest.approx(soft.test_acc, abs=0.01) and hard.val_acc == pytest.approx(
        soft.val_acc, abs=0.01
    )
    for a, b in zip(hard.model.parameters(), soft.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(60, 10\) learned soft labels, got torch.float32 of shape \(60, 11\)"):
        train_student(x, torch.zeros(60, 11), data, "convnet_d1", 0, s)


def test_export_writes_an_image_folder_that_evaluate_reads_back(published: dict[str, Path], tmp_path: Path) -> None:
    res = cli("export", str(published["ddx_set.pt"]), "--out", str(tmp_path / "exp"))
    assert res.exit_code == 0, res.output
    tree = tmp_path / "exp" / "images"
    assert sorted(d.name for d in tree.iterdir()) == [f"{c:03d}" for c in range(10)]
    assert sorted(f.name for f in (tree / "003").iterdir()) == ["0000.png", "0001.png"]
    assert "images/<class index>/<instance>.png" in (tmp_path / "exp" / "README.txt").read_text()
    p = plan(request([tree], "--preset", "dd_standard"))
    back = from_payload(_units(p)["images"].payload).decode()
    original = from_payload(torch.load(published["ddx_set.pt"], weights_only=True)).decode()
    std = cached_dataset(DIGITS).std[0]
    assert (back - original).abs().max() <= 0.5 / 255 / std + 1e-5  # PNG rounding only
    # the export folder itself says where its images are
    res = cli("evaluate", str(tmp_path / "exp"), "--preset", "dd_standard", "--dataset", "digits",
              "--out", str(tmp_path / "o"))  # fmt: skip
    _one_line(res, "a `ddx export` folder: give its images/ tree")


def test_published_sets_run_end_to_end(published: dict[str, Path], tmp_path: Path, ray_session) -> None:
    """mtt_paper on an MTT folder, a DATM folder and a DDiF file: rows with their format, space, label
    source, IPC and learned lr (the students' lr); the learned soft labels rank apart. Then ddx export's
    image folder and a DC experiment under dd_standard."""
    from orchestrator.evaluation.external_run import run
    from orchestrator.report.experiment import load_experiment
    from orchestrator.report.leaderboard import leaderboard, load_rows

    out = tmp_path / "evaluate-mtt"
    quick = ("--archs", "convnet_d1", "--seeds", "1", "--set", "evaluation.epochs=2", "--out", str(out))
    sets = [published["mtt_run"], published["datm_run"], published["DDiF_TM_3ipc#synset_best.pt"]]
    outcome = run(plan(request(sets, "--preset", "mtt_paper", *quick, reference=False)), log=lambda _: None)
    assert outcome.failed == 0
    rows = pd.read_parquet(out / "results.parquet").set_index("objective")
    got = rows[["set_format", "set_space", "label_source", "ipc", "parameterization"]].sort_index()
    assert got.reset_index().values.tolist() == [
        ["DDiF_TM_3ipc#synset_best", "ddif", "normalized", "hard", 3, "neural_field"],
        ["datm_run", "mtt", "normalized", "learned_soft", IPC, "pixels"],
        ["mtt_run", "mtt", "normalized", "hard", IPC, "pixels"],
        ["random", "random", "normalized", "hard", 2, "pixels"],
        ["random", "random", "normalized", "hard", 3, "pixels"],
    ]
    assert rows["protocol"].eq("custom-" + rows["protocol"].iloc[0].split("-")[1]).all()  # epochs=2 → custom
    assert np.allclose(rows["set_lr"], LR) and np.allclose(rows["eval_lr"], LR)  # the students trained with it
    assert rows["test_acc"].between(0, 1).all()
    exp = load_experiment(str(out))  # the report's view: the learned soft labels are their own regime
    assert exp.rows.set_index("objective").loc["datm_run", "label_mode"] == "learned_soft"
    board = leaderboard(load_rows([str(out)]))
    datm = board[board["objective"] == "datm_run"].iloc[0]
    mates = board[(board["label_mode"] == datm["label_mode"]) & (board["ipc"] == datm["ipc"])]
    assert list(mates["objective"]) == ["datm_run"] and math.isnan(datm["ior"])  # ranked alone: no baseline mixes in
    hard = board[(board["label_mode"] == "hard") & (board["ipc"] == IPC)]
    assert sorted(hard["objective"]) == ["mtt_run", "random"]

    res = cli("export", str(published["ddx_set.pt"]), "--out", str(tmp_path / "exp"))
    assert res.exit_code == 0, res.output
    out2 = tmp_path / "evaluate-std"
    quick2 = (*quick[:-1], str(out2))
    two = [tmp_path / "exp" / "images", published["res_DM_digits_ConvNet_2ipc.pt"]]
    run(plan(request(two, "--preset", "dd_standard", *quick2, reference=False, experiment=0)), log=lambda _: None)
    rows = pd.read_parquet(out2 / "results.parquet")
    assert (rows["status"] == "ok").all() and sorted(rows["objective"]) == [
        "images", "random", "res_DM_digits_ConvNet_2ipc#0"]  # fmt: skip
    assert set(rows["label_source"]) == {"hard"} and rows["set_lr"].isna().all()


@pytest.mark.slow
def test_a_zca_set_in_zca_space_scores_as_its_pixel_twin(cifar10_root: Path, tmp_path: Path) -> None:
    """Ten real CIFAR-10 training images per class, once as pixels (a tensor file) and once ZCA-whitened
    as MTT saves them (images_best.pt: CIFAR's default space is zca): each evaluated by the evaluation
    task in its own space — the whitened one against whitened validation/test data — scores the same
    within noise. (~4 min on 2 cores.)"""
    from dataclasses import replace

    from methods.parameterizations import payload_bytes
    from orchestrator.evaluation.tasks import evaluate_group

    opts = DatasetOptions(name="cifar10", root=str(cifar10_root), train_per_class=60, test_per_class=100)
    plain, whitened = cached_dataset(opts), cached_dataset(replace(opts, zca=True))
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([plain.class_indices(c)[torch.randperm(len(plain.class_indices(c)), generator=g)[:10]]
                     for c in range(10)])  # fmt: skip
    torch.save({"images": plain.denormalize(plain.train_x[idx]), "labels": plain.train_y[idx]}, tmp_path / "px.pt")
    (tmp_path / "zca_run").mkdir()
    torch.save(whitened.train_x[idx].clone(), tmp_path / "zca_run" / "images_best.pt")
    torch.save(whitened.train_y[idx].clone(), tmp_path / "zca_run" / "labels_best.pt")
    flags = ("--preset", "dd_standard", "--dataset", "cifar10", "--root", str(cifar10_root), "--archs", "convnet_d1",
             "--seeds", "3", "--set", "dataset.train_per_class=60", "--set", "dataset.test_per_class=100",
             "--set", "evaluation.epochs=60", "--set", "evaluation.batch_size=50")  # fmt: skip
    accs = {}
    for path in (tmp_path / "px.pt", tmp_path / "zca_run"):
        req = request([path], *flags)
        p = plan(req)
        u = next(u for u in p.units if u.columns["objective"] != "random")
        rows = evaluate_group(payload_bytes(u.payload), p.students.jobs(u.resolutions), req.dataset_options(),
                              p.protocol, threads=1, use_gpu=False)  # fmt: skip
        accs[u.columns["set_space"]] = [r["test_acc"] for r in rows]
        assert req.dataset_options().zca == (u.columns["set_space"] == "zca")
    assert set(accs) == {"pixels", "zca"}
    px, zc = np.mean(accs["pixels"]), np.mean(accs["zca"])
    assert px > 0.15 and zc > 0.15  # both learn (chance: 0.10)
    assert abs(px - zc) <= 0.04, accs  # the same images in two spaces: within noise (3 seeds, 1000 test images)


def test_the_evaluation_task_trains_hard_mode_students_on_learned_soft_labels(published: dict[str, Path]) -> None:
    """Soft labels that point every image at the next class teach the student that shift: its test
    accuracy collapses, where class labels teach the classes (the task reads extra[soft_labels])."""
    from methods.evaluation.external_sets import pixels_payload
    from methods.evaluation.protocol import Protocol
    from methods.parameterizations import payload_bytes
    from orchestrator.evaluation.jobs import StudentPlan
    from orchestrator.evaluation.tasks import evaluate_group

    data = cached_dataset(DIGITS)
    idx = torch.cat([torch.nonzero(data.train_y == c).flatten()[:5] for c in range(10)])
    x, y = data.train_x[idx], data.train_y[idx]
    shifted = 20.0 * torch.nn.functional.one_hot((y + 1) % 10, 10).float()
    protocol = Protocol.of({"preset": "dd_standard", "epochs": 40, "batch_size": 25, "augment": "none"})
    jobs = StudentPlan(("convnet_d1",), (0, 1)).jobs(8)
    accs = {}
    for name, soft in (("class labels", None), ("shifted soft labels", shifted)):
        payload = pixels_payload(x, y, data, soft_labels=soft)
        rows = evaluate_group(payload_bytes(payload), jobs, DIGITS, protocol, threads=1, use_gpu=False)
        accs[name] = float(np.mean([r["test_acc"] for r in rows]))
    assert accs["class labels"] > 0.5 and accs["shifted soft labels"] < 0.1, accs
