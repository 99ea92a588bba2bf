#!/usr/bin/env bash
# One GPU check, ≤ 8 minutes on one GPU: what the CPU machine cannot measure.
#
#   1. benchmarks/student_batching.py on CUDA: students per minute for K = 1…32 seeds of ConvNet-D3
#      trained as one vmapped batch, IPC 1/10/50, fp32 and bf16 (target: ≥ 4× at K = 8), the
#      tiny-vs-real step split, and bf16 vs fp32 accuracy of 3 seeds on a CIFAR-10 IPC 10 set
#      (full test split, 1000 epochs);
#   2. benchmarks/decode.py on CUDA: DDiF's batched neural-field decode vs a per-field loop;
#   3. benchmarks/tm_memory.py on CUDA: TM step time and peak memory, syn_steps 20/50/80, IPC 1/10.
#
# Each part writes its JSON under the output folder and summary.json gathers them (exit status,
# seconds, the targets). --cpu-smoke runs the same parts on the CPU at tiny sizes (≈ 1–2 min on
# 2 cores; what the default test suite checks).
#
# Usage: bash benchmarks/gpu_check.sh [--cpu-smoke] [--out DIR] [--cifar TREE_OR_TARBALL]
#   --out    output folder (default benchmarks/results/gpu_check)
#   --cifar  a CIFAR-10 ImageFolder tree (train/, test/) or the cifar10-jpg.tar.gz to extract;
#            default: $CIFAR10_ROOT, else the tarball in $DDX_SHARED_DATA, ../shared/data or
#            shared/data (GPU mode). Without CIFAR-10 the throughput runs on random images and the
#            parity run is skipped (recorded).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=gpu
OUT=benchmarks/results/gpu_check
CIFAR="${CIFAR10_ROOT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) MODE=cpu-smoke ;;
    --out) OUT="$2"; shift ;;
    --cifar) CIFAR="$2"; shift ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
