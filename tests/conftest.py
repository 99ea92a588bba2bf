"""Shared fixtures: a test cache directory, the CIFAR-10 tree from ../shared/data, one Ray session."""

from __future__ import annotations

import os
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DDX_SHARED_DATA", str(REPO.parent / "shared" / "data")))
#: the suite's own cache (``$DDX_TEST_CACHE``, default ``<tmp>/ddx-test-cache``), whatever ``DDX_CACHE`` the
#: shell exports: the record of a ``ddx up`` lies in ``$DDX_CACHE``, and a suite that inherited a developer's
#: would run its sweeps on that kept Ray instead of Ray sessions of its own; for the same reason an
#: exported ``RAY_ADDRESS`` (which ``ddx sweep`` reads as ``--address``) is dropped: tests that want a
#: cluster pass its address themselves
TEST_CACHE = Path(os.environ.get("DDX_TEST_CACHE", str(Path(tempfile.gettempdir()) / "ddx-test-cache")))
os.environ["DDX_CACHE"] = str(TEST_CACHE)
os.environ.pop("RAY_ADDRESS", None)

os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "1")
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "60")


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    """The CIFAR-10 JPEG tree (``train/`` and ``test/`` class folders), extracted once per machine."""
    tarball = SHARED_DATA / "cifar10-jpg.tar.gz"
    if not tarball.exists():
        pytest.skip(f"CIFAR-10 tarball not found at {tarball} (tests that need real CIFAR-10 images)")
    target = TEST_CACHE / "cifar10-jpg"
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        done = target / ".extracted"
        if not done.exists():
            with tarfile.open(tarball) as tar:
                tar.extractall(target, filter="data")
            done.touch()
    return target / "cifar10"


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (students' numbers compared bit for bit, and fair timings)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits at 8 px, loaded once per process (a test file may define its own)."""
    from methods.datasets import DatasetOptions, cached_dataset

    return cached_dataset(DatasetOptions(name="digits", resolution=8))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the in-process Ray tests (dashboard on 127.0.0.1)."""
    import ray

    from orchestrator.cluster import runtime

    runtime.apply_default_env()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on 127.0.0.1 (moto, one request at a time: ``tests/moto_serial.py``) with
    dummy credentials in the environment.

    Yields a function ``bucket_uri(name) -> "s3://name?endpoint_override=127.0.0.1:PORT&scheme=http"``
    that creates the bucket first.
    """
    from tests.moto_serial import SerialMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    server = SerialMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"

    def bucket_uri(name: str) -> str:
        import boto3

        client = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
        client.create_bucket(Bucket=name)
        return f"s3://{name}?endpoint_override={endpoint}&scheme=http"

    bucket_uri.endpoint = endpoint  # type: ignore[attr-defined]
    yield bucket_uri
    server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel completes the handshake) and never
    answers; closing it at the end resets them, so clients waiting on it give up."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
