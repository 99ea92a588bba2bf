"""End to end: a real sweep through the CLI → ``ddx report`` → the HTML opened in headless Chromium.

Digits at distillation resolution 8, evaluated at 8 and 16 px by three networks
(``convnet`` with depth following the resolution, ConvNet-D3, ResNet-18) over two seeds,
with the full-data reference; the report's numbers are recomputed from the Parquet rows
and the HTML must render in a real browser with every table and image.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import ddx, write_spec
from test_report import _fmt, md_tables


def one_table(tables: dict, prefix: str, suffix: str = "") -> list[dict[str, str]]:
    """The one table whose title starts with ``prefix`` and ends with ``suffix`` (titles name the protocol)."""
    hits = [t for title, t in tables.items() if title.startswith(prefix) and title.endswith(suffix)]
    assert len(hits) == 1, [title for title in tables if title.startswith(prefix)]
    return hits[0]


ARCHS = {8: ["convnet_d1", "convnet_d3", "resnet18"], 16: ["convnet_d2", "convnet_d3", "resnet18"]}
SECTIONS = [
    "Best configuration per method",
    "Cross-architecture",
    "Cross-resolution",
    "Hyper-parameter curves",
    "Synthetic images",
    "Failed runs",
    "Provenance",
]

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => {
  window.__errors.push(String(e.message || (e.target && e.target.tagName) || e.type));
}, true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const out = document.createElement('pre');
  out.id = 'ddx-probe';
  out.textContent = JSON.stringify({
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('tbody tr').length,
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    visible: [...document.querySelectorAll('section')].every(s => s.getBoundingClientRect().height > 0),
    errors: window.__errors,
  });
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on PATH (Debian: apt-get install -y chromium)")
    raise AssertionError  # unreachable


def browser(html: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
                html.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    spec = {
        "name": "e2e-report",
        "storage": str(root / "store"),
        "dataset": {"name": "digits", "resolution": 8},
        "method": {"objective": "dm", "distill_arch": "convnet_d3", "iterations": 10, "batch_real": 32},
        "search": {"ipc": {"grid": [1, 2]}},
        "algorithm": "grid",
        "resources": {"distill_workers": 1, "eval_cpus": 1, "max_concurrent_trials": 2},
        "evaluation": {
            "archs": ["convnet", "convnet_d3", "resnet18"],
            "resolutions": [8, 16],
            "seeds": 2,
            "epochs": 10,
            "batch_size": 64,
            "check_every": 5,
            "track_test": True,
            "reference": {"epochs": 1, "seeds": 1},
        },
    }
    path = write_spec(root / "sweep.yaml", spec)
    run = ddx("sweep", str(path), "--fresh", timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return root / "store" / "e2e-report"


@pytest.mark.slow
def test_sweep_report_and_browser(swept: Path, tmp_path: Path) -> None:
    rows = pd.read_parquet(swept / "results.parquet")
    assert len(rows) == 2 * 2 * 3 * 2 and (rows["status"] == "ok").all()
    assert set(zip(rows["eval_arch"], rows["eval_resolution"], strict=True)) == {
        (a, r) for r, archs in ARCHS.items() for a in archs
    }
    auto = rows[rows["eval_arch_requested"] == "convnet"]
    assert set(auto["eval_arch"]) == {"convnet_d1", "convnet_d2"}
    ref = pd.read_parquet(swept / "reference.parquet")
    assert len(ref) == 3 * 2 and (ref["status"] == "ok").all()

    out = tmp_path / "report"
    run = ddx("report", str(swept), "--out", str(out), "--format", "all")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    md = (out / "report.md").read_text()
    for section in SECTIONS:
        assert f"## {section}" in md
    tables = md_tables(md)

    # every cross-architecture cell equals the aggregate recomputed from the Parquet rows
    for res, archs in ARCHS.items():
        table = one_table(tables, "Cross-architecture, hard labels, protocol ", f"{res}px")
        assert len(table) == 3  # two distilled sets and the full-data row
        for row in table[:2]:
            key = re.search(r"\((\w+)\)$", row["distilled set"]).group(1)
            for arch in archs:
                cell = rows[(rows["trial_key"] == key) & (rows["eval_arch"] == arch) & (rows["eval_resolution"] == res)]
                assert row[arch] == _fmt(cell["test_acc"])
        for arch in archs:
            cell = ref[(ref["eval_arch"] == arch) & (ref["eval_resolution"] == res)]
            assert table[2][arch] == _fmt(cell["test_acc"])

    cross_res = one_table(tables, "Cross-resolution, hard labels, protocol ")
    assert {r["network"] for r in cross_res} == {
        "convnet → convnet_d1",
        "convnet → convnet_d2",
        "convnet_d3",
        "resnet18",
    }
    best = one_table(tables, "Best configuration per method, hard labels, protocol ")
    assert len(best) == 2 * 6  # two IPCs × six (network, resolution) cells
    assert "max over test epochs (optimistic, not selected on)" in best[0]
    assert "Data: accuracy vs ipc" in tables
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) == 3 and "curve_ipc.png" in figures
    prov = {r["item"]: r["value"] for r in tables["Provenance"]}
    assert prov["evaluation rows"] == "24 (24 ok, 0 failed)"
    assert prov["full-data reference"].startswith("6 runs (6 ok")

    # the HTML renders in a real browser: no errors, every image decoded, every table there
    html = out / "report.html"
    text = html.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</head>", PROBE + "</head>", 1))
    dom = browser(probe, "--virtual-time-budget=10000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="ddx-probe">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, dom.stdout[-2000:]
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["errors"] == []
    assert seen["images"] == seen["decoded"] == 3
    assert seen["tables"] == text.count("<table>") >= 6
    assert seen["sections"] == [
        "best",
        "protocols",
        "cross-architecture",
        "cross-resolution",
        "curves",
        "images",
        "failures",
        "provenance",
    ]
    assert seen["visible"] is True
    shot = tmp_path / "shot.png"
    snap = browser(html, "--window-size=1280,2000", f"--screenshot={shot}")
    assert snap.returncode == 0 and shot.stat().st_size > 50_000  # a rendered page, not a blank one