PY="${PYTHON:-}"  # $PYTHON, else the repository's .venv, else python on the PATH
[ -z "$PY" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
PY="${PY:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# CIFAR-10: a tree as is; a tarball extracted once into $TMPDIR (GPU mode also looks for the shared tarball)
if [ -z "$CIFAR" ] && [ "$MODE" = gpu ]; then
  for d in "${DDX_SHARED_DATA:-}" ../shared/data shared/data; do
    if [ -n "$d" ] && [ -f "$d/cifar10-jpg.tar.gz" ]; then CIFAR="$d/cifar10-jpg.tar.gz"; break; fi
  done
fi
if [ -n "$CIFAR" ] && [ -f "$CIFAR" ]; then
  dest="${TMPDIR:-/tmp}/ddx-gpu-check/cifar10-jpg"
  if [ ! -f "$dest/.extracted" ]; then
    mkdir -p "$dest" && tar -xzf "$CIFAR" -C "$dest" && touch "$dest/.extracted"
  fi
  CIFAR="$dest/cifar10"
fi
ROOT_ARGS=()
[ -n "$CIFAR" ] && ROOT_ARGS=(--root "$CIFAR")

if [ "$MODE" = gpu ]; then
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device: run with --cpu-smoke for the CPU version" >&2
    exit 1
  fi
  STUDENTS=(--device cuda --ks 1 2 4 8 16 32 --ipcs 1 10 50 --precisions fp32 bf16 --steps 100
            --split-ipcs 10 50 --split-ks 1 8 --parity-epochs 1000 --test-per-class 20)
  DECODE=(--device cuda --min-seconds 0.5 --gemm-size 4096)
  TM=(--device cuda --steps 20 50 80 --ipcs 1 10 --no-precision-check --threads 4)
  LIMITS=(270 60 150)
else
  STUDENTS=(--device cpu --ks 1 2 --ipcs 1 --precisions fp32 --steps 2 --repeats 1 --split-ipcs 1 --split-ks 1 2 --project-ks 1 2
            --parity-epochs 1 --parity-test-per-class 2 --test-per-class 2)
  DECODE=(--device cpu --resolutions 32 --fields 8 --hot-fields 8 --min-seconds 0.05 --gemm-size 256)
  TM=(--device cpu --steps 2 --ipcs 1 --no-precision-check --threads 1)
  LIMITS=(300 120 240)  # wall seconds: generous, the CPU machine is shared
fi

run_part() {  # name, time limit (s), command…
  local name="$1" limit="$2"
  shift 2
  local start rc
  start=$(date +%s.%N)
  echo "== $name: $*" >&2
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "{\"rc\": $rc, \"seconds\": $(awk "BEGIN {print $(date +%s.%N) - $start}"), \"limit_seconds\": $limit}" \
    > "$OUT/$name.status.json"
  tail -n 3 "$OUT/$name.log" >&2
}

T0=$(date +%s)
run_part student_batching "${LIMITS[0]}" "$PY" benchmarks/student_batching.py "${STUDENTS[@]}" ${ROOT_ARGS[@]+"${ROOT_ARGS[@]}"} \
  --out "$OUT/student_batching.json"
run_part decode "${LIMITS[1]}" "$PY" benchmarks/decode.py "${DECODE[@]}" --out "$OUT/decode.json"
run_part tm_memory "${LIMITS[2]}" "$PY" benchmarks/tm_memory.py "${TM[@]}" --out "$OUT/tm_memory.json"

"$PY" - "$OUT" "$MODE" "$(( $(date +%s) - T0 ))" <<'PY'
"""Gather the parts' JSON into summary.json, with the targets the GPU check is for."""
import json
import sys
from pathlib import Path

out, mode, wall = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
parts = {}
for name in ("student_batching", "decode", "tm_memory"):
    status = json.loads((out / f"{name}.status.json").read_text())
    path = out / f"{name}.json"
    parts[name] = {**status, "ok": status["rc"] == 0 and path.exists(), "json": path.name if path.exists() else None}
summary = {"mode": mode, "wall_seconds": wall, "parts": parts, "targets": {}}
if parts["student_batching"]["ok"]:
    sb = json.loads((out / "student_batching.json").read_text())
    summary["device"] = sb["machine"]["device_name"]
    k8 = {key: row["k8"]["speedup"] for key, row in sb["speedups"].items() if "k8" in row}
    met = min(k8.values()) >= 4 if k8 else None  # None: K = 8 not run (the CPU smoke)
    summary["targets"]["students_k8_speedup"] = {"want": ">= 4 at every IPC and precision", "measured": k8, "met": met}
    summary["targets"]["students_speedups"] = {
        key: {k: v["speedup"] for k, v in row.items()} for key, row in sb["speedups"].items()
    }
    if sb.get("parity"):
        p = sb["parity"]
        summary["targets"]["bf16_parity"] = {
            "want": "|bf16 − fp32| mean test accuracy ≤ 1 pt over 3 seeds",
            "fp32": p["fp32"]["test_acc"],
            "bf16": p["bf16"]["test_acc"],
            "difference_pt": p["bf16_minus_fp32_mean_pt"],
            "met": abs(p["bf16_minus_fp32_mean_pt"]) <= 1.0,
            "data": p["data"],
        }
if parts["decode"]["ok"]:
    dec = json.loads((out / "decode.json").read_text())
    summary["decode"] = {
        "batched_over_loop": {r["resolution"]: r["batched_over_loop"] for r in dec["rows"]},
        "hot_path_batched_over_loop": dec["hot_path"]["batched_over_loop"],
    }
if parts["tm_memory"]["ok"]:
    tm = json.loads((out / "tm_memory.json").read_text())
    summary["tm"] = {"syn_steps": tm["syn_steps"], **tm["by_ipc"]}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({k: summary[k] for k in ("mode", "wall_seconds", "parts")}, indent=2))
PY
