"""Helpers for end-to-end tests: run the real CLI in a subprocess, write sweep files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
#: environment variable naming one ddx run: every process it starts (Ray's workers included) inherits it
RUN_MARK = "DDX_TEST_RUN"


def ddx(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None):
    """Run ``ddx ARGS…`` (``python -m orchestrator``) and return the completed process."""
    full_env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def ddx_interrupted(
    *args: str,
    when: str,
    stderr_file: Path,
    timeout: float = 300,
    sig: int = signal.SIGINT,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run ``ddx ARGS…`` and send it ``sig`` (default SIGINT: Ctrl-C) once a line of its stdout holds
    ``when``; returns its exit code and stderr (kept in ``stderr_file``: a pipe nobody reads could
    fill and block it)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    argv = [sys.executable, "-m", "orchestrator", *args]
    with open(stderr_file, "w") as stderr:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            for line in proc.stdout:  # progress lines (stdout is not a terminal)
                if when in line:
                    proc.send_signal(sig)
                    break
            proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
    return proc.returncode, stderr_file.read_text()


def processes_of_run(mark: str) -> list[str]:
    """The processes alive now whose environment holds ``RUN_MARK=mark`` (``'PID TITLE'`` each): what
    a ddx run given that variable left behind — its own process and every one it started, Ray's
    workers included, inherit it. Linux (``/proc``); zombies have ended and are not listed."""
    needle = f"{RUN_MARK}={mark}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                title = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found.append(f"{pid} {title[:80]}")
    return found


def fresh_python(code: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``code`` in a fresh interpreter (the checkout importable, cwd the checkout) and return
    the completed process: for what only a new process shows (what an import pulls in)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def fresh_output(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """What ``code`` prints in a fresh interpreter (:func:`fresh_python`), stripped; it must exit 0."""
    proc = fresh_python(code, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str):
    """Invoke the CLI in-process (Typer's runner): fast, with stdout and stderr apart."""
    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def class_folders(root: Path, classes: tuple[str, ...] = ("a", "b")) -> Path:
    """``root/train/<class>/`` and ``root/test/<class>/``: the layout an ImageFolder (or CIFAR
    tree) root must have for the sweep validator (no images: the validator reads none)."""
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
    return root


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def tiny_digits_spec(storage: Path, name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A CPU-seconds sweep: 2 DM trials on digits, 2 networks × 2 seeds each."""
    spec: dict[str, Any] = {
        "name": name,
        "storage": str(storage),
        "dataset": {"name": "digits", "resolution": 8},
        "method": {
            "objective": "dm",
            "iterations": 10,
            "batch_real": 32,
            "checkpoint_every": 5,
        },
        "search": {"ipc": {"grid": [1, 2]}},
        "algorithm": "grid",
        "metric": {"name": "val_acc", "mode": "max"},
        "resources": {"distill_workers": 1, "eval_cpus": 1, "max_concurrent_trials": 1},
        "evaluation": {"archs": ["convnet_d3", "resnet18"], "seeds": 2, "epochs": 3, "batch_size": 64},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def trial_of(data: Any, values: dict[str, Any], seed: int = 0) -> Any:
    """A :class:`~methods.distill.trial.TrialConfig` from a test's flat values (``objective``, ``ipc``,
    ``parameterization`` and any option keys) for the loaded dataset ``data`` (the typed object a
    sweep trial builds from its spec)."""
    from methods.datasets.options import DatasetOptions
    from methods.distill.trial import TrialConfig, option_classes
    from methods.options import field_names

    rest = dict(values)
    objective, ipc = rest.pop("objective"), rest.pop("ipc")
    parameterization = rest.pop("parameterization", "pixels")
    read = {k for cls in option_classes(objective, parameterization).values() for k in field_names(cls)}
    rest = {k: v for k, v in rest.items() if k in read}  # as a sweep trial drops keys its components do not read
    dataset = DatasetOptions(name=getattr(data, "name", "digits"))
    return TrialConfig.build(objective, ipc, dataset, parameterization, seed=seed, **rest)
