"""Start an embedded local Ray, or connect to an existing cluster."""

from __future__ import annotations

import logging
import os
import warnings

import ray

from orchestrator.errors import UserError

#: environment that keeps Ray Train/Tune quiet and quick on a laptop; users may override each
RAY_DEFAULT_ENV = {
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_GLOBAL_CHECKPOINT_S": "5",
    "RAY_TRAIN_V2_ENABLED": "1",
}


#: the custom resource trial drivers hold on a cluster's head node (see cluster.yaml); the
#: embedded local Ray defines it too, so a cluster sweep file also runs on a laptop
DRIVER_RESOURCE = "ddx_driver"
LOCAL_DRIVER_SLOTS = 1000


def check_resources(requested: dict[str, float]) -> None:
    """Fail fast (one line) when the cluster lacks a resource the trials must hold."""
    available = ray.cluster_resources()
    for name, amount in requested.items():
        if available.get(name, 0) < amount:
            raise UserError(
                f"the Ray cluster has no {name!r} resource (has: {', '.join(sorted(available))}); add it to the "
                f"head node (cluster.yaml resources) or set resources.trial_resources to {{CPU: 0.01}}",
                key="resources.trial_resources",
            )


def apply_default_env() -> None:
    for k, v in RAY_DEFAULT_ENV.items():
        os.environ.setdefault(k, v)


def connect(address: str | None, verbose: bool = False, num_cpus: int | None = None) -> str:
    """Initialise Ray; returns a short description of where ddx runs.

    No address: an embedded local Ray with its dashboard on 127.0.0.1. An address
    (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``): connect to that cluster.
    """
    apply_default_env()
    if ray.is_initialized():
        return "existing Ray session"
    env_vars = {k: os.environ[k] for k in (*RAY_DEFAULT_ENV, "DDX_CACHE") if k in os.environ}
    runtime_env = {"env_vars": env_vars}
    if not verbose:
        warnings.filterwarnings("ignore")
        logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs = {
        "runtime_env": runtime_env,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "configure_logging": True,
    }
    try:
        if address:
            ray.init(address=address, **kwargs)
            return f"Ray cluster at {address}"
        info = ray.init(
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            num_cpus=num_cpus,
            resources={DRIVER_RESOURCE: LOCAL_DRIVER_SLOTS},
            **kwargs,
        )
    except ConnectionError as err:
        raise UserError(f"cannot connect to Ray at {address!r}: {err}", key="--address") from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    dashboard = getattr(info, "dashboard_url", None)
    where = f", dashboard http://{dashboard}" if dashboard else ""
    return f"embedded local Ray ({cpus} CPUs{where})"


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
