"""benchmarks/gpu_check.sh runs end to end on the CPU (--cpu-smoke): every part exits 0 and writes
the JSON the GPU run is read from. About 36 s of CPU time (all its processes) and 55 s of wall time
on the 2-core machine, so slow-marked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_cpu_smoke_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check"
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=800,
        env={**os.environ, "PYTHON": sys.executable},  # the interpreter running the suite, not the PATH's
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cpu-smoke"
    assert {name: part["ok"] for name, part in summary["parts"].items()} == {
        "student_batching": True,
        "decode": True,
        "tm_memory": True,
    }, summary["parts"]
    students = json.loads((out / "student_batching.json").read_text())
    rows = students["speedups"]["fp32_ipc1"]
    assert rows["k1"]["speedup"] == 1.0 and rows["k2"]["students_per_minute"] > 0
    assert [r["batched"] for r in students["runs"]] == [[1], [2, 2]]  # K = 2 really trained as one batch
    assert {r["k"] for r in students["where_time_goes"]} == {1, 2}
    assert all(r["leaf_ops_per_step"] > 50 for r in students["where_time_goes"])
    assert students["gpu_projection"]["by_ipc"]["ipc1"]["k1"]["projected_speedup"] == 1.0
    parity = summary["targets"]["bf16_parity"]
    assert len(parity["fp32"]) == len(parity["bf16"]) == 3
    assert summary["targets"]["students_k8_speedup"]["met"] is None  # K = 8 is not part of the smoke run
    assert summary["decode"]["batched_over_loop"]["32"] > 0
    tm = json.loads((out / "tm_memory.json").read_text())
    assert tm["syn_steps"] == [2] and tm["by_ipc"]["ipc1"]["unrolled_peak_mib"][0] > 0
