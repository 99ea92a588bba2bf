"""Expert trajectories: one file per expert, content identity, deterministic training, a streaming buffer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from methods.datasets import DatasetOptions, load_dataset
from methods.functional import FunctionalNet
from methods.networks import build_network
from methods.registry import PREREQUISITES
from methods.tm.experts import EXPERT_FORMAT, ExpertBuffer, Experts, expert_seed, load_expert
from methods.tm.options import ExpertOptions

OPTS = ExpertOptions(arch="convnet_d1", num_experts=3, train_epochs=5, keep_epochs=3, batch_size=128, lr=0.05)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetOptions(name="digits"))


@pytest.fixture(scope="module")
def expert_files(digits, tmp_path_factory) -> list[Path]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("experts")
    experts = Experts(OPTS)
    paths = []
    for unit in range(experts.units()):
        path = out / f"expert{unit}.pt"
        experts.produce(digits, unit, path, CPU)
        paths.append(path)
    return paths


def test_registered_with_mtt_defaults() -> None:
    assert PREREQUISITES.get("experts").implementation() is Experts
    d = ExpertOptions()
    assert (d.arch, d.num_experts, d.train_epochs, d.lr, d.momentum, d.weight_decay, d.batch_size) == (
        "convnet_d3",
        100,
        50,
        0.01,
        0.0,
        0.0,
        256,
    )
    from methods.augment.ops import DSA_DEFAULT

    assert d.augment == DSA_DEFAULT and d.keep_epochs is None and d.epochs_trained == 50
    assert Experts(OPTS).units() == 3 and OPTS.epochs_trained == 3


def test_file_holds_the_kept_snapshots(digits, expert_files: list[Path]) -> None:
    payload = load_expert(expert_files[0], mmap=False)
    assert payload["format"] == EXPERT_FORMAT
    snaps, meta = payload["snapshots"], payload["meta"]
    net = build_network("convnet_d1", 1, 10, 8)
    assert snaps.dtype == torch.float32 and snaps.shape == (4, FunctionalNet(net).num_params)  # epochs 0…3
    assert payload["epochs"].tolist() == [0, 1, 2, 3]
    assert meta["arch"] == "convnet_d1" and meta["num_params"] == snaps.shape[1]
    assert (meta["channels"], meta["num_classes"], meta["resolution"]) == (1, 10, 8)
    # snapshot 0 is the seeded initialisation; training moves the weights every epoch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(expert_seed(OPTS, 0))
        init = FunctionalNet(build_network("convnet_d1", 1, 10, 8)).flatten()
    assert torch.equal(snaps[0], init)
    steps = (snaps[1:] - snaps[:-1]).norm(dim=1)
    assert bool((steps > 0).all())
    assert meta["val_acc"] > 0.5  # 3 epochs of SGD on digits: far above chance (0.1)
    # the last snapshot is that network
    fnet = FunctionalNet(net)
    logits = fnet(snaps[-1], digits.val_x)
    assert float((logits.argmax(1) == digits.val_y).float().mean()) == pytest.approx(meta["val_acc"])


def test_training_is_deterministic_and_units_differ(digits, expert_files: list[Path], tmp_path: Path) -> None:
    again = tmp_path / "again.pt"
    Experts(OPTS).produce(digits, 1, again, CPU)
    assert torch.equal(load_expert(again)["snapshots"], load_expert(expert_files[1])["snapshots"])
    assert not torch.equal(load_expert(expert_files[0])["snapshots"], load_expert(expert_files[1])["snapshots"])


def test_identity_is_content_not_count() -> None:
    dataset = DatasetOptions(name="digits", cache_dir="/somewhere")
    a = Experts(OPTS).describe(dataset, 1)
    assert a["unit"] == 1 and a["epochs"] == 3 and "cache_dir" not in a["dataset"]
    assert Experts(replace(OPTS, num_experts=50)).describe(dataset, 1) == a  # more experts reuse these
    assert Experts(replace(OPTS, train_epochs=9)).describe(dataset, 1) == a  # still 3 epochs trained
    assert Experts(OPTS).describe(dataset, 2) != a
    assert Experts(replace(OPTS, keep_epochs=4)).describe(dataset, 1) != a
    assert Experts(OPTS).describe(replace(dataset, zca=True), 1) != a


def test_buffer_streams_one_expert_at_a_time(expert_files: list[Path]) -> None:
    buffer = Experts(OPTS).load(expert_files, CPU)
    assert isinstance(buffer, ExpertBuffer)
    assert buffer.num_experts == 3 and buffer.last_epoch == 3 and buffer.arch == "convnet_d1"
    assert buffer.loads == 1 and buffer.held == [0]  # opening reads expert 0's metadata
    snaps = [load_expert(p, mmap=False)["snapshots"] for p in expert_files]
    for expert, (a, b) in [(0, (0, 2)), (2, (1, 3)), (2, (0, 1)), (1, (2, 3)), (0, (1, 3))]:
        start, target = buffer.pair(expert, a, b)
        assert torch.equal(start, snaps[expert][a]) and torch.equal(target, snaps[expert][b])
        assert buffer.held == [expert]
    assert buffer.loads == 4  # 0 (open), 2, 1, 0: a repeat of the held expert reads nothing
    assert buffer.max_held == 1  # never two experts at once
    start, _ = buffer.pair(0, 0, 1)
    start.add_(1.0)  # callers get copies: the buffer's data is untouched
    assert torch.equal(buffer.pair(0, 0, 1)[0], snaps[0][0])
    with pytest.raises(IndexError, match="keeps epochs 0…3"):
        buffer.pair(1, 2, 4)
    with pytest.raises(IndexError):
        buffer.pair(3, 0, 1)


def test_row_fields_summarise_the_experts(expert_files: list[Path]) -> None:
    row = Experts(OPTS).row_fields(expert_files)
    assert row["num_experts"] == 3 and row["expert_arch"] == "convnet_d1" and row["expert_epochs_kept"] == 3
    accs = [load_expert(p)["meta"]["val_acc"] for p in expert_files]
    assert row["expert_val_acc"] == pytest.approx(sum(accs) / 3)


def test_not_an_expert_file_is_rejected(tmp_path: Path) -> None:
    torch.save({"format": "something-else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a ddx expert file"):
        ExpertBuffer([tmp_path / "x.pt"])
