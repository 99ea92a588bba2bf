"""A ``.pt`` that is not a torch file is one line naming the file and what it is instead
(``ddx evaluate``, ``ddx export``, a ddx set read back), not ``torch.load``'s ``KeyError``/``IndexError``."""

from __future__ import annotations

import fractions
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.parameterizations import payload_from_bytes
from methods.torch_files import NotATorchFile, load_torch
from tests.helpers import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pt")
    good = root / "good.pt"
    torch.save({"images": torch.rand(10, 1, 8, 8), "labels": torch.arange(10)}, good)
    out = {"good": good}
    out["text"] = root / "text.pt"
    out["text"].write_text("images,labels\n0.1,3\n")
    out["truncated"] = root / "truncated.pt"
    out["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["empty"] = root / "empty.pt"
    out["empty"].write_bytes(b"")
    out["npz"] = root / "arrays.pt"
    with open(out["npz"], "wb") as fh:
        np.savez(fh, images=np.zeros(3))
    out["object"] = root / "object.pt"
    torch.save({"images": fractions.Fraction(1, 3)}, out["object"])
    return out


EXPECTED = {
    "text": "not a torch file (text: 'images,labels')",
    "truncated": "not a torch file (a zip archive cut short or damaged, ",
    "empty": "not a torch file (empty)",
    "npz": "not a torch file (a zip archive torch.save did not write: it holds images.npy)",
    "object": "a torch file holding the Python object fractions.Fraction, which weights_only=True loading refuses",
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_what_a_file_is_instead(files: dict[str, Path], case: str) -> None:
    for source in (files[case], files[case].read_bytes()):
        with pytest.raises(NotATorchFile) as err:
            load_torch(source)
        assert str(err.value).startswith(EXPECTED[case]), str(err.value)
        assert "\n" not in str(err.value)
    assert load_torch(files["good"])["labels"].tolist() == list(range(10))


def test_a_ddx_set_read_back_says_what_the_bytes_are() -> None:
    with pytest.raises(NotATorchFile, match=r"^not a torch file \(binary data starting 00 01 02 03 04 05 06 07\)$"):
        payload_from_bytes(bytes(range(64)))
    buf = io.BytesIO()
    torch.save({"state": {"x": torch.ones(2)}}, buf)
    assert payload_from_bytes(buf.getvalue())["state"]["x"].tolist() == [1.0, 1.0]


def _one_line(proc) -> str:
    assert proc.exit_code == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["text", "truncated"])
def test_ddx_evaluate_and_ddx_export_name_the_file_and_what_it_is(
    files: dict[str, Path], case: str, tmp_path: Path
) -> None:
    """``ddx evaluate`` said ``cannot read it with torch.load(weights_only=True): KeyError``."""
    path = files[case]
    line = _one_line(cli("evaluate", str(path), "--preset", "toy_quick", "--dataset", "digits"))
    assert line.startswith(f"error: {path}: {EXPECTED[case]}"), line
    assert line.endswith("give a .pt of images and labels, an image folder or a ddx set"), line
    line = _one_line(cli("export", str(path), "--out", str(tmp_path / "grids")))
    assert line.startswith(f"error: {path}: {EXPECTED[case]}"), line
    assert line.endswith("give a synthetic set a sweep wrote (<experiment>/synthetic/<key>.pt)"), line
    assert not (tmp_path / "grids").exists()
